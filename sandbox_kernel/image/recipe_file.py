"""Recipes as users write them: a TOML file naming the image and what goes into it.

    name = "course"                   # the image's name: `install --image course`
    suite = "bookworm"                # Debian suite (default bookworm)
    debian = ["python3-tabulate"]     # Debian packages, besides the guest's own
    pypi = ["pandas>=2", "humanize"]  # requirements, resolved to wheels for the guest
    preload = ["pandas"]              # imported by the snapshot, so the first import is instant
    debian_exclude = ["python3-tk"]   # never installed, even when a package depends on it
"""

import re
import tomllib
from pathlib import Path
from typing import Any

from sandbox_kernel.errors import ImageBuildError
from sandbox_kernel.image.recipe import DEFAULT_SUITE, Recipe

_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,39}")
_SUITE = re.compile(r"[a-z]{2,20}")
# Debian policy's package names, with an optional "=version" pin.
_DEBIAN = re.compile(r"[a-z0-9][a-z0-9+.-]+(=[A-Za-z0-9.+~:-]+)?")
_MODULE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")
_LISTS = ("debian", "pypi", "preload", "debian_exclude")
KEYS = ("name", "suite", *_LISTS)


class RecipeError(ImageBuildError):
    """A recipe file that cannot be built as written; the message names the file and key."""


def load(path: Path, checked: bool = True) -> Recipe:
    try:
        text = path.read_text()
    except OSError as exc:
        raise RecipeError(f"cannot read the recipe {path}: {exc.strerror}") from None
    return parse(text, str(path), checked)


def parse(text: str, source: str, checked: bool = True) -> Recipe:
    """``checked=False`` skips the check of each entry: for the recipes this package ships
    (tested), read when a kernel starts, before anything heavy is imported."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise RecipeError(f"{source} is not valid TOML: {exc}") from None
    unknown = sorted(set(data) - set(KEYS))
    if unknown:
        raise RecipeError(f"{source}: unknown key {', '.join(map(repr, unknown))}; a recipe "
                          f"has {', '.join(KEYS)}")
    if "name" not in data:
        raise RecipeError(f'{source}: the recipe has no name (add name = "my-image")')
    lists = {key: _strings(data.get(key, []), key, source) for key in _LISTS}
    recipe = Recipe(name=_matching(data["name"], _NAME, "name", source),
                    suite=_matching(data.get("suite", DEFAULT_SUITE), _SUITE, "suite", source),
                    debian=lists["debian"], pypi=lists["pypi"], preload=lists["preload"],
                    debian_exclude=lists["debian_exclude"])
    if checked:
        _check_entries(recipe, source)
    return recipe


def check_name(name: str) -> None:
    _matching(name, _NAME, "name", "the image's name")


def _strings(value: Any, key: str, source: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise RecipeError(f"{source}: {key} must be a list of strings, like {key} = [\"...\"]")
    return tuple(v.strip() for v in value)


def _matching(value: Any, pattern: re.Pattern[str], key: str, source: str) -> str:
    if not isinstance(value, str) or not pattern.fullmatch(value):
        rules = {"name": "1 to 40 lowercase letters, digits, '-' or '_'",
                 "suite": "a Debian suite's code name, like bookworm"}
        raise RecipeError(f"{source}: {key} = {value!r} is not {rules[key]}")
    return value


def _check_entries(recipe: Recipe, source: str) -> None:
    for key, pattern, what in (("debian", _DEBIAN, "a Debian package name (or name=version)"),
                               ("debian_exclude", _DEBIAN, "a Debian package name"),
                               ("preload", _MODULE, "a module name, like pandas or a.b")):
        for entry in getattr(recipe, key):
            if not pattern.fullmatch(entry):
                raise RecipeError(f"{source}: {key} entry {entry!r} is not {what}")
    for entry in recipe.pypi:
        _check_requirement(entry, source)


def _check_requirement(entry: str, source: str) -> None:
    """A name with versions, extras and markers: never a pip option (``--index-url=…``) or a
    URL, whose files no index vouches for."""
    from packaging.requirements import InvalidRequirement, Requirement

    try:
        requirement = Requirement(entry)
    except InvalidRequirement as exc:
        raise RecipeError(f"{source}: pypi entry {entry!r} is not a requirement like "
                          f"'pandas>=2' ({exc})") from None
    if requirement.url:
        raise RecipeError(f"{source}: pypi entry {entry!r} is a URL; name a released version "
                          "instead (the builder takes wheels from the package index only)")
