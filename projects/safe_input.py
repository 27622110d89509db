"""Reading files nobody vouches for: the limits and checks every importer shares.

- `read_json` refuses files over a size limit before reading them, text that is not UTF-8 and
  malformed JSON (naming the line and column), and data nested deeper than a limit.
- `number` and `image_side` check one number from a file (type, finiteness, range).
- Geometry (points, polygons, masks against their image) is in `projects.import_geometry`.
- `sanitise_name` turns untrusted text (an image's `file_name`, a label, a scene name) into one safe
  name: a scene name for display, or with `space="_"` a file-name component for an export.
"""

from __future__ import annotations

import json
import math
import re
import unicodedata
from pathlib import Path
from typing import Any, Final

from engine.request import CANVAS_MULTIPLE, MAX_CANVAS, MIN_CANVAS
from projects.errors import LayoutFormatError

MAX_JSON_BYTES: Final = 512 * 1024 * 1024  # COCO's instances_train2017.json is 448 MiB
MAX_JSON_DEPTH: Final = 64  # COCO and labelme files are 5 levels deep
MAX_SOURCE_SIDE: Final = 65536  # an image record claiming more is not a real image
MAX_NAME_BYTES: Final = 200  # UTF-8; file systems allow 255 bytes a name

# Both separators and the characters Windows forbids in names.
_PATH_CHARACTERS = str.maketrans(dict.fromkeys('/\\:*?"<>|', "_"))
_DOTS = re.compile(r"\.{2,}")
_NAME_ENDS: Final = " ._-"
# Windows device names, which open a device whatever the extension (`nul.txt`).
_RESERVED_NAMES: Final = frozenset(
    {"CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$"}
    | {f"{device}{n}" for device in ("COM", "LPT") for n in (*"123456789", "¹", "²", "³")}
)


# --- JSON ---------------------------------------------------------------------------------------


def read_json(path: str | Path, *, max_bytes: int = MAX_JSON_BYTES, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """Parse a JSON file, refusing anything over `max_bytes` before reading it."""
    path = Path(path)
    source = str(path)
    try:
        size = path.stat().st_size
        if size > max_bytes:
            raise LayoutFormatError(source, _too_big(size, max_bytes))
        with path.open("rb") as handle:
            raw = handle.read(max_bytes + 1)  # a file that grows meanwhile, or a device, stops here
    except OSError as exc:
        raise LayoutFormatError(source, f"cannot be read: {exc.strerror or exc}") from exc
    if len(raw) > max_bytes:
        raise LayoutFormatError(source, _too_big(len(raw), max_bytes))
    return parse_json(raw, source, max_depth=max_depth)


def parse_json(raw: bytes, source: str, *, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """Parse UTF-8 JSON bytes; every failure is a `LayoutFormatError` naming `source` and the place."""
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line, column = _line_column(raw, exc.start)
        raise LayoutFormatError(
            source, f"not UTF-8 text: byte 0x{raw[exc.start]:02x} at line {line}, column {column}"
        ) from exc
    try:
        data = json.loads(text, parse_constant=_reject_constant)
    except RecursionError as exc:
        raise LayoutFormatError(source, f"JSON is nested too deeply (more than {max_depth} levels)") from exc
    except json.JSONDecodeError as exc:
        raise LayoutFormatError(source, f"not valid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}") from exc
    except ValueError as exc:  # NaN/Infinity, or an integer with thousands of digits
        raise LayoutFormatError(source, f"not valid JSON: {exc}") from exc
    check_depth(data, source, max_depth)
    return data


def check_depth(data: Any, source: str, max_depth: int = MAX_JSON_DEPTH) -> None:
    """Refuse data nested deeper than `max_depth` lists and objects (checked without recursion)."""
    stack: list[tuple[Any, int]] = [(data, 1)] if isinstance(data, (list, dict)) else []
    while stack:
        node, depth = stack.pop()
        if depth > max_depth:
            raise LayoutFormatError(source, f"JSON is nested too deeply (more than {max_depth} levels)")
        items = node.values() if isinstance(node, dict) else node
        kinds = set(map(type, items))  # most lists hold only numbers: skip them at C speed
        if list in kinds or dict in kinds:
            stack.extend((item, depth + 1) for item in items if isinstance(item, (list, dict)))


def _too_big(size: int, limit: int) -> str:
    return f"file is {size:,} bytes; at most {limit:,} are read (raise the limit to import it)"


def _line_column(raw: bytes, offset: int) -> tuple[int, int]:
    return raw.count(b"\n", 0, offset) + 1, offset - (raw.rfind(b"\n", 0, offset) + 1) + 1


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number JSON allows")


# --- names --------------------------------------------------------------------------------------


def sanitise_name(text: object, fallback: str, *, max_bytes: int = MAX_NAME_BYTES, space: str = " ") -> str:
    """Untrusted text as one safe name, or `fallback` (itself trusted) when nothing is left.

    Guarantees: NFC; no control, format or other invisible characters (dropped; tabs and newlines
    count as spaces); each run of whitespace becomes one `space` (" " for a display name, "_" for a
    file name); no path separator, drive colon or other character Windows forbids (each becomes
    "_"); no `..` (runs of dots become one); no leading or trailing space, dot, underscore or dash (no
    hidden file, nothing Windows would drop, no option-like name); at most `max_bytes` bytes of
    UTF-8; not a Windows device name (`CON`, `nul.txt` get a trailing "_"). Text that is not a string
    gives `fallback`.
    """
    if not isinstance(text, str):
        return fallback
    spaced = " ".join(unicodedata.normalize("NFC", text).split())  # before other controls go
    visible = "".join(c for c in spaced if not _invisible(c))
    name = " ".join(visible.split()).translate(_PATH_CHARACTERS)
    name = _DOTS.sub(".", name).replace(" ", space).strip(_NAME_ENDS)
    name = _truncate_utf8(name, max_bytes).strip(_NAME_ENDS)
    if not name:
        return fallback
    if name.split(".")[0].upper() in _RESERVED_NAMES:
        name = f"{name}_"
    return name


def _invisible(character: str) -> bool:
    # C*: controls, format characters (bidi overrides), surrogates, private use, unassigned.
    category = unicodedata.category(character)
    return category.startswith("C") or category in ("Zl", "Zp")


def _truncate_utf8(text: str, max_bytes: int) -> str:
    encoded = text.encode("utf-8")
    if len(encoded) <= max_bytes:
        return text
    return encoded[:max_bytes].decode("utf-8", errors="ignore")


def file_stem(file_name: object) -> str:
    """The last component of a POSIX or Windows file name, without its extension (string work only)."""
    if not isinstance(file_name, str):
        return ""
    last = re.split(r"[\\/]", file_name)[-1]
    stem, dot, extension = last.rpartition(".")
    if dot and stem and extension.isalnum() and len(extension) <= 5:
        return stem
    return last


def clean_text(value: object) -> str | None:
    """Text with its whitespace (newlines, tabs) collapsed to single spaces; None unless non-empty text."""
    if not isinstance(value, str):
        return None
    text = " ".join(value.split())
    return text or None


# --- sizes and numbers ----------------------------------------------------------------------------


def number(value: object) -> float | None:
    """A finite JSON number as a float, else None (booleans are not numbers)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    result = float(value)
    return result if math.isfinite(result) else None


def image_side(value: object) -> int | None:
    """A whole number of pixels from 1 to MAX_SOURCE_SIDE, else None."""
    side = number(value)
    if side is None or side != int(side) or not 1 <= side <= MAX_SOURCE_SIDE:
        return None
    return int(side)


def fit_canvas(width: int, height: int) -> tuple[int, int, str | None]:
    """The scene canvas for a `width` x `height` image: scaled down to fit MAX_CANVAS, each side rounded
    to a multiple of 8 within the renderer's range. Returns a note when that is more than rounding
    (geometry is normalised, so rounding moves nothing by more than 4 px and is not reported)."""
    scale = min(1.0, MAX_CANVAS / max(width, height))
    fitted = tuple(
        min(MAX_CANVAS, max(MIN_CANVAS, round(side * scale / CANVAS_MULTIPLE) * CANVAS_MULTIPLE))
        for side in (width, height)
    )
    canvas_w, canvas_h = fitted
    note = None
    if scale < 1.0 or any(side < MIN_CANVAS for side in (width, height)):
        note = f"the {width}x{height} image becomes a {canvas_w}x{canvas_h} canvas (the renderer's limits)"
    return canvas_w, canvas_h, note
