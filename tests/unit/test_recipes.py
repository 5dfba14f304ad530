"""Recipe files: what they may say, what a mistake in one is told as, and the built-in ones."""

import textwrap
from dataclasses import replace
from pathlib import Path

import pytest

from sandbox_kernel.image import catalog, recipe
from sandbox_kernel.image.recipe_file import RecipeError, parse

EXAMPLE = """
name = "course"
suite = "bookworm"
debian = ["python3-tabulate"]
pypi = ["pandas>=2", "humanize; python_version >= '3.8'"]
preload = ["pandas", "matplotlib.pyplot"]
debian_exclude = ["python3-tk"]
"""


def test_a_recipe_file_says_what_goes_into_the_image() -> None:
    r = parse(EXAMPLE, "course.toml")
    assert (r.name, r.suite) == ("course", "bookworm")
    assert r.debian == ("python3-tabulate",) and r.debian_exclude == ("python3-tk",)
    assert r.preload == ("pandas", "matplotlib.pyplot")
    # Every image gets what the guest agent needs, before the recipe's own.
    assert r.all_debian == (*recipe.BASE_DEBIAN, "python3-tabulate")
    assert r.requirements == (*recipe.BASE_REQUIREMENTS, "pandas>=2",
                              "humanize; python_version >= '3.8'")


def test_only_the_name_is_required() -> None:
    r = parse('name = "bare"', "bare.toml")
    assert r.suite == "bookworm" and r.debian == r.pypi == r.preload == ()
    assert r.all_debian == recipe.BASE_DEBIAN


@pytest.mark.parametrize(("text", "says"), [
    ("name = 'x'\ndebain = ['less']", "unknown key 'debain'"),
    ("debian = []", "has no name"),
    ("name = 'Has Spaces'", "name = 'Has Spaces' is not 1 to 40 lowercase"),
    ("name = 'x'\nsuite = 'Bookworm 12'", "suite = 'Bookworm 12' is not a Debian suite"),
    ("name = 'x'\ndebian = 'less'", "debian must be a list of strings"),
    ("name = 'x'\npypi = [3]", "pypi must be a list of strings"),
    ("name = 'x'\ndebian = ['less; rm -rf /']", "debian entry 'less; rm -rf /' is not"),
    ("name = 'x'\npypi = ['--index-url=http://evil.invalid']", "is not a requirement"),
    ("name = 'x'\npypi = ['pandas @ http://evil.invalid/p.whl']", "is a URL"),
    ("name = 'x'\npreload = ['pandas;os']", "preload entry 'pandas;os' is not a module"),
    ("name = 'x'\npypi = [", "is not valid TOML"),
])
def test_a_mistake_is_named_with_the_file_and_key(text: str, says: str) -> None:
    with pytest.raises(RecipeError, match=None) as info:
        parse(text, "mine.toml")
    assert str(info.value).startswith("mine.toml")
    assert says in str(info.value)


def test_the_digest_follows_the_content_not_the_layout() -> None:
    first = parse(EXAMPLE, "a.toml")
    reformatted = parse("# a comment\n" + textwrap.dedent(EXAMPLE).replace(" = ", "="), "b.toml")
    assert first.digest() == reformatted.digest()
    assert replace(first, pypi=("pandas>=2.1",)).digest() != first.digest()
    assert replace(first, preload=()).digest() != first.digest()
    assert replace(first, suite="trixie").digest() != first.digest()


def test_a_new_build_format_or_base_set_makes_a_new_image(
        monkeypatch: pytest.MonkeyPatch) -> None:
    r = parse(EXAMPLE, "a.toml")
    before = r.digest()
    monkeypatch.setattr(recipe, "BASE_REQUIREMENTS", (*recipe.BASE_REQUIREMENTS, "tqdm"))
    assert r.digest() != before
    monkeypatch.undo()
    monkeypatch.setattr(recipe, "BUILD_FORMAT", recipe.BUILD_FORMAT + 1)
    assert r.digest() != before


def test_the_built_in_recipes() -> None:
    assert catalog.builtin_names() == ["default", "scientific"]
    default = catalog.find("default")
    pinned = {req.split("==")[0]: req.split("==")[1] for req in default.requirements}
    assert pinned["ipython"].startswith("9.") and pinned["numpy"].startswith("2.")
    assert default.preload == ("numpy", "numpy.random", "matplotlib", "matplotlib.pyplot",
                               "ipywidgets")
    scientific = catalog.find("scientific")
    names = {req.split(">")[0].split("=")[0] for req in scientific.pypi}
    assert {"pandas", "scipy", "scikit-learn", "seaborn", "sympy", "statsmodels", "tqdm",
            "requests", "pyyaml", "networkx", "pillow", "numpy", "matplotlib"} <= names
    assert {"numpy>=2", "pandas>=2", "matplotlib>=3.10"} <= set(scientific.pypi)
    assert "pandas" in scientific.preload
    # Every Python package is a wheel: Debian's, built for numpy 1 and IPython 8, must not be in.
    for image in (default, scientific):
        assert not [name for name in image.all_debian if name.startswith("python3-")]


def test_the_built_in_recipes_pass_the_checks_a_kernel_start_skips() -> None:
    for name in catalog.builtin_names():
        checked = catalog.builtin(name)
        assert catalog.builtin(name, checked=False) == checked
        assert parse((catalog.builtin_folder() / f"{name}.toml").read_text(), name) == checked
    with pytest.raises(RecipeError, match="is not a requirement"):
        parse('name = "x"\npypi = ["--pre"]', "x.toml")
    assert parse('name = "x"\npypi = ["--pre"]', "x.toml", checked=False).pypi == ("--pre",)


def test_a_bare_word_names_a_built_in_recipe() -> None:
    with pytest.raises(RecipeError, match=r"no built-in recipe 'sceintific'.*default, "
                                          r"scientific.*path"):
        catalog.find("sceintific")


def test_a_recipe_file_may_not_take_a_built_in_name(tmp_path: Path) -> None:
    mine = tmp_path / "mine.toml"
    mine.write_text('name = "default"\npypi = ["humanize"]\n')
    with pytest.raises(RecipeError, match=r"named 'default', as a built-in recipe is"):
        catalog.find(str(mine))
    mine.write_text('name = "my-default"\npypi = ["humanize"]\n')
    assert catalog.find(str(mine)).name == "my-default"
    # The packaged file itself is the built-in recipe, by path as by name.
    shipped = catalog.builtin_folder() / "default.toml"
    assert catalog.find(str(shipped)) == catalog.find("default")


def test_a_missing_recipe_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(RecipeError, match=r"cannot read the recipe .*nothing\.toml"):
        catalog.find(str(tmp_path / "nothing.toml"))
