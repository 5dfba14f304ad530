"""``python -m bench.share_read [MB]``: reading a file through the shared folder's FUSE
server, mounted on this host as in tests/unit/test_share_mount.py (needs root).

Reports MB/s and the CPU time per MB of the server's thread and of the relay's (the part
that runs in the guest in a VM), with FUSE's default read-ahead and with 1 MiB.
"""

import os
import sys
import tempfile
import threading
import time
from pathlib import Path

from sandbox_kernel.guest import share_mount
from sandbox_kernel.share.loopback import loopback_mount, unavailable
from sandbox_kernel.share.settings import MIB, ShareSettings


def _cpu(threads: tuple[threading.Thread, ...]) -> float:
    total = 0.0
    for thread in threads:
        if thread.ident is not None and thread.is_alive():
            total += time.clock_gettime(time.pthread_getcpuclockid(thread.ident))
    return total


def run(folder: Path, view: Path, megabytes: int, readahead_kib: int | None) -> str:
    settings = ShareSettings(folder, max_file_bytes=4 * megabytes * MIB,
                             max_read_bytes=4 * megabytes * MIB)
    with loopback_mount(settings, str(view), print) as mount:
        if readahead_kib is not None:
            view.stat()  # after the INIT reply, which sets the read-ahead it agreed
            share_mount.set_readahead(share_mount.mounted_device(str(view)), readahead_kib)
        server, relay = (mount.transport.thread,), mount.relay.threads
        before = (_cpu(server), _cpu(relay), time.perf_counter())
        with open(view / "data.bin", "rb", buffering=0) as f:
            while f.read(MIB):
                pass
        after = (_cpu(server), _cpu(relay), time.perf_counter())
    mb = megabytes * MIB / 1e6
    server_ms, relay_ms, wall = (1e3 * (b - a) for a, b in zip(before, after, strict=True))
    label = f"read-ahead {readahead_kib} KiB" if readahead_kib else "default read-ahead"
    return (f"{label:22s} {mb / (wall / 1e3):7.0f} MB/s   server {server_ms / mb:5.2f} CPU ms/MB"
            f"   relay {relay_ms / mb:5.2f} CPU ms/MB")


def main() -> None:
    if (why := unavailable()) is not None:
        sys.exit(f"cannot mount here: {why}")
    megabytes = int(sys.argv[1]) if len(sys.argv) > 1 else 100
    with tempfile.TemporaryDirectory(prefix="share-bench-") as tmp:
        folder, view = Path(tmp) / "share", Path(tmp) / "view"
        folder.mkdir()
        view.mkdir()
        with open(folder / "data.bin", "wb") as f:
            for _ in range(megabytes):
                f.write(os.urandom(MIB))
        print(f"reading {megabytes} MiB through the share (host page cache warm), "
              f"1 MiB reads, fresh mount each time:")
        for readahead in (None, 1024, None, 1024):
            print(" ", run(folder, view, megabytes, readahead))


if __name__ == "__main__":
    main()
