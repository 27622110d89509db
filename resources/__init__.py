"""The app's bundled data: icons, the sample project, the SD1.5 configs and tokenizer, the demo model.

The files ship inside this package (package data of the wheel), so code finds them through
`importlib.resources`, never through a path relative to another package's source file: the same lookup works
in a source checkout, an editable install and an installed wheel. They must be real files on disk (the
tokenizer, the safetensors weights and SQLite all open paths), so a zipped install is refused with a clear
error instead of paths that do not exist.

Standard library only: this package imports nothing from engine/, projects/ or desktop/.
"""

from __future__ import annotations

import functools
import importlib.resources
from pathlib import Path, PurePath

__all__ = ["ResourcesNotOnDiskError", "resource_path", "resources_root"]


class ResourcesNotOnDiskError(RuntimeError):
    """The `resources` package is not a directory on the filesystem (e.g. imported from a zip archive)."""


@functools.cache
def resources_root() -> Path:
    """The directory holding the bundled files (this package's own directory), as an absolute path."""
    root = importlib.resources.files(__name__)
    if not isinstance(root, Path) or not root.is_dir():
        raise ResourcesNotOnDiskError(
            f"Instance Studio's bundled resources are not a directory on disk ({root!r}); "
            "install the package unzipped (a normal `pip install`), not from a zip archive"
        )
    return root.resolve()


def resource_path(*parts: str) -> Path:
    """The path of a bundled file or folder, e.g. `resource_path("demo", "model")`.

    `parts` are names relative to resources/ (one per argument, or with `/` between them); absolute paths and
    `..` are refused. Whether the file exists is the caller's business: this only says where it would be.
    """
    relative = PurePath(*parts)
    if relative.is_absolute() or ".." in relative.parts:
        raise ValueError(f"a resource is named relative to resources/, without '..': {relative}")
    return resources_root().joinpath(relative)
