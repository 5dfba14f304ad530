"""VM settings reach the VM: from a kernelspec of its own, and from the config file."""

import os
from pathlib import Path

import pytest
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import KernelManager

from sandbox_kernel.kernel.app import CONFIG_FILE
from sandbox_kernel.kernel.install import install
from tests.kernel.kernels import BOOT_TIMEOUT, KERNEL_NAME, run, stdout_of

pytestmark = [pytest.mark.vm, pytest.mark.timeout(300)]

_SIZE = "import os\nprint(os.cpu_count(), int(open('/proc/meminfo').readline().split()[1]) // 1024)"


def _vm_size(km: KernelManager, env: dict[str, str] | None = None) -> tuple[int, int]:
    km.start_kernel(env={**os.environ, **(env or {})})
    kc = km.client()
    kc.start_channels()
    try:
        kc.wait_for_ready(timeout=BOOT_TIMEOUT)
        reply, msgs = run(kc, _SIZE, timeout=BOOT_TIMEOUT)
        assert reply["content"]["status"] == "ok", reply["content"]
        cpus, mib = stdout_of(msgs).split()
        return int(cpus), int(mib)
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=False)


def test_a_kernelspec_with_its_own_memory_and_cpus(tmp_path: Path) -> None:
    install(prefix=str(tmp_path), name="sandbox-small", memory_mb=512, cpus=1)
    specs = KernelSpecManager(kernel_dirs=[str(tmp_path / "share/jupyter/kernels")])
    cpus, mib = _vm_size(KernelManager(kernel_name="sandbox-small",
                                       kernel_spec_manager=specs))
    assert cpus == 1
    assert 400 < mib <= 512  # MemTotal: what the guest kernel keeps for itself is not in it


def test_the_config_file_in_jupyter_s_config_folder_is_read(tmp_path: Path) -> None:
    (tmp_path / f"{CONFIG_FILE}.py").write_text("c.SandboxKernel.memory_mb = 768\n")
    cpus, mib = _vm_size(KernelManager(kernel_name=KERNEL_NAME),
                         {"JUPYTER_CONFIG_DIR": str(tmp_path)})
    assert cpus == 2
    assert 640 < mib <= 768
