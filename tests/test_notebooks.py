"""Execute every notebook top to bottom (quick mode), writing figures to a temporary folder."""

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = sorted((Path(__file__).parent.parent / "notebooks").glob("*.ipynb"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs(path, tmp_path, monkeypatch):
    monkeypatch.setenv("LANDSCAPE_FIGURES", str(tmp_path))
    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}).execute()
    figures = list(tmp_path.glob("*.png"))
    assert figures and all(f.stat().st_size > 5_000 for f in figures)
    assert {f.stem for f in tmp_path.glob("*.pdf")} == {f.stem for f in figures}
