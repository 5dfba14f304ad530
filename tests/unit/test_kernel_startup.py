"""What the kernel process imports before its early VM start."""

import subprocess
import sys


def test_the_kernel_process_imports_no_protocol_before_its_early_vm_start() -> None:
    # __main__ imports these two before the app binds its sockets and starts the early VM;
    # pydantic and the protocol's models (about 50 ms) would delay QEMU's launch.
    code = ("import sys, sandbox_kernel.kernel.app, sandbox_kernel.kernel.kernel\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'pydantic'\n"
            "             or m in ('sandbox_kernel.protocol', 'sandbox_kernel.channel')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=30).stdout
    assert out.strip() == "[]"
