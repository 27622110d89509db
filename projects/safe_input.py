"""Reading files nobody vouches for: the limits and checks every importer shares.

- `read_bytes` is the one reader of an import file: regular files only (a device, a FIFO or a folder
  is refused after opening it without blocking, so `/dev/zero` or a FIFO cannot hang or fill memory),
  at most a size limit, checked before reading and while reading.
- `read_json` reads through it and refuses text that is not UTF-8 and malformed JSON (naming the line
  and column), and data nested deeper than a limit.
- `number` and `image_side` check one number from a file (type, finiteness, range), with the engine's
  `finite_number`; `check_text` and `clean_text` check text with its `text_problem` (no lone
  surrogate reaches the project), and `shown` makes a file name printable.
- Geometry (points, polygons, masks against their image) is in `projects.import_geometry`.
- `sanitise_name` turns untrusted text (an image's `file_name`, a label, a scene name) into one safe
  name: a scene name for display, or with `space="_"` a file-name component for an export.
"""

from __future__ import annotations

import json
import os
import re
import stat
import unicodedata
from pathlib import Path
from typing import Any, Final

from engine.request import CANVAS_MULTIPLE, MAX_CANVAS, MIN_CANVAS
from engine.validation import escape_character, finite_number, text_problem
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


# --- reading --------------------------------------------------------------------------------------

_READ_CHUNK: Final = 1024 * 1024
# Opening a FIFO without O_NONBLOCK waits for a writer; with it, the open returns and fstat refuses it.
_OPEN_FLAGS: Final = (
    os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0) | getattr(os, "O_CLOEXEC", 0)
)


def read_bytes(path: str | Path, max_bytes: int, *, kind: str | None = None) -> bytes:
    """The bytes of the regular file `path` (symlinks followed), at most `max_bytes` of them.

    Refused with a LayoutFormatError naming the file: anything but a regular file (a device such as
    /dev/zero, a FIFO, a folder), a file over `max_bytes` (checked before reading, and again while
    reading, for a file that grows meanwhile; the message says "`kind` are at most ..." when given),
    a file that cannot be opened."""
    return _read_regular(path, max_bytes, max_bytes, kind)


def read_head(path: str | Path, count: int) -> bytes:
    """The first `count` bytes (fewer if the file is shorter) of the regular file `path`, with the same
    checks as `read_bytes`: enough to tell a file's kind."""
    return _read_regular(path, count, None, None)


def _read_regular(path: str | Path, count: int, max_bytes: int | None, kind: str | None) -> bytes:
    source = shown(str(path))
    try:
        descriptor = os.open(path, _OPEN_FLAGS)
    except OSError as exc:
        raise LayoutFormatError(source, f"cannot be read: {exc.strerror or exc}") from exc
    try:
        info = os.fstat(descriptor)  # of what was opened: no swap between a check and the open
        if not stat.S_ISREG(info.st_mode):
            raise LayoutFormatError(source, f"not a regular file ({_file_kind(info.st_mode)}); only files are read")
        if max_bytes is not None and info.st_size > max_bytes:
            raise LayoutFormatError(source, _too_big(info.st_size, max_bytes, kind))
        chunks: list[bytes] = []
        wanted = count if max_bytes is None else max_bytes + 1  # one byte more tells a file that grew
        total = 0
        while total < wanted and (chunk := os.read(descriptor, min(_READ_CHUNK, wanted - total))):
            chunks.append(chunk)
            total += len(chunk)
    except OSError as exc:
        raise LayoutFormatError(source, f"cannot be read: {exc.strerror or exc}") from exc
    finally:
        os.close(descriptor)
    if max_bytes is not None and total > max_bytes:
        raise LayoutFormatError(source, _too_big(total, max_bytes, kind))
    return b"".join(chunks)


def _file_kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a file"


def shown(text: str) -> str:
    """`text` safe to print, log and store: the bytes a non-UTF-8 file name keeps as lone surrogates
    are written as `\\xff`, any other lone surrogate as `\\ud800`; all other text is unchanged."""
    if text_problem(text) is None:
        return text
    return "".join(escape_character(c) if 0xD800 <= ord(c) <= 0xDFFF else c for c in text)


# --- JSON ---------------------------------------------------------------------------------------


def read_json(path: str | Path, *, max_bytes: int = MAX_JSON_BYTES, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """Parse a JSON file, refusing anything over `max_bytes` before reading it."""
    return parse_json(read_bytes(path, max_bytes), shown(str(path)), max_depth=max_depth)


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


def _too_big(size: int, limit: int, kind: str | None = None) -> str:
    if kind is not None:
        return f"file is {size:,} bytes; {kind} are at most {limit:,}"
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


def scene_name_from(path: str | Path, fallback: str) -> str:
    """A scene name from a file's name: its stem, sanitised (`fallback` when nothing is left); the
    undecodable bytes of a non-UTF-8 name become U+FFFD."""
    stem = file_stem(Path(path).name)
    decodable = "".join("\ufffd" if 0xD800 <= ord(c) <= 0xDFFF else c for c in stem)
    return sanitise_name(decodable, fallback)


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


def check_text(value: str, source: str, where: str) -> str:
    """`value` unchanged when a project can store it; else a LayoutFormatError naming `where`."""
    problem = text_problem(value)
    if problem is not None:
        raise LayoutFormatError(source, f"{where} {problem}")
    return value


def clean_text(value: object, source: str, where: str) -> str | None:
    """Text with its whitespace (newlines, tabs) collapsed to single spaces; None unless non-empty text.
    Text a project cannot store (see `check_text`) is a LayoutFormatError naming `where`."""
    if not isinstance(value, str):
        return None
    text = " ".join(check_text(value, source, where).split())
    return text or None


# --- sizes and numbers ----------------------------------------------------------------------------


def number(value: object) -> float | None:
    """A finite JSON number of at most MAX_MAGNITUDE as a float, else None (booleans are not numbers;
    an integer with hundreds of digits is out of range, never an OverflowError)."""
    return finite_number(value)


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
