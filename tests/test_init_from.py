"""Fine-tuning: Config.init_from / `pongrl train --init-from AGENT.npz`."""

import numpy as np
import pytest
from conftest import tiny_config

from pongrl import checkpoint
from pongrl.agent import init_weights, initial_params, load_agent, pretrained_path
from pongrl.cli import main
from pongrl.config import Config, ConfigError
from pongrl.errors import RunError
from pongrl.runs import new_run
from pongrl.train import train

PPO = dict(
    algo="ppo", ppo_hidden=8, ppo_num_steps=16, ppo_minibatches=2, ppo_epochs=1, episodes=None, steps=64, ppo_obs="diff"
)


pytestmark = pytest.mark.slow  # every test here trains, or uses the module's trained run


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny PPO run's folder (its checkpoint.npz is the file to start from)."""
    run_dir = tmp_path_factory.mktemp("init") / "source"
    train(tiny_config(**PPO), run_dir, progress=False)
    return run_dir


def params_of(run_dir):
    arrays, _ = checkpoint.load(run_dir / "checkpoint.npz")
    return {k.removeprefix("learner/params/"): v for k, v in arrays.items() if k.startswith("learner/params/")}


def test_a_new_run_starts_from_the_files_weights(trained):
    cfg = tiny_config(**PPO, seed=5, init_from=str(trained / "checkpoint.npz"))
    run = new_run(cfg, init_weights(cfg))
    try:
        source = params_of(trained)
        for k, v in run.learner.params.items():
            assert np.array_equal(v, source[k]), k
            assert v.flags.f_contiguous == run.learner.m[k].flags.f_contiguous  # the learner's own layout
        assert run.learner.t == 0 and run.learner.updates == 0 and not np.any(run.learner.m["W1"])  # a fresh optimiser
    finally:
        run.close()


def test_fine_tuning_is_deterministic_and_resumes_exactly(trained, tmp_path):
    cfg = tiny_config(**PPO | {"steps": 96}, seed=1, init_from=str(trained / "checkpoint.npz"))
    train(cfg, tmp_path / "a", progress=False)
    train(Config(**cfg.to_dict() | {"steps": 48}), tmp_path / "b", progress=False)
    train(None, tmp_path / "b", resume=True, targets={"steps": 96}, progress=False)  # the init is not applied again
    a, b, source = params_of(tmp_path / "a"), params_of(tmp_path / "b"), params_of(trained)
    for k in a:
        assert np.array_equal(a[k], b[k]), k
    assert not np.array_equal(a["W1"], source["W1"])  # it did learn


def test_float16_agent_file_starts_a_float32_run():
    agent = load_agent(pretrained_path())
    cfg = Config(**agent.cfg.to_dict() | {"init_from": str(pretrained_path())})
    init = init_weights(cfg)
    assert all(v.dtype == np.float32 for v in init.values())
    assert np.array_equal(init["W1"], agent.params["W1"])


def test_minus_init_subtracts_the_files_weights(trained):
    cfg = tiny_config(**PPO, init_from=str(trained / "checkpoint.npz"))
    assert np.array_equal(initial_params(cfg)["W1"], params_of(trained)["W1"])
    missing = tiny_config(**PPO, init_from=str(trained / "gone.npz"))
    with pytest.raises(FileNotFoundError, match="fine-tuned from .*gone.npz"):
        initial_params(missing)


@pytest.mark.parametrize(
    "change, message",
    [
        (dict(algo="reinforce", hidden=8), "holds a ppo agent, this run trains reinforce"),
        (dict(ppo_hidden=12), r"its W1 is \(8, 6400\), this config's network needs \(12, 6400\)"),
        (dict(ppo_obs="frame+diff"), r"its W1 is \(8, 6400\), this config's network needs \(8, 12800\)"),
        (
            dict(ppo_obs="frame+diff", ppo_conv=2),
            r"its network lacks Wc, which this config's network needs \(match its "
            r"layers: --ppo-conv\)",
        ),
    ],
)
def test_a_network_that_does_not_fit_is_refused(trained, change, message):
    cfg = tiny_config(**PPO | change, init_from=str(trained / "checkpoint.npz"))
    with pytest.raises(RunError, match=message):
        init_weights(cfg)


def test_a_convolution_starts_from_a_convolution_only(tmp_path):
    conv = tmp_path / "conv"
    train(tiny_config(**PPO | dict(ppo_obs="frame+diff", ppo_conv=2)), conv, progress=False)
    cfg = tiny_config(**PPO | dict(ppo_obs="frame+diff", ppo_conv=2), seed=9, init_from=str(conv / "checkpoint.npz"))
    np.testing.assert_array_equal(init_weights(cfg)["Wc"], params_of(conv)["Wc"])
    with pytest.raises(RunError, match="its network has Wc, which this config's network lacks"):
        init_weights(tiny_config(**PPO | dict(ppo_obs="frame+diff"), init_from=str(conv / "checkpoint.npz")))


@pytest.mark.parametrize("make_file", ["missing", "not npz", "other shape"])
def test_cli_bad_init_file_is_one_line_exit_2_and_makes_no_folder(trained, tmp_path, capsys, make_file):
    path = tmp_path / "init.npz"
    if make_file == "not npz":
        path.write_text("hello")
    extra = ["--ppo-hidden", "9"] if make_file == "other shape" else []
    init = str(trained / "checkpoint.npz") if make_file == "other shape" else str(path)
    out = tmp_path / "run"
    rc = main(
        ["train", "--algo", "ppo", "--steps", "32", "--init-from", init, "--out", str(out), "--no-progress", *extra]
    )
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1 and err.startswith("pongrl"), err
    assert not out.exists()


def test_init_from_must_be_a_path():
    with pytest.raises(ConfigError, match="init_from must be a file path, got ''"):
        Config(init_from="").validate()


def test_an_agent_takes_only_its_configs_arrays(trained):
    from pongrl.agent import agent_from_arrays

    arrays, meta = checkpoint.load(trained / "checkpoint.npz")
    params = checkpoint.section(arrays, "learner/params/") | {"W2": np.zeros((4, 8), np.float32)}  # a stray array
    agent = agent_from_arrays(params, Config.from_saved(meta["config"]), "f.npz")
    assert set(agent.params) == {"W1", "b1", "Wpi", "bpi", "Wv", "bv"}
