"""Execute every notebook top to bottom in quick mode (MNIST-1D), figures to a temporary folder."""

import json
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = sorted((Path(__file__).parent.parent / "notebooks").glob("*.ipynb"))


@pytest.fixture(scope="module")
def shared_runs(tmp_path_factory):
    return tmp_path_factory.mktemp("notebook-runs")


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs(path, tmp_path, shared_runs, monkeypatch):
    monkeypatch.setenv("LANDSCAPE_FIGURES", str(tmp_path))
    monkeypatch.setenv("LANDSCAPE_RUNS", str(shared_runs))  # runs are named by config hash and shared
    monkeypatch.delenv("LANDSCAPE_FULL", raising=False)
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=1200, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}})
    client.execute()
    figures = list(tmp_path.glob("*.png"))
    assert figures and all(f.stat().st_size > 5_000 for f in figures)
    assert {f.stem for f in tmp_path.glob("*.pdf")} == {f.stem for f in figures}
    summaries = list(tmp_path.glob("*_summary.json"))
    if path.stem != "00_schedules":
        assert len(summaries) == 1 and json.loads(summaries[0].read_text())  # the numbers REPRODUCTION.md quotes
