"""Every notebook in examples/ runs with the sandbox-python kernel under nbclient, papermill,
`jupyter execute` and `jupyter nbconvert --execute`, and shows what it should."""

import subprocess
import sys
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbclient import NotebookClient

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
NOTEBOOKS = sorted(p.name for p in EXAMPLES.glob("*.ipynb"))
BIN = Path(sys.executable).parent

pytestmark = [pytest.mark.vm, pytest.mark.timeout(400)]


def outputs_text(nb: Any) -> str:
    parts = []
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            if out["output_type"] == "stream":
                parts.append(out["text"])
            elif "data" in out:
                parts.append(out["data"].get("text/plain", ""))
            elif out["output_type"] == "error":
                parts.append(f"ERROR {out['ename']}: {out['evalue']}")
    return "\n".join(parts)


def mime_types(nb: Any) -> set[str]:
    return {mime for cell in nb.cells for out in cell.get("outputs", [])
            for mime in out.get("data", {})}


def beside(folder: Path) -> Path:
    """A copy of the examples folder, data files and all: a notebook's cells read what is
    beside it, and those that write must not write into the checkout."""
    for item in EXAMPLES.iterdir():
        if item.is_file():
            (folder / item.name).write_bytes(item.read_bytes())
    return folder


def check(name: str, nb: Any) -> None:
    text = outputs_text(nb)
    assert "ERROR" not in text, text
    if name == "quickstart.ipynb":
        assert "Hello from sandbox" in text and "user id: 1000" in text
        assert {"text/markdown", "text/html", "image/png",
                "application/vnd.jupyter.widget-view+json"} <= mime_types(nb)
        assert "The slider is at 5" in text
    elif name == "teaching.ipynb":
        assert "All checks passed." in text and "image/png" in mime_types(nb)
        assert "Last year's class: 24 estimates" in text  # last_year.csv, beside it
    elif name == "isolation.ipynb":
        assert "interfaces: ['lo']" in text and "connection failed" in text
        assert "/work -> does not exist" in text and "the system is read-only" in text
        assert "working folder: /home/user/" in text and "(on the host) is this VM" in text
        assert "written here, in the VM only: stays in the VM" in text
        assert "the limit held" in text and "still responsive: 42" in text
    else:
        pytest.fail(f"no expectations written for {name}")


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_nbclient(name: str, tmp_path: Path) -> None:
    folder = beside(tmp_path)
    nb = nbformat.read(folder / name, as_version=4)
    NotebookClient(nb, kernel_name="sandbox-python", timeout=240, startup_timeout=150,
                   resources={"metadata": {"path": str(folder)}}).execute()
    check(name, nb)


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_papermill(name: str, tmp_path: Path) -> None:
    import papermill

    (tmp_path / "in").mkdir()
    folder = beside(tmp_path / "in")
    out = tmp_path / name
    params = {"samples": 50_000} if name == "teaching.ipynb" else {}
    papermill.execute_notebook(str(folder / name), str(out), parameters=params, cwd=str(folder),
                               kernel_name="sandbox-python", start_timeout=150,
                               execution_timeout=240, progress_bar=False)
    nb = nbformat.read(out, as_version=4)
    check(name, nb)
    if params:
        assert "With 50000 samples" in outputs_text(nb)
        assert any("injected-parameters" in c.metadata.get("tags", []) for c in nb.cells)


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_jupyter_execute(name: str, tmp_path: Path) -> None:
    copy = beside(tmp_path) / name
    proc = subprocess.run(
        [str(BIN / "jupyter"), "execute", "--inplace", "--kernel_name=sandbox-python",
         "--timeout=240", "--startup_timeout=150", str(copy)],
        capture_output=True, text=True, timeout=380, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    check(name, nbformat.read(copy, as_version=4))


def test_nbconvert_execute(tmp_path: Path) -> None:
    proc = subprocess.run(
        [str(BIN / "jupyter"), "nbconvert", "--to", "notebook", "--execute",
         "--ExecutePreprocessor.kernel_name=sandbox-python",
         "--ExecutePreprocessor.timeout=240", "--ExecutePreprocessor.startup_timeout=150",
         "--output-dir", str(tmp_path), str(EXAMPLES / "teaching.ipynb")],
        capture_output=True, text=True, timeout=380, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    check("teaching.ipynb", nbformat.read(tmp_path / "teaching.ipynb", as_version=4))
