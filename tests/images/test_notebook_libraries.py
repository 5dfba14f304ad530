"""Real libraries that decide by themselves whether they run in a notebook kernel, in an image
that has them: tqdm's auto bar becomes the notebook's widget bar, as under ipykernel, and
plotly picks the renderer it picks under ipykernel."""

import os
from collections.abc import Iterator
from typing import Any

import pytest
from jupyter_client.blocking.client import BlockingKernelClient
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import KernelManager, start_new_kernel

from tests.images.conftest import HERE, folders, sandbox_kernel
from tests.kernel.kernels import BOOT_TIMEOUT, run, stdout_of

pytestmark = [pytest.mark.vm, pytest.mark.network, pytest.mark.timeout(900)]

TQDM = """\
import warnings
warnings.simplefilter('ignore')  # tqdm warns that its auto bar is experimental in a notebook
from tqdm.auto import tqdm
from tqdm.notebook import tqdm as notebook_bar
for _ in tqdm(range(3)):
    pass
print(issubclass(tqdm, notebook_bar))
"""
# What plotly's own detection picks; under ipykernel that is "plotly_mimetype" (plotly reads
# the shell's class name and module), and a figure is shown as plotly's MIME type.
PLOTLY = """\
import plotly.graph_objects as go
import plotly.io as pio
print(pio.renderers.default)
go.Figure(go.Bar(y=[1, 2])).show()
"""
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
FIRST_START_TIMEOUT = 420


@pytest.fixture(scope="module")
def libraries_kernel(tmp_path_factory: pytest.TempPathFactory
                     ) -> Iterator[BlockingKernelClient]:
    env = folders("notebook-libraries")
    proc = sandbox_kernel(env, "image", "build", "--recipe",
                          str(HERE / "notebook-libraries.toml"))
    assert proc.returncode == 0, proc.stderr[-4000:]
    prefix = tmp_path_factory.mktemp("kernelspec")
    proc = sandbox_kernel(env, "install", "--prefix", str(prefix), "--image",
                          "test-notebook-libraries")
    assert proc.returncode == 0, proc.stderr
    specs = KernelSpecManager(kernel_dirs=[str(prefix / "share/jupyter/kernels")])
    km = KernelManager(kernel_name="sandbox-test-notebook-libraries", kernel_spec_manager=specs)
    km.start_kernel(env={**os.environ, "SANDBOX_KERNEL_IMAGES_DIR": env[
        "SANDBOX_KERNEL_IMAGES_DIR"]})
    kc = km.client()
    kc.start_channels()
    try:
        kc.wait_for_ready(timeout=BOOT_TIMEOUT)
        # The first start boots cold and takes the image's snapshot: minutes on a busy machine.
        run(kc, "pass", timeout=FIRST_START_TIMEOUT)
        yield kc
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=False)  # its own shutdown removes its VM's folder


def _shown(msgs: list[dict[str, Any]]) -> list[list[str]]:
    return [sorted(m["content"]["data"]) for m in msgs if m["msg_type"] == "display_data"]


def test_tqdm_auto_shows_the_notebook_bar_as_under_ipykernel(
        libraries_kernel: BlockingKernelClient) -> None:
    km, reference = start_new_kernel(kernel_name="python3", startup_timeout=60)
    try:
        _, expected = run(reference, TQDM)
    finally:
        reference.stop_channels()
        km.shutdown_kernel(now=True)
    reply, got = run(libraries_kernel, TQDM)
    assert reply["content"]["status"] == "ok", reply["content"]
    assert stdout_of(got) == stdout_of(expected) == "True\n"
    assert _shown(got) == _shown(expected)
    assert any(WIDGET_VIEW in bundle for bundle in _shown(got))


def test_plotly_picks_the_renderer_it_picks_under_ipykernel(
        libraries_kernel: BlockingKernelClient) -> None:
    reply, msgs = run(libraries_kernel, PLOTLY, timeout=300)
    assert reply["content"]["status"] == "ok", reply["content"]
    assert stdout_of(msgs) == "plotly_mimetype\n"
    assert _shown(msgs) == [["application/vnd.plotly.v1+json"]]
