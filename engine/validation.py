"""Validation shared by the request types: a problem, the error that lists them, a reader of JSON.

Torch-free and numpy-free. `Reader` type-checks untrusted JSON-shaped data and collects every
problem instead of raising at the first, so one error can name every field that is wrong.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, TypeVar

__all__ = ["Problem", "Reader", "RequestValidationError", "is_int", "is_number", "reject_constant"]

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
        unknown = sorted(str(k) for k in obj if k not in known)
        if unknown:
            self.fail(where, f"{where} has unknown fields: {', '.join(unknown)}")

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
        return value

    def integer(self, value: Any, where: str) -> int:
        if not is_int(value):
            self.fail(where, f"{where} must be an integer, got {value!r:.40}")
            return 0
        return int(value)

    def number(self, value: Any, where: str) -> float:
        if not is_number(value) or not math.isfinite(value):
            self.fail(where, f"{where} must be a finite number, got {value!r:.40}")
            return 0.0
        return float(value)

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
            self.fail(where, f"{where} {value!r:.40} is not one of: {choices}")
            return None
