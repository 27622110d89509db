"""Validation shared by the request types: a problem, the error that lists them, a reader of JSON.

Torch-free and numpy-free. `Reader` type-checks untrusted JSON-shaped data and collects every
problem instead of raising at the first, so one error can name every field that is wrong.

`finite_number` and `text_problem` are the one number check and the one text check for data from a
file: the request readers here use them, and so do the importers (through `projects.safe_input`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final, TypeVar

__all__ = [
    "MAX_MAGNITUDE",
    "Problem",
    "Reader",
    "RequestValidationError",
    "brief",
    "escape_character",
    "finite_number",
    "is_int",
    "is_number",
    "reject_constant",
    "text_problem",
]

# No number in a scene, request or annotation file is anywhere near this: pixels, areas (65536² is
# 4.3e9), seeds below 2**63 are integers checked on their own. Past it, sums and products of two such
# numbers would still be finite, so no later arithmetic overflows either.
MAX_MAGNITUDE: Final = 1e15
MAX_INTEGER: Final = 2**63 - 1

_E = TypeVar("_E", bound="StrEnum")


@dataclass(frozen=True)
class Problem:
    """One validation failure: where it is (a dotted field path) and what is wrong, in words."""

    field: str
    message: str

    def __str__(self) -> str:
        return self.message


class RequestValidationError(ValueError):
    """A request, instance or mask that cannot be rendered. Lists every problem found."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems: tuple[Problem, ...] = tuple(problems)
        super().__init__("; ".join(str(p) for p in self.problems))


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def finite_number(value: object, low: float = -MAX_MAGNITUDE, high: float = MAX_MAGNITUDE) -> float | None:
    """`value` as a float when it is a number (not a boolean) from `low` to `high`, else None.

    Never raises: the range is checked before the conversion (Python compares an int of any size with
    a float exactly), so an integer with hundreds of digits is out of range, not an OverflowError;
    NaN is in no range."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    if not low <= value <= high:
        return None
    return float(value)


def text_problem(text: str) -> str | None:
    """What keeps `text` from being stored as UTF-8, in words, or None when nothing does.

    The one case: a lone UTF-16 surrogate (U+D800 to U+DFFF), which JSON can write as "\\ud800" and a
    non-UTF-8 file name carries in Python, but which no file or database can hold as text."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        return f"has U+{ord(text[exc.start]):04X} at character {exc.start + 1}, a lone surrogate that is not text"
    return None


def escape_character(character: str) -> str:
    """One character as a backslash escape, for text no stream or file may refuse: `\\xff` for the byte
    a non-UTF-8 file name keeps as a lone surrogate (U+DC80 to U+DCFF), else as `backslashreplace`."""
    code = ord(character)
    if 0xDC80 <= code <= 0xDCFF:
        return f"\\x{code - 0xDC00:02x}"
    if code <= 0xFF:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"


def brief(value: object) -> str:
    """`repr(value)` cut to 40 characters for a message; an integer too long to print is described."""
    if isinstance(value, int) and abs(value) >= 10**40:
        return f"an integer of {value.bit_length()} bits"
    return f"{value!r:.40}"


def _field_name(key: object) -> str:
    """A key as a message shows it: as it is when short and printable, else quoted and cut (a file's key
    may hold newlines, lone surrogates or a megabyte of text)."""
    if isinstance(key, str) and key.isprintable() and len(key) <= 40:
        return key
    return brief(key)


def reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not allowed")


class Reader:
    """Type-checks untrusted JSON-shaped data, collecting problems instead of raising at the first."""

    def __init__(self, context: str) -> None:
        self.context = context
        self.problems: list[Problem] = []

    def fail(self, where: str, message: str) -> None:
        self.problems.append(Problem(where, message))

    def raise_if_any(self) -> None:
        if self.problems:
            raise RequestValidationError(self.problems)

    def mapping(self, value: Any, where: str) -> Mapping[str, Any]:
        if not isinstance(value, Mapping):
            self.fail(where, f"{where} must be an object, got {type(value).__name__}")
            self.raise_if_any()
        return value  # type: ignore[no-any-return]

    def no_unknown_keys(self, obj: Mapping[str, Any], known: set[str], where: str) -> None:
        unknown = sorted(_field_name(k) for k in obj if k not in known)
        if unknown:
            more = f" and {len(unknown) - 5} more" if len(unknown) > 5 else ""
            self.fail(where, f"{where} has unknown fields: {', '.join(unknown[:5])}{more}")

    def sequence(self, value: Any, where: str, length: int | None = None) -> Sequence[Any]:
        if not isinstance(value, (list, tuple)):
            self.fail(where, f"{where} must be a list, got {type(value).__name__}")
            return ()
        if length is not None and len(value) != length:
            self.fail(where, f"{where} must have {length} values, got {len(value)}")
            return ()
        return value

    def string(self, value: Any, where: str) -> str | None:
        if not isinstance(value, str):
            self.fail(where, f"{where} must be text, got {type(value).__name__}")
            return None
        problem = text_problem(value)
        if problem is not None:
            self.fail(where, f"{where} {problem}")
            return None
        return value

    def integer(self, value: Any, where: str) -> int:
        # No integer of a request is past SQLite's 64 bits; larger ones are refused here, by size.
        if not is_int(value) or not -MAX_INTEGER <= value <= MAX_INTEGER:
            self.fail(where, f"{where} must be an integer of at most 64 bits, got {brief(value)}")
            return 0
        return int(value)

    def number(self, value: Any, where: str) -> float:
        number = finite_number(value)
        if number is None:
            self.fail(where, f"{where} must be a finite number of at most {MAX_MAGNITUDE:g}, got {brief(value)}")
            return 0.0
        return number

    def floats(self, value: Any, where: str, length: int) -> tuple[float, ...] | None:
        items = self.sequence(value, where, length)
        if len(items) != length:
            return None
        numbers = tuple(self.number(v, where) for v in items)
        return numbers

    def points(self, value: Any, where: str) -> tuple[tuple[float, float], ...] | None:
        items = self.sequence(value, where)
        result: list[tuple[float, float]] = []
        for i, item in enumerate(items):
            xy = self.floats(item, f"{where}[{i}]", 2)
            if xy is None:
                return None
            result.append((xy[0], xy[1]))
        return tuple(result)

    def enum(self, cls: type[_E], value: Any, where: str) -> _E | None:
        try:
            return cls(value)
        except ValueError:
            choices = ", ".join(member.value for member in cls)
            self.fail(where, f"{where} {brief(value)} is not one of: {choices}")
            return None
