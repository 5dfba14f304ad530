"""What went wrong when pip could not resolve a recipe's requirements, told in a sentence per
cause: a package the index does not have, one with no wheel for the guest, a conflict."""

import re

from packaging.requirements import InvalidRequirement, Requirement

from sandbox_kernel.image.pip_tool import Pip, Target

_NO_MATCH = re.compile(r"No matching distribution found for (\S+)")
_FROM_VERSIONS = re.compile(r"Could not find a version that satisfies the requirement (\S+) "
                            r"\(from versions: ([^)]*)\)")
_WRONG_PYTHON = re.compile(r"Ignored the following versions that require a different python "
                           r"version: (.*)")
_SHOWN_VERSIONS = 6


def explain(output: str, pip: Pip, target: Target) -> str:
    causes = [*_missing(output, pip, target), *_conflicts(output)]
    if not causes:
        errors = [line for line in output.splitlines() if line.startswith("ERROR")]
        causes = errors[-5:] or output.strip().splitlines()[-10:]
    return ("The recipe's PyPI requirements cannot be met:\n" + "\n".join(
        f"  - {cause}" for cause in causes) +
        "\nChange the recipe's pypi list (see `Images` in the README), then build again.")


def _missing(output: str, pip: Pip, target: Target) -> list[str]:
    versions = dict(_FROM_VERSIONS.findall(output))
    wrong_python = _WRONG_PYTHON.search(output)
    causes = []
    for wanted in dict.fromkeys(_NO_MATCH.findall(output)):
        name = _name(wanted)
        if not _exists(pip, name):
            causes.append(f"{wanted}: there is no package {name!r} on the package index")
            continue
        usable = [v.strip() for v in versions.get(wanted, "none").split(",")
                  if v.strip() not in ("", "none")]
        have = (f"versions that have one: {', '.join(usable[-_SHOWN_VERSIONS:])}" if usable
                else "no version of it has one")
        cause = (f"{wanted}: no version that matches has a wheel for the guest's Python "
                 f"({target.describe()}); {have}")
        if wrong_python:
            cause += f" (these need another Python: {wrong_python[1][:200]})"
        causes.append(cause)
    return causes


def _conflicts(output: str) -> list[str]:
    """pip's own account: the line naming the packages, then why."""
    causes = [line.removeprefix("ERROR: ") for line in output.splitlines()
              if "conflicting dependencies" in line]
    block = re.search(r"The conflict is caused by:\n((?:[ \t]+\S.*\n?)+)", output)
    if block:
        causes += [f"  {line.strip()}" for line in block[1].splitlines()]
    return causes


def _name(requirement: str) -> str:
    try:
        return Requirement(requirement).name
    except InvalidRequirement:
        return requirement


def _exists(pip: Pip, name: str) -> bool:
    """Whether the index has the project at all, for any Python or platform."""
    return pip.run("index", "versions", "--pre", "--disable-pip-version-check", name
                   ).returncode == 0
