"""Pictures: `pongrl show frames`, `pongrl show weights`, and `pongrl plot` with an eval curve.

Each picture is checked to be made, to have the expected size in pixels, and not to be blank.
"""

import math

import matplotlib.image
import numpy as np
import pytest

from pongrl import algos, checkpoint, plots, plots_weights
from pongrl.agent import Agent, initial_params, pretrained_path, save_agent
from pongrl.cli import main
from pongrl.config import Config
from pongrl.logger import EVAL_COLUMNS, METRIC_COLUMNS, CsvLog


def read_png(path):
    img = matplotlib.image.imread(path)  # (rows, cols, 3 or 4) floats in [0, 1]
    return img[..., :3]


def one_line_error(rc, err):
    assert rc == 2, err
    assert len([ln for ln in err.splitlines() if ln.strip()]) == 1, err
    assert "Traceback" not in err


def agent_file(tmp_path, name="agent.npz", **cfg) -> tuple:
    """An agent file as `pongrl eval` reads it: freshly initialised parameters of a small Config."""
    c = Config(**cfg).validate()
    agent = Agent(c, algos.get(c.algo).init_params(c, np.random.default_rng(c.seed)))
    save_agent(tmp_path / name, agent, {})
    return tmp_path / name, agent


def expected_mosaic_size(units: int, halves: int) -> tuple[int, int]:
    """(rows, cols) in pixels of the weights mosaic: near-square grid, 1-px gaps
    (8 px where a unit is several panels)."""
    tile_w, gap = 80 * halves, 1 if halves == 1 else 8
    cols = math.ceil(math.sqrt(units * 80 / tile_w))
    rows = math.ceil(units / cols)
    return rows * (80 + gap) - gap, cols * (tile_w + gap) - gap


# ------------------------------------------------------------------ frames
def test_show_frames_writes_the_three_panel_picture(tmp_path, capsys):
    png = tmp_path / "frames.png"
    assert main(["show", "frames", "-o", str(png)]) == 0
    assert str(png) in capsys.readouterr().out
    img = read_png(png)
    assert img.shape == (420, 1000, 3)
    for third in np.array_split(img, 3, axis=1):  # every panel has something in it
        assert third.std() > 0.05


def test_sample_frames_are_a_real_pong_screen():
    raw, binary, diff = plots.sample_frames()
    assert raw.shape == (210, 160, 3) and binary.shape == (80, 80) and diff.shape == (80, 80)
    assert set(np.unique(binary)) == {0, 1} and 0 < binary.sum() < 800  # paddles, ball, score bars
    assert set(np.unique(diff)) <= {-1, 0, 1} and (diff != 0).any()  # something moved
    from pongrl.preprocess import preprocess

    assert np.array_equal(binary, preprocess(raw))  # the emulator's frame is the tutorial's rule on its screen


@pytest.mark.parametrize(
    "args",
    [
        ["show"],
        ["show", "frames", "--env", "Breakout-v4"],
        ["show", "frames", "-o", "/no/such/folder/frames.png"],
        ["show", "frames", "--seed", "-1"],
        ["show", "frames", "-o", "frames.xyz"],
        ["show", "weights"],
        ["show", "weights", "x.npz", "--pretrained"],
        ["show", "weights", "/no/such/checkpoint.npz"],
        ["show", "weights", "x.npz", "--units", "0"],
    ],
)
def test_show_user_errors_are_one_line_exit_2(args, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    one_line_error(main(args), capsys.readouterr().err)


# ------------------------------------------------------------------ weights: the pieces
def test_unit_images_are_w1_rows_as_80x80_images():
    rng = np.random.default_rng(0)
    W1 = rng.standard_normal((3, 6400))
    imgs = plots_weights.unit_images(W1)
    assert imgs.shape == (3, 80, 80)
    assert np.array_equal(imgs[1], W1[1].reshape(80, 80))
    assert imgs[1][5, 7] == W1[1, 5 * 80 + 7]  # row-major: pixel (row 5, col 7)


def test_unit_images_of_frame_plus_diff_put_the_frame_half_left():
    W1 = np.random.default_rng(1).standard_normal((2, 12800))
    imgs = plots_weights.unit_images(W1)
    assert imgs.shape == (2, 80, 160)
    assert np.array_equal(imgs[1][:, :80], W1[1, :6400].reshape(80, 80))  # current frame's weights
    assert np.array_equal(imgs[1][:, 80:], W1[1, 6400:].reshape(80, 80))  # difference frame's weights
    with pytest.raises(ValueError):
        plots_weights.unit_images(np.zeros((2, 100)))
    with pytest.raises(ValueError):
        plots_weights.unit_images(np.zeros((2, 12800 + 100)))


def test_unit_images_draw_blocks_as_the_pixels_they_cover():
    W1 = np.random.default_rng(2).standard_normal((2, 13800))
    imgs = plots_weights.unit_images(W1)
    assert imgs.shape == (2, 80, 480)  # frame | diff | 4x4 frame | 4x4 diff | 8x8 frame | 8x8 diff
    assert np.array_equal(imgs[1][:, 80:160], W1[1, 6400:12800].reshape(80, 80))
    block = W1[1, 12800 + 3 * 20 + 5]  # 4x4 frame, block row 3, column 5
    assert np.all(imgs[1][12:16, 160 + 20 : 160 + 24] == block)
    assert imgs[1][79, 319] == W1[1, 13599]  # last 4x4-diff block, bottom right
    scaled = plots_weights.scale_blocks(imgs, 13800)
    assert np.array_equal(scaled[:, :, :160], imgs[:, :, :160])  # the pixel panels are as they were
    np.testing.assert_allclose(
        np.abs(scaled[:, :, 160:320]).max(axis=(1, 2)), np.abs(imgs[:, :, :160]).max(axis=(1, 2))
    )
    assert np.array_equal(plots_weights.scale_blocks(imgs[:, :, :160], 12800), imgs[:, :, :160])  # no blocks: unchanged


def test_unit_images_draw_both_pyramid_levels_each_on_its_own_scale():
    W1 = np.random.default_rng(3).standard_normal((2, 13800))
    W1[:, 13600:] *= 100.0  # 8x8-block weights far larger than the rest
    imgs = plots_weights.unit_images(W1)
    assert imgs.shape == (2, 80, 480)  # frame | diff | 4x4 frame | 4x4 diff | 8x8 frame | 8x8 diff
    assert np.all(imgs[0][16:24, 320 + 56 : 320 + 64] == W1[0, 13600 + 2 * 10 + 7])  # 8x8 frame, row 2, col 7
    assert imgs[0][79, 479] == W1[0, -1]  # last 8x8 diff block, bottom right
    scaled = plots_weights.scale_blocks(imgs, 13800)
    top_fine = np.abs(imgs[:, :, :160]).max(axis=(1, 2))  # (U,)
    for level in (slice(160, 320), slice(320, 480)):  # each level is scaled to the pixels on its own
        np.testing.assert_allclose(np.abs(scaled[:, :, level]).max(axis=(1, 2)), top_fine)


def test_mosaic_places_and_scales_each_tile():
    tiles = np.stack([np.full((2, 3), v, float) for v in (1.0, -4.0, 0.0, 2.0, 0.5)])
    tiles[3, 0, 0] = -8.0  # largest |value| of tile 3: it scales that tile
    img = plots_weights.mosaic(tiles, gap=1)
    # 5 tiles of 2x3: 2 columns (near square), 3 rows
    assert img.shape == (3 * 3 - 1, 2 * 4 - 1)
    assert np.all(img[0:2, 0:3] == 1.0)  # tile 0, top left
    assert np.all(img[0:2, 4:7] == -1.0)  # tile 1, top right: -4 / 4
    assert np.all(img[3:5, 0:3] == 0.0)  # tile 2: all zeros stays zeros
    assert img[3, 4] == -1.0 and img[4, 6] == 0.25  # tile 3: scaled by 8
    assert np.all(img[6:8, 0:3] == 1.0)  # tile 4
    assert np.isnan(img[2, :]).all() and np.isnan(img[:, 3]).all()  # gaps
    assert np.isnan(img[6:8, 4:7]).all()  # the empty cell


def test_unit_order_puts_the_most_influential_units_first():
    assert list(plots_weights.unit_order({"W2": np.array([0.1, -3.0, 2.0])}, "reinforce")) == [1, 2, 0]
    Wpi = np.array([[0.0, 1.0, 0.0], [0.5, 1.0, -2.0]])  # (A, H): unit norms 0.5, 1.41, 2
    assert list(plots_weights.unit_order({"Wpi": Wpi, "Wv": np.ones(3)}, "ppo")) == [2, 1, 0]


@pytest.mark.slow
def test_initial_params_are_those_a_run_starts_from(tmp_path):
    from pongrl.train import train

    cfg = Config(algo="ppo", num_envs=2, ppo_hidden=8, ppo_num_steps=4, ppo_minibatches=1, steps=0, seed=5)
    train(cfg, tmp_path / "run", progress=False)  # saves the initial state
    arrays, _ = checkpoint.load(tmp_path / "run" / "checkpoint.npz")
    assert np.array_equal(initial_params(cfg)["W1"], arrays["learner/params/W1"])


# ------------------------------------------------------------------ weights: the picture
@pytest.mark.parametrize(
    "cfg, units, halves",
    [
        (dict(algo="reinforce", hidden=12), 12, 1),
        (dict(algo="ppo", ppo_hidden=10, ppo_obs="diff"), 10, 1),
        (dict(algo="ppo", ppo_hidden=6, ppo_obs="frame+diff"), 6, 2),
        (dict(algo="ppo", ppo_hidden=9, ppo_obs="frame+diff+pyramid"), 9, 6),
        (dict(algo="ppo", ppo_hidden=4, ppo_conv=3), 3, 2),  # the 3 filters: 8x8 taps on frame | difference, 10 px each
    ],
)
def test_show_weights_draws_every_unit(tmp_path, cfg, units, halves):
    path, _ = agent_file(tmp_path, **cfg)
    png = tmp_path / "weights.png"
    assert main(["show", "weights", str(path), "-o", str(png)]) == 0
    img = read_png(png)
    rows, cols = expected_mosaic_size(units, halves)
    assert img.shape[1] == cols  # one weight, one pixel
    assert rows + 18 <= img.shape[0] <= rows + 150  # plus the title strip
    weights = img[-rows:]
    assert weights.std() > 0.1  # random weights: far from blank
    gap_col = weights[:, 80 * halves]  # the white line between the first two columns of tiles
    assert np.allclose(gap_col, 1.0)


def test_show_weights_units_limits_the_grid(tmp_path):
    path, _ = agent_file(tmp_path, algo="reinforce", hidden=30)
    png = tmp_path / "w.png"
    assert main(["show", "weights", str(path), "--units", "4", "-o", str(png)]) == 0
    assert read_png(png).shape[1] == expected_mosaic_size(4, 1)[1] == 2 * 81 - 1


def test_show_weights_minus_init_shows_only_what_changed(tmp_path):
    _, agent = agent_file(tmp_path, algo="ppo", ppo_hidden=4, ppo_obs="diff")
    agent.params["W1"][0, 40 * 80 + 10] += 1.0  # "training" moved one weight of unit 0
    agent.params["Wpi"][:, 0] = 10.0  # and made unit 0 the most influential: drawn first, top left
    save_agent(tmp_path / "trained.npz", agent, {})
    png = tmp_path / "delta.png"
    assert main(["show", "weights", str(tmp_path / "trained.npz"), "--minus-init", "-o", str(png)]) == 0
    rows, _ = expected_mosaic_size(4, 1)
    weights = read_png(png)[-rows:]
    changed = np.argwhere(np.abs(weights - 1.0).max(axis=2) > 0.05)  # pixels that are not white
    assert [tuple(p) for p in changed] == [(40, 10)]  # that weight, nothing else


@pytest.mark.parametrize("name", [[], ["reinforce"]])
def test_show_weights_of_the_pretrained_agents(tmp_path, capsys, name):
    png = tmp_path / "w.png"
    rc = main(["show", "weights", "--pretrained", *name, "--units", "16", "-o", str(png)])
    try:
        pretrained_path(*name)
    except checkpoint.CheckpointError:  # not shipped in this install: one clear line
        one_line_error(rc, capsys.readouterr().err)
        return
    assert rc == 0
    assert read_png(png).std() > 0.05


# ------------------------------------------------------------------ learning curves
def fake_run(run_dir, evals: bool):
    """A run folder with a made-up metrics.csv (and eval.csv)."""
    run_dir.mkdir()
    log = CsvLog(run_dir / "metrics.csv", METRIC_COLUMNS)
    running = -21.0
    for ep in range(1, 41):
        ret = -21 + ep // 2
        running = 0.99 * running + 0.01 * ret
        log.write(
            {
                "episode": ep,
                "env_steps": 900 * ep,
                "return": ret,
                "running_reward": running,
                "length": 900,
                "wall_s": ep,
            }
        )
    log.close()
    if evals:
        log = CsvLog(run_dir / "eval.csv", EVAL_COLUMNS)
        for i in range(1, 8):
            log.write({"env_steps": 5000 * i, "wall_s": i, "mean": -20 + 2 * i, "std": 1.5, "win_rate": i / 10})
        log.close()
    return run_dir


@pytest.mark.parametrize("evals, width", [(False, 1210), (True, 1815)])
def test_plot_draws_the_eval_curve_beside_the_training_curve(tmp_path, evals, width):
    run = fake_run(tmp_path / "run", evals)
    png = tmp_path / "curve.png"
    assert main(["plot", str(run), "-o", str(png)]) == 0
    img = read_png(png)
    assert img.shape == (440, width, 3)  # 5.5 x 4 inches per panel at 110 dpi
    for panel in np.array_split(img[60:, 80:], 3 if evals else 2, axis=1):
        assert panel.std() > 0.05


@pytest.mark.parametrize(
    "config, greedy, words",
    [
        ('{"eval_greedy": true}', True, "greedy actions"),
        ('{"eval_greedy": false}', False, "sampled actions"),
        ("{}", False, "sampled actions"),  # a config that predates eval_greedy: evaluations sampled
        (None, None, "actions unknown"),
        ("{not json", None, "actions unknown"),
        ("[1, 2]", None, "actions unknown"),
    ],
)
def test_the_eval_panel_says_whether_the_run_evaluated_greedily(tmp_path, config, greedy, words):
    run = fake_run(tmp_path / "run", evals=True)
    if config is not None:
        (run / "config.json").write_text(config)
    assert plots.evaluates_greedily(run) is greedy
    metrics, evals = plots.read_run_curves(run)
    title = plots.curves_figure(metrics, evals, greedy=plots.evaluates_greedily(run)).axes[2].get_title()
    assert title.startswith(f"evaluation ({words},")


def test_plot_ignores_an_eval_csv_without_rows(tmp_path):
    run = fake_run(tmp_path / "run", evals=False)
    CsvLog(run / "eval.csv", EVAL_COLUMNS).close()  # header only: no evaluation yet
    assert read_png(plots.plot_run(run)).shape == (440, 1210, 3)


def test_agent_curves_beside_an_agent_file_or_in_its_run_folder(tmp_path):
    run = fake_run(tmp_path / "run", evals=True)
    metrics, evals = plots.agent_curves(run / "best.npz")  # an agent file in a run folder
    assert len(metrics) == 40 and len(evals) == 7
    (tmp_path / "ship").mkdir()
    (tmp_path / "ship" / "pong_ppo_metrics.csv").write_text((run / "metrics.csv").read_text())
    metrics, evals = plots.agent_curves(tmp_path / "ship" / "pong_ppo.npz")  # shipped like the pretrained agent
    assert len(metrics) == 40 and evals == []
    with pytest.raises(FileNotFoundError):
        plots.agent_curves(tmp_path / "elsewhere.npz")


@pytest.mark.parametrize("name", ["ppo", "reinforce"])
def test_the_pretrained_agents_ship_their_learning_curves(name):
    try:
        path = pretrained_path(name)
    except checkpoint.CheckpointError:
        pytest.skip("this install has no pretrained agent")
    metrics, evals = plots.agent_curves(path)  # pong_NAME_metrics.csv / pong_NAME_eval.csv beside it
    assert metrics and evals, f"ship {path.stem}_metrics.csv and {path.stem}_eval.csv (the run's CSVs) beside it"


@pytest.mark.parametrize(
    "inputs, says",
    [
        (6400, "80×80 difference-frame weights"),
        (12800, "frame (left) and difference frame (right)"),
        (13800, "the 4×4 and 8×8 blocks of each"),
    ],
)
def test_weights_title_names_the_panels(inputs, says):
    title = plots_weights.weights_title({"W1": np.zeros((3, inputs))}, "ppo", 2)
    assert title.startswith("ppo: 2 of 3 hidden units") and says in title
