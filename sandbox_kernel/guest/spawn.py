"""Starting the worker process. Standard library only: PID 1 starts the worker before it
imports anything slow, so that the two start up side by side."""

import ctypes
import fcntl
import os
import resource
import signal
import subprocess
import sys
from dataclasses import dataclass

USER_UID = 1000
USER_HOME = "/home/user"
# Last: the sandbox's own commands (pip), which the image's would override; before them, the
# commands of what pip installs from a wheelhouse.
PATH = ("/usr/local/bin:/usr/bin:/bin:/usr/local/sbin:/usr/sbin:/sbin:"
        f"{USER_HOME}/.local/bin:/opt/sandbox/bin")
_F_SETPIPE_SZ = 1031
_PR_SET_NO_NEW_PRIVS = 38
_DEFAULT_PROCESSES = 1024


WORKER_CGROUP = "/sys/fs/cgroup/worker"  # made by guest/init


def _become_the_user() -> None:
    """Runs in the worker child, as root until it has joined the worker's cgroup (which a
    process must do before it can start another); then the user for good, with no way back
    up and a bounded process count."""
    try:
        fd = os.open(f"{WORKER_CGROUP}/cgroup.procs", os.O_WRONLY)
    except FileNotFoundError:
        pass  # a guest without cgroups (a test on the host): the limits below still hold
    else:
        try:
            os.write(fd, b"0")
        finally:
            os.close(fd)
    processes = _process_cap()
    # Held back until the worker has its handler (see Worker): an interrupt while it starts
    # would otherwise end it, losing the cell that waits for it.
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    os.setgroups([])
    os.setresgid(USER_UID, USER_UID, USER_UID)
    os.setresuid(USER_UID, USER_UID, USER_UID)
    ctypes.CDLL(None).prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
    resource.setrlimit(resource.RLIMIT_NPROC, (processes, processes))


def _process_cap() -> int:
    """The worker cgroup's process cap (the host's setting), which the user's own limit
    follows."""
    try:
        with open(f"{WORKER_CGROUP}/pids.max") as fh:
            return int(fh.read())
    except (OSError, ValueError):
        return _DEFAULT_PROCESSES


def _pipe(size: int = 1 << 20) -> tuple[int, int]:
    r, w = os.pipe()
    try:
        fcntl.fcntl(r, _F_SETPIPE_SZ, size)
    except OSError:
        pass
    return r, w


@dataclass
class WorkerProcess:
    proc: "subprocess.Popen[bytes]"
    req_w: int  # requests to the worker
    msg_r: int  # its structured events
    out_r: int  # its stdout
    err_r: int  # its stderr
    side_w: int  # debug requests, which its debug thread serves while a cell runs


def spawn_worker(cwd: str = USER_HOME, timezone: str = "",
                 preload: tuple[str, ...] = ()) -> WorkerProcess:
    """``preload``: modules the worker imports in the background once it has started."""
    req_r, req_w = _pipe()
    msg_r, msg_w = _pipe()
    out_r, out_w = _pipe()
    err_r, err_w = _pipe()
    side_r, side_w = _pipe()
    env = {
        "HOME": USER_HOME, "USER": "user", "LOGNAME": "user", "PATH": PATH,
        "LANG": "C.UTF-8", "TERM": "xterm-256color", "PYTHONPATH": "/opt/sandbox",
        "MPLBACKEND": "module://matplotlib_inline.backend_inline",
        "PIP_CONFIG_FILE": "/opt/sandbox/pip.conf",  # see image/initramfs.py
        "SANDBOX_REQ_FD": str(req_r), "SANDBOX_MSG_FD": str(msg_w),
        "SANDBOX_SIDE_FD": str(side_r),
    }
    if timezone:
        env["TZ"] = timezone
    if preload:
        env["SANDBOX_PRELOAD"] = ",".join(preload)
    proc = subprocess.Popen(
        [sys.executable, "-c", "from sandbox_kernel.guest.worker import main; main()"],
        stdin=subprocess.DEVNULL, stdout=out_w, stderr=err_w, pass_fds=(req_r, msg_w, side_r),
        env=env, cwd=cwd, start_new_session=True, preexec_fn=_become_the_user,
    )
    for fd in (req_r, msg_w, out_w, err_w, side_r):
        os.close(fd)
    return WorkerProcess(proc, req_w, msg_r, out_r, err_r, side_w)
