"""The guest's Python packages on a real VM: current IPython, and a consistent set of wheels."""

import re

import pytest

from sandbox_kernel.vm import SandboxVM
from tests.integration.vmtools import run

pytestmark = [pytest.mark.vm, pytest.mark.timeout(180), pytest.mark.asyncio(loop_scope="module")]

# What `pip check` does, with the image's own metadata: each requirement of each installed
# distribution, under the guest's markers, is met by what is installed.
_UNMET_REQUIREMENTS = """
from importlib import metadata
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
have = {canonicalize_name(d.metadata["Name"]): d.version for d in metadata.distributions()}
unmet = []
for dist in metadata.distributions():
    for text in dist.requires or []:
        req = Requirement(text)
        if req.marker is not None and not req.marker.evaluate({"extra": ""}):
            continue
        version = have.get(canonicalize_name(req.name))
        if version is None or not req.specifier.contains(version, prereleases=True):
            unmet.append(f"{dist.metadata['Name']} needs {text}, has {version}")
print(len(have), unmet)
"""


async def test_the_guest_runs_ipython_9_with_ipykernel_s_tracebacks(vm: SandboxVM) -> None:
    out = await run(vm, "import IPython\nprint(IPython.version_info[0])")
    assert out.stdout == "9\n", out.stderr
    failed = (await run(vm, "x = 1\ndef f():\n    return 1 / 0\nf()")).complete
    count = failed.execution_count
    plain = re.sub(r"\x1b\[[0-9;]*m", "", "\n".join(failed.traceback))
    # As ipykernel shows it: "Cell In[N], line M", and the cell's lines up to the failing one.
    assert f"Cell In[{count}], line 4\n      1 x = 1\n" in plain
    assert f"----> 4 f()\n\nCell In[{count}], line 3, in f()\n" in plain
    assert plain.endswith("ZeroDivisionError: division by zero")


async def test_every_requirement_of_every_guest_package_is_met(vm: SandboxVM) -> None:
    out = await run(vm, _UNMET_REQUIREMENTS)
    count, unmet = out.stdout.split(" ", 1)
    assert unmet == "[]\n", unmet
    assert int(count) > 30, out.stdout  # the wheels are all there, not only the stdlib's


async def test_numpy_and_matplotlib_are_current_and_compute(vm: SandboxVM) -> None:
    out = await run(vm, "import numpy as np, matplotlib\n"
                        "a = np.random.default_rng(1).random((120, 120))\n"
                        "print(np.__version__.split('.')[0], matplotlib.__version__,\n"
                        "      np.allclose(a @ np.linalg.inv(a), np.eye(120)), repr(a.sum() * 0))")
    major, mpl, solved, scalar = out.stdout.split()
    assert major == "2" and tuple(map(int, mpl.split(".")[:2])) >= (3, 10), out.stdout
    assert solved == "True" and scalar == "np.float64(0.0)", out.stdout
