"""File names for exported images: a template filled with sanitised fields, made unique.

Scene and project names are untrusted user text, and so is the template. Every field is cleaned, and
then the whole name again, into one safe path component by `projects.safe_input.sanitise_name` (with
whitespace as "_"): no separators, no `..`, no control characters, no reserved Windows device names,
a bounded length in bytes. A name that cleans to nothing falls back to one built from ids.
Uniqueness is case-insensitive (Windows and macOS file systems are), with suffixes `-2`, `-3`, ...
in export order.
"""

from __future__ import annotations

import datetime as dt
import string
from typing import Final

from projects.export_errors import ExportError
from projects.safe_input import sanitise_name

TEMPLATE_FIELDS: Final = ("project", "scene", "seed", "index", "date")
DEFAULT_TEMPLATE: Final = "{project}_{scene}_{seed}_{index}"

# Bytes (UTF-8) per field and per whole stem; file systems allow 255 bytes per name, and the stem
# still gets a collision suffix and an extension.
MAX_FIELD_BYTES: Final = 80
MAX_STEM_BYTES: Final = 180


def check_template(template: str) -> None:
    """Raise ExportError if the template uses a field that does not exist or is malformed."""
    try:
        fields = [name for _, name, _, _ in string.Formatter().parse(template) if name is not None]
    except ValueError as exc:
        raise ExportError(f"the name template {template!r} is malformed: {exc}") from exc
    for name in fields:
        if name not in TEMPLATE_FIELDS:
            known = ", ".join(f"{{{f}}}" for f in TEMPLATE_FIELDS)
            raise ExportError(f"the name template {template!r} uses {{{name}}}; the fields are {known}")


class NameAllocator:
    """Turns (template, fields) into unique, safe stems, in the order they are asked for."""

    def __init__(self, template: str, project_name: str) -> None:
        check_template(template)
        self.template = template
        self.project = sanitise_name(project_name, "project", max_bytes=MAX_FIELD_BYTES, space="_")
        self._taken: set[str] = set()

    def stem(
        self, *, scene_name: str, scene_id: int, seed: int, index: int, created: dt.datetime, render_id: int
    ) -> str:
        fields = {
            "project": self.project,
            "scene": sanitise_name(scene_name, f"scene-{scene_id}", max_bytes=MAX_FIELD_BYTES, space="_"),
            "seed": seed,
            "index": index,
            "date": created.strftime("%Y%m%d-%H%M%S"),
        }
        try:
            filled = self.template.format(**fields)
        except (ValueError, TypeError, KeyError, IndexError, AttributeError) as exc:
            raise ExportError(f"the name template {self.template!r} cannot be filled in: {exc}") from exc
        stem = sanitise_name(filled, f"render-{render_id}", max_bytes=MAX_STEM_BYTES, space="_")
        return self._unique(stem)

    def _unique(self, stem: str) -> str:
        candidate, n = stem, 1
        while candidate.casefold() in self._taken:
            n += 1
            candidate = f"{stem}-{n}"
        self._taken.add(candidate.casefold())
        return candidate
