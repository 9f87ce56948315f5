"""The learner on T threads (pongrl.parallel) and where the cores go (pongrl.placement).

Elementwise passes give the same bits for every T; products split over T
threads give the T = 1 numbers to float32 rounding, and the same bits for a
fixed T. Placement keeps 2 cores as they were (a process a core, one learner
thread) and gives the learner threads where the model says it is the bottleneck.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import tiny_config

from pongrl import actor_critic, conv, optim, placement, policy, ppo, reinforce
from pongrl.cli import main
from pongrl.config import Config, ConfigError
from pongrl.inputs import compact
from pongrl.parallel import Pool, bounds
from pongrl.rollouts import Episodes
from pongrl.sparse import SparseRows
from pongrl.train import train

THREADS = (2, 3)


@pytest.fixture(scope="module")
def pools():
    made = {t: Pool(t) for t in (1, *THREADS)}
    yield made
    for p in made.values():
        p.close()


# ---------------------------------------------------------------- the pool
@pytest.mark.parametrize("n, parts", [(10, 3), (2, 5), (0, 2), (7, 1), (1000, 7)])
def test_bounds_cut_the_range_into_contiguous_nonempty_parts(n, parts):
    got = bounds(n, parts)
    assert len(got) == min(n, parts)
    assert [a for a, _ in got[1:]] == [b for _, b in got[:-1]] and all(b > a for a, b in got)
    assert (got[0][0], got[-1][1]) == (0, n) if n else got == []
    assert max(b - a for a, b in got) - min(b - a for a, b in got) <= 1 if got else True


def test_run_keeps_the_order_and_raises_a_thread_s_error(pools):
    assert pools[3].run(lambda p: p * p, [1, 2, 3, 4, 5]) == [1, 4, 9, 16, 25]

    def fail_on_two(p):
        if p == 2:
            raise ValueError("part 2")
        return p

    with pytest.raises(ValueError, match="part 2"):
        pools[2].run(fail_on_two, [1, 2])
    with pytest.raises(ValueError, match="at least 1 thread, got 0"):
        Pool(0)


@pytest.mark.parametrize("threads", THREADS)
def test_matmul_by_column_blocks_matches_one_product(pools, threads):
    rng = np.random.default_rng(threads)
    a, b = rng.standard_normal((37, 300), np.float32), rng.standard_normal((300, 53), np.float32)
    one = pools[1].matmul(a, lambda j0, j1: b[:, j0:j1], 53)
    assert np.array_equal(one, a @ b)  # T = 1: the one product, bit for bit
    split = pools[threads].matmul(a, lambda j0, j1: b[:, j0:j1], 53)
    np.testing.assert_allclose(split, one, rtol=1e-5, atol=1e-5)
    assert np.array_equal(split, pools[threads].matmul(a, lambda j0, j1: b[:, j0:j1], 53))


# ---------------------------------------------------------------- the optimizers: the same bits for every T
@pytest.mark.parametrize("threads", THREADS)
def test_adam_gives_the_same_bits_on_any_number_of_threads(pools, threads):
    rng = np.random.default_rng(0)
    params = actor_critic.init_params(900, 24, 2, rng)
    grads = {k: rng.standard_normal(v.shape).astype(np.float32) for k, v in params.items()}
    rows = np.sort(rng.choice(900, 50, replace=False))
    grads["W1"] = rng.standard_normal((50, 24)).astype(np.float32)
    runs = []
    for pool in (pools[1], pools[threads]):
        p = {k: v.copy(order="K") for k, v in params.items()}
        m, v = ({k: np.zeros_like(a) for k, a in p.items()} for _ in range(2))
        for t in range(1, optim.FLUSH_EVERY + 2):  # a flush included
            optim.adam_step(p, grads, rows, m, v, t, 1e-3, 1e-5, pool)
        runs.append((p, m, v))
    for one, many in zip(*runs):
        for k in one:
            assert np.array_equal(one[k], many[k]), k


@pytest.mark.parametrize("threads", THREADS)
def test_rmsprop_gives_the_same_bits_on_any_number_of_threads(pools, threads):
    rng = np.random.default_rng(1)
    params = policy.init_params(20, rng, inputs=700)
    grads = {k: rng.standard_normal(v.shape).astype(np.float32) for k, v in params.items()}
    grads["W1"] = np.asfortranarray(grads["W1"])
    out = []
    for pool in (pools[1], pools[threads]):
        p, cache = {k: v.copy(order="K") for k, v in params.items()}, policy.zeros_like(params)
        for _ in range(3):
            optim.rmsprop_step(p, grads, cache, 1e-3, 0.99, 1e-5, pool)
        out.append((p, cache))
    for k in params:
        assert np.array_equal(out[0][0][k], out[1][0][k]) and np.array_equal(out[0][1][k], out[1][1][k]), k


# ---------------------------------------------------------------- the products: T = 1 to float32 rounding
def ppo_batch(rng, n=64, width=13800, conv_frames=False):
    """A minibatch of sparse inputs with the frame and difference pixels of a conv network."""
    x = np.zeros((n, width), np.int8)
    for b in range(n):
        x[b, rng.choice(12800 if conv_frames else width, 40, replace=False)] = rng.choice([-1, 1], 40)
    return ppo.Batch(
        x=SparseRows.from_dense(x),
        actions=rng.integers(0, 2, n),
        logp=np.log(np.full(n, 0.5, np.float32)),
        values=rng.standard_normal(n).astype(np.float32),
        advantages=rng.standard_normal(n).astype(np.float32),
        returns=rng.standard_normal(n).astype(np.float32),
    )


@pytest.mark.parametrize("filters", [0, 4])
@pytest.mark.parametrize("threads", THREADS)
def test_ppo_gradients_on_threads_match_one_thread(pools, threads, filters):
    rng = np.random.default_rng(threads + filters)
    params = actor_critic.init_network("frame+diff+pyramid", 32, filters, rng)
    b = ppo_batch(rng, conv_frames=bool(filters))
    b.x = compact(b.x)
    one = ppo.loss_and_grads(params, b, ppo.Coefs(), pools[1])
    many = ppo.loss_and_grads(params, b, ppo.Coefs(), pools[threads])
    again = ppo.loss_and_grads(params, b, ppo.Coefs(), pools[threads])
    assert np.array_equal(one[3], many[3])  # the same rows of W1
    for k in one[2]:
        np.testing.assert_allclose(many[2][k], one[2][k], rtol=2e-4, atol=1e-6, err_msg=k)
        assert np.array_equal(many[2][k], again[2][k]), k  # a fixed T: the same bits
    assert many[0] == pytest.approx(one[0], rel=1e-5)


@pytest.mark.parametrize("threads", THREADS)
def test_convolution_on_threads_matches_one_thread(pools, threads):
    rng = np.random.default_rng(5)
    Wc = rng.standard_normal((conv.TAPS, 4)).astype(np.float32)
    x = compact(ppo_batch(rng, n=33, width=12800, conv_frames=True).x)
    (f1, s1), (fT, sT) = conv.forward(Wc, x, pools[1]), conv.forward(Wc, x, pools[threads])
    assert np.array_equal(f1.cols, fT.cols) and np.array_equal(s1.sample, sT.sample)
    np.testing.assert_allclose(fT.X, f1.X, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("threads", THREADS)
def test_reinforce_gradient_on_threads_matches_one_thread(pools, threads):
    rng = np.random.default_rng(7)
    params = policy.init_params(16, rng)
    n = 3 * reinforce.CHUNK + 17  # several chunks of rows, the last one short
    x = SparseRows.from_dense((rng.random((n, 6400)) < 0.005).astype(np.int8))
    eps = Episodes(
        x=x,
        actions=rng.choice([policy.UP, policy.DOWN], n),
        rewards=np.where(rng.random(n) < 0.01, rng.choice([-1.0, 1.0], n), 0.0).astype(np.float32),
        lengths=np.array([n // 2, n - n // 2]),
    )
    g1, s1 = reinforce.policy_gradient(params, eps, 0.99, pools[1])
    gT, sT = reinforce.policy_gradient(params, eps, 0.99, pools[threads])
    assert s1 == sT  # the loss terms are summed chunk by chunk, in order
    for k in g1:
        np.testing.assert_allclose(gT[k], g1[k], rtol=1e-4, atol=1e-6, err_msg=k)


# ---------------------------------------------------------------- runs on T threads
def ppo_tiny(**kw) -> Config:
    base = dict(algo="ppo", ppo_hidden=16, ppo_num_steps=16, ppo_minibatches=2, ppo_epochs=1, steps=96)
    return tiny_config(**(base | kw))


@pytest.mark.parametrize("algo", ["ppo", "reinforce"])
def test_a_run_on_two_threads_is_reproducible_and_resumes_bit_for_bit(tmp_path, algo):
    cfg = ppo_tiny(learner_threads=2) if algo == "ppo" else tiny_config(learner_threads=2, episodes=None, steps=1600)
    half = dict(steps=cfg.steps // 2, episodes=None)
    train(Config.from_dict(cfg.to_dict() | half), tmp_path / "a", progress=False)
    train(None, tmp_path / "a", resume=True, targets={"steps": cfg.steps}, progress=False)
    train(cfg, tmp_path / "b", progress=False)
    train(cfg, tmp_path / "c", progress=False)
    from pongrl.checkpoint import load

    (a, meta), (b, _), (c, _) = (load(tmp_path / d / "checkpoint.npz") for d in "abc")
    assert meta["config"]["learner_threads"] == 2
    for k in b:
        assert np.array_equal(b[k], c[k]), k
        assert np.array_equal(a[k], b[k]), k


def test_resume_may_move_a_run_to_other_threads_and_processes(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "--algo", "ppo", "--num-envs", "2", "--ppo-num-steps", "16", "--ppo-hidden", "8",
                 "--steps", "32", "--no-progress", "--out", str(run)]) == 0  # fmt: skip
    first = json.loads(capsys.readouterr().out.splitlines()[-1])["placement"]
    assert json.loads((run / "config.json").read_text())["learner_threads"] == first["learner_threads"] >= 1
    resumed = ["train", "--resume", str(run), "--steps", "64", "--learner-threads", "2", "--emulators", "1"]
    assert main([*resumed, "--no-progress"]) == 0
    saved = json.loads((run / "config.json").read_text())
    assert (saved["learner_threads"], saved["emulators"]) == (2, 1)
    assert json.loads(capsys.readouterr().out.splitlines()[-1])["placement"]["learner_threads"] == 2


def test_the_number_of_emulator_processes_never_changes_the_numbers(tmp_path):
    from pongrl.checkpoint import load

    for e in (1, 2):
        train(ppo_tiny(emulators=e), tmp_path / str(e), progress=False)
    (a, _), (b, _) = (load(tmp_path / d / "checkpoint.npz") for d in "12")
    for k in a:
        assert np.array_equal(a[k], b[k]), k


# ---------------------------------------------------------------- placement
def test_two_cores_keep_a_process_a_core_and_one_learner_thread():
    for cfg in (Config(), Config(algo="ppo"), Config(algo="ppo", ppo_conv=8)):
        for cores in (1, 2):
            where = placement.place(cfg, cores)
            assert (where.emulators, where.threads) == (cores, 1)


def test_many_cores_give_ppo_learner_threads_and_keep_what_the_user_gave():
    where = placement.place(Config(algo="ppo"), 16)
    assert where.threads > 1 and where.emulators >= 1 and where.emulators + where.threads == 16
    assert where.steps_per_s > placement.place(Config(algo="ppo"), 2).steps_per_s
    given = placement.place(Config(algo="ppo", learner_threads=3, emulators=5), 16)
    assert (given.emulators, given.threads, given.chosen) == (5, 3, (False, False))
    reinforce_16 = placement.place(Config(), 16)  # a cheap learner: most cores step games
    assert reinforce_16.emulators > reinforce_16.threads


def test_a_ray_head_gives_its_cores_but_one_to_the_learner():
    for cores, threads in ((1, 1), (2, 1), (8, 7), (32, 31)):
        where = placement.place(Config(algo="ppo", workers=4), cores)
        assert (where.emulators, where.threads) == (1, threads)  # one process per worker; the head learns


def test_the_model_is_bounded_by_the_cpu_and_by_its_slowest_part():
    c = placement.Costs(emulator=250, acting=100, learner=400, serial=0.1, overlap=True)
    assert placement.predict(c, 1, 1, 1) == pytest.approx(1e6 / 750)  # one core: everything in turn
    assert placement.predict(c, 64, 63, 1) == pytest.approx(1e6 / 400)  # one learner thread is the bound
    assert placement.predict(c, 64, 32, 32) == pytest.approx(1e6 / (100 + 250 / 32))  # then the acting thread


def test_the_placement_line_names_the_split_and_how_to_override_it():
    line = placement.place(Config(algo="ppo"), 8).line()
    assert line.startswith("placement: 8 cores -> ") and "--learner-threads" in line and "steps/s" in line


def test_train_prints_the_placement_and_records_it(tmp_path, capsys):
    cfg = ppo_tiny()
    summary = train(cfg, tmp_path / "run", progress=True)
    assert capsys.readouterr().err.count("placement: ") == 1
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert saved["learner_threads"] == summary["placement"]["learner_threads"] >= 1
    assert saved["emulators"] == summary["placement"]["emulators"] >= 1
    system = json.loads((tmp_path / "run" / "system.json").read_text())["systems"][-1]
    assert system["placement"] == summary["placement"]


def test_bad_placement_flags_are_one_line(tmp_path, capsys):
    assert main(["train", "--out", str(tmp_path / "r"), "--num-envs", "2", "--emulators", "3"]) == 2
    assert "emulators must be 0 (placed) or in [1, num_envs (2)], got 3" in capsys.readouterr().err
    assert main(["train", "--out", str(tmp_path / "r"), "--learner-threads", "-1"]) == 2
    with pytest.raises(ConfigError):
        Config(learner_threads=2000).validate()


def test_runs_saved_before_placement_resume_on_one_learner_thread():
    cfg = Config.from_saved({k: v for k, v in Config().to_dict().items() if k not in ("learner_threads", "emulators")})
    assert (cfg.learner_threads, cfg.emulators) == (1, 0)
