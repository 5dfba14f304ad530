"""A notebook using pandas, SciPy, scikit-learn and seaborn runs on the sandbox-scientific
kernelspec under nbclient. It needs the scientific image (`make scientific`, which CI runs):
skipped without it, unless SANDBOX_KERNEL_TESTS_SCIENTIFIC=1 says it must be there."""

import os
from pathlib import Path

import nbformat
import pytest
from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel
from nbclient import NotebookClient

from sandbox_kernel.image.store import image_paths
from tests.notebooks.test_examples import mime_types, outputs_text

NOTEBOOK = Path(__file__).resolve().parents[2] / "examples/scientific/iris.ipynb"
KERNEL = "sandbox-scientific"

pytestmark = [pytest.mark.vm, pytest.mark.scientific, pytest.mark.timeout(600)]


def _missing() -> str:
    if not image_paths("scientific").base_complete():
        return "the scientific image is not built"
    try:
        KernelSpecManager().get_kernel_spec(KERNEL)
    except NoSuchKernel:
        return f"the {KERNEL} kernelspec is not installed"
    return ""


@pytest.fixture(autouse=True)
def _scientific_image() -> None:
    missing = _missing()
    if missing and os.environ.get("SANDBOX_KERNEL_TESTS_SCIENTIFIC") == "1":
        pytest.fail(f"{missing}: run `make scientific`")
    if missing:
        pytest.skip(f"{missing} (`make scientific`)")


def test_the_scientific_notebook(tmp_path: Path) -> None:
    nb = nbformat.read(NOTEBOOK, as_version=4)
    assert nb.metadata.kernelspec.name == KERNEL
    # Cold boot, a snapshot that imports pandas, then scikit-learn and SciPy under TCG.
    NotebookClient(nb, kernel_name=KERNEL, timeout=400, startup_timeout=300,
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    text = outputs_text(nb)
    assert "ERROR" not in text, text
    assert "numpy 2." in text and "All checks passed." in text
    assert "p < 1e-10: True" in text and "test accuracy: " in text
    assert {"text/html", "image/png"} <= mime_types(nb)
