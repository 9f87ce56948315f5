"""The tutorial notebook: its .ipynb and MyST .md pair agree, git holds it without
outputs, and it runs top to bottom (nbclient, python3 kernel of this environment)."""

import sys
import time
from pathlib import Path

import pytest

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
IPYNB = NOTEBOOKS / "pong_from_pixels.ipynb"
MYST = NOTEBOOKS / "pong_from_pixels.md"
BUDGET_S = 180  # on the 2-core CI machine

nbformat = pytest.importorskip("nbformat")


def cells(nb) -> list[tuple[str, str]]:
    return [(c.cell_type, c.source) for c in nb.cells]


def test_ipynb_and_md_pair_agree():
    jupytext = pytest.importorskip("jupytext")
    ipynb, md = nbformat.read(IPYNB, as_version=4), jupytext.read(MYST)
    assert cells(ipynb) == cells(md), "out of sync: run `jupytext --sync notebooks/pong_from_pixels.ipynb`"
    assert ipynb.metadata["jupytext"]["formats"] == "ipynb,md:myst"
    assert ipynb.metadata["kernelspec"]["name"] == "python3"


def test_ipynb_is_stored_without_outputs():
    nb = nbformat.read(IPYNB, as_version=4)
    for i, c in enumerate(nb.cells):
        if c.cell_type == "code":
            assert c.outputs == [] and c.execution_count is None, f"cell {i} has outputs: clear them before committing"


def test_notebook_follows_the_tutorial():
    text = MYST.read_text()
    headings = [ln for ln in text.splitlines() if ln.startswith("## ")]
    assert len(headings) >= 7
    for needle in (
        "env_info",
        "frames_figure",
        "policy.forward",
        "policy.backward",
        "finite differences",
        "discount_rewards",
        "train(",
        "pretrained_path",
        "Video(",
        "agent_curves",
    ):
        assert needle in text, needle


@pytest.mark.slow
def test_notebook_runs(tmp_path, monkeypatch):
    nbclient = pytest.importorskip("nbclient")
    # Only this environment's kernels: its ipykernel provides "python3" running sys.executable;
    # a user-level kernelspec of the same name (which could point at another Python) is ignored.
    monkeypatch.setenv("JUPYTER_DATA_DIR", str(tmp_path / "jupyter-data"))
    monkeypatch.delenv("JUPYTER_PATH", raising=False)
    nb = nbformat.read(IPYNB, as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell("import sys; print(sys.executable)"))
    client = nbclient.NotebookClient(
        nb, kernel_name="python3", timeout=BUDGET_S, resources={"metadata": {"path": str(tmp_path)}}
    )
    start = time.perf_counter()
    client.execute()
    elapsed = time.perf_counter() - start
    assert elapsed < BUDGET_S, f"the notebook took {elapsed:.0f} s"

    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(images) >= 5  # frames, returns, short run's curve, learning curve, weights
    videos = [o for o in outputs if "<video" in o.get("data", {}).get("text/html", "")]
    assert len(videos) == 1 and "base64" in videos[0]["data"]["text/html"]
    kernel_python = nb.cells[-1].outputs[0]["text"].strip()
    assert Path(kernel_python).resolve() == Path(sys.executable).resolve()
