"""Wheels for the guest: resolution with the real pip against the package index (marked
`network`), the causes a failed resolution is told with, pins, and the hash-checked cache."""

import json
import os
import sys
from pathlib import Path

import pytest

from sandbox_kernel.errors import ImageBuildError
from sandbox_kernel.image import wheel_cache, wheels
from sandbox_kernel.image.pip_tool import Pip, Target
from sandbox_kernel.image.wheels import Pin

GUEST = Target("3.11", (2, 36))  # Debian 12's


def pip_seeing(site: Path | None = None) -> Pip:
    """pip under this interpreter with no site-packages but ``site``: a stand-in for the
    guest's interpreter, to which ``site`` is Debian's dist-packages."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    if site is not None:
        env["PYTHONPATH"] = str(site)
    return Pip((sys.executable, "-S", "-s"), env)


def debian_has(site: Path, name: str, version: str) -> None:
    info = site / f"{name}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")


def test_the_guests_platform_tags() -> None:
    platforms = GUEST.platforms()
    assert platforms[0] == "manylinux_2_36_x86_64" and "manylinux_2_17_x86_64" in platforms
    assert platforms[-3:] == ["manylinux2014_x86_64", "manylinux2010_x86_64",
                              "manylinux1_x86_64"]
    options = " ".join(GUEST.options())
    assert "--only-binary=:all:" in options and "--abi cp311" in options
    assert "--python-version 3.11" in options and "linux_x86_64 " not in options


@pytest.mark.network
def test_requirements_resolve_to_pinned_wheels(tmp_path: Path) -> None:
    pins = wheels.resolve(pip_seeing(), GUEST, ("python-dateutil==2.9.0.post0",))
    by_name = {pin.name.lower(): pin for pin in pins}
    assert set(by_name) == {"python-dateutil", "six"}
    dateutil = by_name["python-dateutil"]
    assert dateutil.version == "2.9.0.post0" and dateutil.requested
    assert not by_name["six"].requested  # a dependency, pinned all the same
    assert all(len(pin.sha256) == 64 and pin.file_name.endswith(".whl") for pin in pins)
    assert json.loads(json.dumps(dateutil.to_json())) == dateutil.to_json()
    assert Pin.from_json(dateutil.to_json()) == dateutil


@pytest.mark.network
def test_what_debian_provides_is_not_installed_again(tmp_path: Path) -> None:
    debian_has(tmp_path, "six", "1.16.0")
    pins = wheels.resolve(pip_seeing(tmp_path), GUEST, ("python-dateutil==2.9.0.post0",))
    assert [pin.name for pin in pins] == ["python-dateutil"]
    # Unless the recipe asks for a version Debian does not have: then the wheel wins.
    pins = wheels.resolve(pip_seeing(tmp_path), GUEST, ("six==1.17.0",))
    assert [(pin.name, pin.version) for pin in pins] == [("six", "1.17.0")]
    assert wheels.shadowed(pins, wheels.distributions(tmp_path)) == [
        "six 1.17.0 (Debian has 1.16.0)"]


@pytest.mark.network
@pytest.mark.parametrize(("requirements", "says"), [
    (("sandbox-kernel-no-such-package-zq",),
     "sandbox-kernel-no-such-package-zq: there is no package 'sandbox-kernel-no-such-package-zq'"
     " on the package index"),
    # numpy 1.21 has wheels for CPython up to 3.10 only.
    (("numpy==1.21.6",), "numpy==1.21.6: no version that matches has a wheel for the guest's "
                         "Python (cp311, manylinux x86_64 with glibc 2.36); versions that "
                         "have one: "),
    # docopt has never had a wheel at all.
    (("docopt",), "docopt: no version that matches has a wheel for the guest's Python "
                  "(cp311, manylinux x86_64 with glibc 2.36); no version of it has one"),
    (("pydantic==2.14.4", "pydantic-core==2.0.0"),
     "Cannot install pydantic-core==2.0.0 and pydantic==2.14.4 because these package "
     "versions have conflicting dependencies."),
])
def test_a_failed_resolution_names_its_cause(requirements: tuple[str, ...], says: str) -> None:
    with pytest.raises(ImageBuildError) as info:
        wheels.resolve(pip_seeing(), GUEST, requirements)
    message = str(info.value)
    assert message.startswith("The recipe's PyPI requirements cannot be met:\n  - ")
    assert says in message
    if "conflicting" in says:
        assert "pydantic 2.14.4 depends on pydantic-core==2.50.5" in message


def test_a_pin_needs_a_hash() -> None:
    item = {"metadata": {"name": "x", "version": "1"}, "requested": True,
            "download_info": {"url": "https://files.invalid/x-1-py3-none-any.whl",
                              "archive_info": {}}}
    with pytest.raises(ImageBuildError, match=r"no sha256 for x-1-py3-none-any\.whl"):
        wheels.pins_from_report({"install": [item]})
    item["download_info"]["archive_info"] = {"hashes": {"sha256": "ab" * 32}}  # type: ignore
    item["download_info"]["url"] = "file:///opt/x/x-1%2Blocal-py3-none-any.whl"  # type: ignore
    [pin] = wheels.pins_from_report({"install": [item]})
    assert pin == Pin("x", "1", "x-1+local-py3-none-any.whl", "ab" * 32, True)


@pytest.mark.network
def test_the_cache_keeps_only_files_that_match_their_pins(tmp_path: Path) -> None:
    [pin] = wheels.resolve(pip_seeing(), GUEST, ("six==1.17.0",))
    wheel_cache.fetch([pin], tmp_path, GUEST, pip_seeing())
    path = wheel_cache.cached(pin, tmp_path)
    assert path.parent.name == pin.sha256 and wheel_cache.files([pin], tmp_path) == [path]
    good = path.read_bytes()
    path.write_bytes(b"not the wheel")  # damaged, or swapped
    with pytest.raises(ImageBuildError, match=r"missing from .* or damaged"):
        wheel_cache.files([pin], tmp_path)
    wheel_cache.fetch([pin], tmp_path, GUEST, pip_seeing())  # fetched again
    assert path.read_bytes() == good
    forged = Pin(pin.name, pin.version, pin.file_name, "0" * 64, True)
    with pytest.raises(ImageBuildError, match=r"six-1\.17\.0-py2\.py3-none-any\.whl"):
        wheel_cache.fetch([forged], tmp_path, GUEST, pip_seeing())
