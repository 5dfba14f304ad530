"""The shared folder and the wheelhouse each do without the other: one that cannot be shared
leaves the other in place, and %sandbox says which is missing and why."""

from pathlib import Path
from typing import Literal

import pytest

from sandbox_kernel.share.plan import SharePlan
from sandbox_kernel.share.settings import ShareSettings
from sandbox_kernel.share.transport import ShareTransport
from sandbox_kernel.share.wheelhouse import WheelhousePlan
from sandbox_kernel.vm import SandboxVM, VMConfig, start_vm
from tests.integration.vmtools import run

pytestmark = [pytest.mark.vm, pytest.mark.timeout(240), pytest.mark.asyncio(loop_scope="module")]
WHEEL = "sbx_none-1.0-py3-none-any.whl"


@pytest.mark.parametrize("failing", ["wheelhouse", "share"])
async def test_a_part_that_cannot_be_served_leaves_the_other(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        failing: Literal["share", "wheelhouse"]) -> None:
    folder, wheels = tmp_path / "course", tmp_path / "wheels"
    for made in (folder, wheels):
        made.mkdir()
    (folder / "data.csv").write_text("x\n")
    (wheels / WHEEL).write_bytes(b"")
    serve = SandboxVM._serve

    async def serve_but(vm: SandboxVM, port: Literal["share", "wheelhouse"],
                        settings: ShareSettings) -> ShareTransport:
        if port == failing:
            raise OSError("the test's refusal")
        return await serve(vm, port, settings)

    monkeypatch.setattr(SandboxVM, "_serve", serve_but)
    vm = await start_vm(VMConfig(
        snapshots=False, boot_timeout_s=90, share=SharePlan(ShareSettings(folder=folder)),
        wheelhouse=WheelhousePlan(ShareSettings(folder=wheels))))
    try:
        out = await run(vm, "import os\nprint(os.getcwd(), os.listdir('/opt/wheelhouse'))\n"
                            "%sandbox")
    finally:
        await vm.stop()
    failure = "it could not be served (the test's refusal)"
    if failing == "wheelhouse":
        assert out.stdout.startswith("/home/user/course []\n"), out.stdout
        assert (vm.share_failure, vm.wheelhouse_failure) == ("", failure)
        assert "is this VM's working folder" in out.stdout
        assert f"No wheelhouse: {failure}" in out.stdout
    else:
        assert out.stdout.startswith(f"/home/user ['{WHEEL}']\n"), out.stdout
        assert (vm.share_failure, vm.wheelhouse_failure) == (failure, "")
        assert f"No folder of the host is visible in this VM: {failure}" in out.stdout
        assert "is the wheelhouse" in out.stdout
