"""Ranges of numeric options, checked in one place: config fields declare theirs (``opt(..., valid=...)``)
and library functions check their own numeric parameters with the same :func:`check_number`, so every
number a user gives is refused with the same one-line message when it is out of range or not finite.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from training.errors import ConfigError, UserError


@dataclass(frozen=True)
class Range:
    """Bounds of a number: ``ge``/``gt`` below, ``le``/``lt`` above (any may be None); ``integer``
    requires a whole number. Every value must be finite (NaN and ±inf are refused)."""

    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    lt: float | None = None
    integer: bool = False

    def describe(self) -> str:
        """The range in words: ``in [0, 1)``, ``positive``, ``at least 2``, ``at most 1``."""
        low = (self.ge, "[") if self.ge is not None else (self.gt, "(") if self.gt is not None else None
        high = (self.le, "]") if self.le is not None else (self.lt, ")") if self.lt is not None else None
        if low and high:
            return f"in {low[1]}{_fmt(low[0])}, {_fmt(high[0])}{high[1]}"
        if low:
            if (low == (0, "(")) or (self.integer and low == (1, "[")):
                return "positive"
            return f"at least {_fmt(low[0])}" if low[1] == "[" else f"greater than {_fmt(low[0])}"
        if high:
            return f"at most {_fmt(high[0])}" if high[1] == "]" else f"less than {_fmt(high[0])}"
        return "a finite number"

    def contains(self, value: float) -> bool:
        """Whether ``value`` is finite and within the bounds."""
        if isinstance(value, bool) or not math.isfinite(value):
            return False
        if self.integer and value != int(value):
            return False
        return not (
            (self.ge is not None and value < self.ge)
            or (self.gt is not None and value <= self.gt)
            or (self.le is not None and value > self.le)
            or (self.lt is not None and value >= self.lt)
        )


def _fmt(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else repr(x)


POSITIVE = Range(gt=0)
NON_NEGATIVE = Range(ge=0)
AT_LEAST_ONE = Range(ge=1, integer=True)
COUNT = Range(ge=0, integer=True)
FRACTION = Range(ge=0, lt=1)
OPEN_FRACTION = Range(gt=0, lt=1)
UNIT = Range(ge=0, le=1)
# Sizes that have bounds because a typo (2**31 points) would otherwise run for ever: every point of a path
# is a full evaluation (and a recalibration), every grid point of a 2-D surface too.
AT_LEAST_TWO = Range(ge=2, integer=True)
MAX_PATH_POINTS = Range(le=100_001)
MAX_GRID_AXIS = Range(le=1001)


def check_number(value: Any, name: str, valid: Range, *, error: type[UserError] = UserError) -> None:
    """Raise ``error`` (with ``param=name``) unless ``value`` is a number within ``valid``; ``None`` passes."""
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise error(f"{name} must be a number, got {value!r}", param=name)
    if not math.isfinite(value):
        raise error(f"{name} must be a finite number, got {value}", param=name)
    if not valid.contains(value):
        raise error(f"{name} must be {valid.describe()}, got {value}", param=name)


def check_config_number(value: Any, name: str, valid: Range) -> None:
    """:func:`check_number` for config fields (raises :class:`ConfigError`); tuples are checked item by item."""
    for item in value if isinstance(value, tuple | list) else (value,):
        check_number(item, name, valid, error=ConfigError)
