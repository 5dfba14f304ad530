"""The notebook's folder in a real VM: reads as on a local kernel, writes kept in the VM,
write-back to the host within its quota, limits that name their setting, and confinement."""

import asyncio
import hashlib
import os
import socket
import stat
import zlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from sandbox_kernel import protocol as p
from sandbox_kernel.share.plan import SharePlan
from sandbox_kernel.share.settings import MIB, ShareSettings
from sandbox_kernel.vm import SandboxVM, VMConfig, start_vm
from tests.integration.vmtools import Outcome, run

pytestmark = [pytest.mark.vm, pytest.mark.timeout(240), pytest.mark.asyncio(loop_scope="module")]

SECRET = "host-only secret 7f3c9a"
BIG = os.urandom(5 * MIB)


def _png() -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return len(data).to_bytes(4, "big") + body + zlib.crc32(body).to_bytes(4, "big")
    header = (1).to_bytes(4, "big") * 2 + bytes([8, 0, 0, 0, 0])
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(b"\x00\x00")) + chunk(b"IEND", b""))


def _make_folder(root: Path) -> Path:
    (root / "secret.txt").write_text(SECRET)  # beside the shared folder, not in it
    folder = root / "course"
    (folder / "data").mkdir(parents=True)
    (folder / "data.csv").write_text("x,y\n1,2\n")
    (folder / "data" / "more.csv").write_text("z\n3\n")
    (folder / "big.bin").write_bytes(BIG)
    (folder / "huge.bin").write_bytes(b"h" * (9 * MIB))
    (folder / "helper.py").write_text("ran_helper = 'yes'\nprint('helper ran')\n")
    (folder / "mylib.py").write_text("def hello():\n    return 'hello from mylib'\n")
    (folder / "python.png").write_bytes(_png())
    (folder / "results").mkdir()
    (folder / "up").symlink_to("../secret.txt")
    (folder / "abs").symlink_to(root / "secret.txt")
    (folder / "dir_out").symlink_to(root)
    (folder / "alias.csv").symlink_to("data.csv")  # inside: the guest may follow it
    os.mkfifo(folder / "pipe")
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(folder / "sock"))
    os.mknod(folder / "null", stat.S_IFCHR | 0o666, os.makedev(1, 3))
    (folder / ".ssh").mkdir()
    (folder / ".ssh" / "id_rsa").write_text(SECRET)
    (folder / ".env").write_text(f"TOKEN={SECRET}\n")
    (folder / "server.pem").write_text(SECRET)
    return folder


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _make_folder(tmp_path_factory.mktemp("share"))


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def vm(folder: Path) -> AsyncIterator[SandboxVM]:
    settings = ShareSettings(folder=folder, writable=("results",), max_file_bytes=8 * MIB,
                             write_quota_bytes=1 * MIB)
    machine = await start_vm(VMConfig(boot_timeout_s=60, share=SharePlan(settings)))
    machine.notices = []  # type: ignore[attr-defined]
    machine.on_share_notice = machine.notices.append  # type: ignore[attr-defined]
    yield machine
    await machine.stop()


async def ok(vm: SandboxVM, code: str) -> Outcome:
    out = await run(vm, code)
    assert out.complete.status == "ok", (out.complete, out.stderr)
    return out


async def test_the_cells_work_in_the_folder_with_its_relative_paths(vm: SandboxVM) -> None:
    out = await ok(vm, "import os, glob\nprint(os.getcwd())\nprint(sorted(glob.glob('*.csv')))\n"
                       "print(open('data.csv').read(), open('data/more.csv').read())")
    assert out.stdout == "/home/user/course\n['alias.csv', 'data.csv']\nx,y\n1,2\n z\n3\n\n"


async def test_run_import_and_load_take_files_beside_the_notebook(vm: SandboxVM) -> None:
    out = await ok(vm, "%run helper.py\nimport mylib\nprint(ran_helper, mylib.hello())")
    assert out.stdout == "helper ran\nyes hello from mylib\n"
    out = await ok(vm, "%load mylib.py")
    assert out.complete.payload[0]["source"] == "set_next_input"
    assert "def hello()" in out.complete.payload[0]["text"]


async def test_an_image_from_a_file(vm: SandboxVM) -> None:
    out = await ok(vm, "from IPython.display import Image\nImage('python.png')")
    results = [e for e in out.events if isinstance(e, p.ExecuteResult)]
    assert results and results[0].data["image/png"].startswith("iVBORw0KGgo")


async def test_a_larger_file_arrives_byte_exact(vm: SandboxVM) -> None:
    out = await ok(vm, "import hashlib\nprint(hashlib.sha256(open('big.bin', 'rb').read())"
                       ".hexdigest())")
    assert out.stdout.strip() == hashlib.sha256(BIG).hexdigest()


async def test_writes_stay_in_the_vm(vm: SandboxVM, folder: Path) -> None:
    out = await ok(vm, "open('out.csv', 'w').write('a,b\\n')\n"
                       "open('data.csv', 'a').write('3,4\\n')\n"
                       "print(open('out.csv').read() + open('data.csv').read())")
    assert out.stdout == "a,b\nx,y\n1,2\n3,4\n\n"
    assert not (folder / "out.csv").exists()
    assert (folder / "data.csv").read_text() == "x,y\n1,2\n"


async def test_write_back_reaches_the_host_as_plain_files_of_the_user(vm: SandboxVM,
                                                                      folder: Path) -> None:
    await ok(vm, "import os\nopen('results/table.csv', 'w').write('r\\n1\\n')\n"
                 "os.chmod('results/table.csv', 0o6777)\nos.mkdir('results/figs')")
    written = folder / "results" / "table.csv"
    assert written.read_text() == "r\n1\n"
    st = written.stat()
    assert st.st_uid == os.getuid() and not st.st_mode & (stat.S_ISUID | stat.S_ISGID)
    assert (folder / "results" / "figs").is_dir()
    for code in ("os.symlink('/etc/passwd', 'results/link')", "os.mkfifo('results/fifo')",
                 "os.mknod('results/dev', 0o600 | 0o020000, os.makedev(1, 3))",
                 "os.link('results/table.csv', 'results/hard')"):
        out = await run(vm, code)
        assert out.complete.ename in ("PermissionError", "OSError"), (code, out.complete)
    assert sorted(p.name for p in (folder / "results").iterdir()) == ["figs", "table.csv"]


async def test_the_write_back_quota_holds_and_names_its_setting(vm: SandboxVM,
                                                                folder: Path) -> None:
    out = await run(vm, "open('results/big.bin', 'wb').write(b'q' * (3 * 2**20))")
    assert out.complete.ename == "OSError", out.complete
    assert (folder / "results" / "big.bin").stat().st_size <= 1 * MIB
    await asyncio.sleep(0.2)
    assert any("writable_quota_mb" in n for n in vm.notices)  # type: ignore[attr-defined]


async def test_a_file_over_the_size_limit_is_refused_and_the_setting_named(vm: SandboxVM) -> None:
    out = await run(vm, "open('huge.bin', 'rb').read()")
    assert out.complete.ename == "OSError" and "too large" in out.complete.evalue.lower()
    await asyncio.sleep(0.2)
    assert any("huge.bin" in n and "share_max_file_mb" in n
               for n in vm.notices)  # type: ignore[attr-defined]


async def test_symlinks_out_of_the_folder_are_not_followed(vm: SandboxVM) -> None:
    out = await run(vm, "for name in ('up', 'abs', 'dir_out/secret.txt', '../secret.txt'):\n"
                        "    try:\n        print(open(name).read())\n"
                        "    except OSError as e:\n        print(type(e).__name__)\n"
                        "print(open('alias.csv').read())")
    assert SECRET not in out.stdout
    assert out.stdout.startswith("FileNotFoundError\n" * 4 + "x,y\n1,2\n")  # the alias works


async def test_devices_fifos_sockets_and_secrets_are_invisible(vm: SandboxVM) -> None:
    names = ("pipe", "sock", "null", ".ssh/id_rsa", ".env", "server.pem")
    out = await ok(vm, f"import os\nprint(sorted(os.listdir()))\nfor name in {names}:\n"
                       "    print(name, os.path.lexists(name))")
    listing, *checks = out.stdout.splitlines()
    for hidden in ("pipe", "sock", "null", ".ssh", ".env", "server.pem"):
        assert f"'{hidden}'" not in listing
    assert checks == [f"{n} False" for n in ("pipe", "sock", "null", ".ssh/id_rsa", ".env",
                                             "server.pem")]


async def test_sandbox_magic_says_what_is_shared(vm: SandboxVM, folder: Path) -> None:
    out = await ok(vm, "%sandbox")
    assert f"{folder} (on the host)" in out.stdout and "/home/user/course" in out.stdout
    assert "results/" in out.stdout and "share_max_file_mb" in out.stdout


async def test_a_fresh_worker_starts_in_the_folder(vm: SandboxVM) -> None:
    out = await run(vm, "import os\nos.kill(os.getpid(), 9)")
    assert out.complete.ename == "WorkerDied"
    assert (await ok(vm, "import os\nprint(os.getcwd())")).stdout == "/home/user/course\n"


async def test_the_folder_reads_ahead_a_megabyte(vm: SandboxVM) -> None:
    """Raised in a thread after the mount's answer, off the start's path: in place long
    before this, the module's last cell."""
    out = await ok(vm, (
        "fields = [line.split() for line in open('/proc/self/mountinfo')]\n"
        "dev = next(f[2] for f in fields if f[f.index('-') + 1] == 'fuse' and "
        "f[f.index('-') + 2] == 'sandbox-share')\n"
        "print(open(f'/sys/class/bdi/{dev}/read_ahead_kb').read().strip())"))
    assert out.stdout.strip() == "1024"
