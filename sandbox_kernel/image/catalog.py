"""The recipes this package ships (``recipes/*.toml``), and finding the one a user names:
a built-in recipe by its name, or a recipe file by its path."""

import functools
from importlib.resources import files
from pathlib import Path

from sandbox_kernel.image import recipe_file
from sandbox_kernel.image.recipe import Recipe
from sandbox_kernel.image.recipe_file import RecipeError


def builtin_folder() -> Path:
    return Path(str(files("sandbox_kernel.image").joinpath("recipes")))


def builtin_names() -> list[str]:
    return sorted(path.stem for path in builtin_folder().glob("*.toml"))


@functools.cache
def builtin(name: str, checked: bool = True) -> Recipe:
    """``checked=False``: only what the image's name and hash need (see ``recipe_file``)."""
    path = builtin_folder() / f"{name}.toml"
    if not path.is_file():
        raise RecipeError(f"there is no built-in recipe {name!r} (built-in: "
                          f"{', '.join(builtin_names())}); to build a recipe file, give its "
                          "path, like ./my-image.toml")
    recipe = recipe_file.load(path, checked)
    if recipe.name != name:
        raise RecipeError(f"{path} is named {recipe.name!r}: a built-in recipe's name is its "
                          "file's")
    return recipe


def is_builtin(name: str) -> bool:
    return (builtin_folder() / f"{name}.toml").is_file()


def find(file_or_name: str) -> Recipe:
    """A path (anything with a '/' or ending in .toml) is a recipe file; a bare word is the
    name of a built-in recipe."""
    if "/" not in file_or_name and not file_or_name.endswith(".toml"):
        return builtin(file_or_name)
    path = Path(file_or_name)
    recipe = recipe_file.load(path)
    shipped = builtin_folder() / f"{recipe.name}.toml"
    if shipped.is_file() and path.resolve() != shipped.resolve():
        # Its image would replace the built-in one's, and kernelspecs bound to the built-in
        # image would start this one.
        raise RecipeError(f"{path} is named {recipe.name!r}, as a built-in recipe is: give it "
                          f"a name of its own (name = \"my-{recipe.name}\")")
    return recipe
