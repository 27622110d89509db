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
import re
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
# The template is user text, and a format spec's width or precision makes `str.format` build a string that
# long before anything can cut it: `{seed:>3000000000}` is 3 GB. Names are cut to MAX_STEM_BYTES anyway, so
# no width or precision above this is useful, and no template longer than this is.
MAX_FORMAT_NUMBER: Final = 64
MAX_TEMPLATE_CHARS: Final = 500
_NUMBER_RE: Final = re.compile(r"\d+")


def _shown(text: str, limit: int = 60) -> str:
    """`text` quoted for a one-line message, cut to `limit` characters."""
    return repr(text if len(text) <= limit else text[: limit - 1] + "…")


def check_template(template: str) -> None:
    """Raise ExportError if the template is malformed, too long, uses a field that does not exist, or asks
    a field for a width or precision above MAX_FORMAT_NUMBER (checked before anything is formatted)."""
    if len(template) > MAX_TEMPLATE_CHARS:
        raise ExportError(
            f"the name template is {len(template)} characters long; at most {MAX_TEMPLATE_CHARS} are allowed"
        )
    try:
        parsed = [(name, spec) for _, name, spec, _ in string.Formatter().parse(template) if name is not None]
    except ValueError as exc:
        raise ExportError(f"the name template {_shown(template)} is malformed: {exc}") from exc
    for name, spec in parsed:
        if name not in TEMPLATE_FIELDS:
            known = ", ".join(f"{{{f}}}" for f in TEMPLATE_FIELDS)
            raise ExportError(
                f"the name template {_shown(template)} uses {{{_shown(name)[1:-1]}}}; the fields are {known}"
            )
        _check_format_spec(name, spec or "")


def _check_format_spec(name: str, spec: str) -> None:
    """Refuse a format spec that could make a huge string: a nested field, or a number above the limit."""
    if "{" in spec or "}" in spec:
        # `{index:>{seed}}` would take its width from a field: a seed of 3e9 is a 3 GB name.
        raise ExportError(
            f"the name template's {{{name}}} has a field inside its format {_shown(spec)}; use plain numbers"
        )
    # Every number in a spec is a width, a precision or a one-character fill: bounding them all is enough.
    for digits in _NUMBER_RE.findall(spec):
        value = digits.lstrip("0")
        if len(value) > len(str(MAX_FORMAT_NUMBER)) or int(value or "0") > MAX_FORMAT_NUMBER:
            raise ExportError(
                f"the name template's {{{name}:{_shown(spec)[1:-1]}}} asks for a width or precision of "
                f"{_shown(value)[1:-1]}; at most {MAX_FORMAT_NUMBER} is allowed"
            )


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
            raise ExportError(
                f"the name template {_shown(self.template)} cannot be filled in: {_shown(str(exc), 120)[1:-1]}"
            ) from exc
        stem = sanitise_name(filled, f"render-{render_id}", max_bytes=MAX_STEM_BYTES, space="_")
        return self._unique(stem)

    def _unique(self, stem: str) -> str:
        candidate, n = stem, 1
        while candidate.casefold() in self._taken:
            n += 1
            candidate = f"{stem}-{n}"
        self._taken.add(candidate.casefold())
        return candidate
