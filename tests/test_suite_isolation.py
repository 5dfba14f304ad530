"""The suite keeps to folders of its own and counts only the VMs it started: two suites run
at once on one machine (two checkouts, or CI beside a developer) and both pass."""

import os
import subprocess
import sys
from pathlib import Path

import platformdirs
import pytest

from sandbox_kernel import paths
from tests.conftest import SUITE_ROOT

REPO = Path(__file__).resolve().parents[1]
# What used to fail with another suite or kernel beside it: broken snapshots (the user's own
# were damaged, and the capture lock was contended), and the leak check after a SIGKILL.
_SELECTION = ["tests/integration/test_snapshots.py", "tests/kernel/test_lifecycle.py",
              "-k", "truncate or killed"]


def test_the_suite_uses_its_own_folders_and_shares_only_the_images() -> None:
    user_cache = Path(platformdirs.user_cache_dir(paths.APP))
    for folder in (paths.cache_dir(), paths.snapshots_dir(), paths.initramfs_dir(),
                   paths.logs_dir(), paths.run_root()):
        assert folder.is_relative_to(SUITE_ROOT), folder
        assert not folder.is_relative_to(user_cache)
    assert not paths.images_dir().is_relative_to(SUITE_ROOT)


@pytest.mark.vm
@pytest.mark.timeout(900)
def test_two_suites_at_once_both_pass() -> None:
    # Both skip the KVM probe (20 s of a core each where KVM is broken): not what is tested.
    env = {**os.environ, "SANDBOX_KERNEL_ACCEL": "tcg"}
    suites = [subprocess.Popen(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *_SELECTION],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for _ in range(2)]
    outputs = [suite.communicate(timeout=840)[0] for suite in suites]
    for suite, output in zip(suites, outputs, strict=True):
        assert suite.returncode == 0, output[-4000:]
        assert "2 passed" in output, output[-2000:]
