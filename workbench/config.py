"""Small helpers for frozen-dataclass configurations: validation at the boundary and TOML loading."""

from __future__ import annotations

import dataclasses
import math
import numbers
import tomllib
from pathlib import Path
from typing import Any, TypeVar

from workbench.errors import ConfigError

T = TypeVar("T")


def require_positive(name: str, value: float, *, allow_zero: bool = False) -> None:
    """Raise :class:`ConfigError` unless ``value`` is a finite number > 0 (or >= 0 with ``allow_zero``)."""
    ok = isinstance(value, int | float) and math.isfinite(value) and (value >= 0 if allow_zero else value > 0)
    if not ok:
        bound = ">= 0" if allow_zero else "> 0"
        raise ConfigError(f"{name} must be a finite number {bound}, got {value!r}")


#: Accepted PUE (power usage effectiveness) range, used by :class:`workbench.carbon.Site`,
#: :class:`workbench.tco.TcoInputs` and :func:`workbench.power.energy`: 1 is the ideal; 5 is far above any
#: surveyed facility (industry average 1.56, Uptime 2024) and catches values typed as a percentage overhead or a
#: ratio the wrong way round.
PUE_RANGE = (1.0, 5.0)


def require_pue(pue: float, name: str = "pue") -> None:
    """Raise :class:`ConfigError` unless ``pue`` lies in :data:`PUE_RANGE`."""
    require_range(name, pue, *PUE_RANGE)


def require_range(name: str, value: float, low: float, high: float) -> None:
    """Raise :class:`ConfigError` unless ``low <= value <= high``."""
    if not (isinstance(value, int | float) and math.isfinite(value) and low <= value <= high):
        raise ConfigError(f"{name} must be in [{low}, {high}], got {value!r}")


def require_int(name: str, value: object, *, low: int = 1) -> int:
    """Raise :class:`ConfigError` unless ``value`` is an integer >= ``low``; return it as a Python ``int``.

    Python and numpy integers are accepted; booleans, floats (even integral ones) and strings are not.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
        raise ConfigError(f"{name} must be an integer >= {low}, got {value!r}")
    return int(value)


def require_choice(
    name: str, value: str, choices: list[str] | tuple[str, ...], *, what: str | None = None
) -> None:
    """Raise :class:`ConfigError` unless ``value`` is one of ``choices`` (listed in the message).

    The message reads ``unknown <name> 'x'; choose one of: ...``; with ``what`` (what the value is, when
    ``name`` is a field path such as ``"pool 'a'.role"``) it reads ``<name>: unknown <what> 'x'; ...``.
    """
    if value not in choices:
        head = f"unknown {name}" if what is None else f"{name}: unknown {what}"
        raise ConfigError(f"{head} {value!r}; choose one of: {', '.join(sorted(choices))}")


def from_dict(cls: type[T], data: dict[str, Any]) -> T:
    """Build a (frozen) dataclass from a dict, rejecting unknown keys with the list of valid ones.

    Nested dataclass fields are built recursively when their annotation is a dataclass type.
    """
    if not dataclasses.is_dataclass(cls):
        raise TypeError(f"{cls!r} is not a dataclass")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = set(data) - set(fields)
    if unknown:
        raise ConfigError(
            f"unknown field(s) {sorted(unknown)} for {cls.__name__}; valid fields: {', '.join(fields)}"
        )
    kwargs = {}
    for key, value in data.items():
        ftype = fields[key].type
        target = ftype if isinstance(ftype, type) else None
        if target is not None and dataclasses.is_dataclass(target) and isinstance(value, dict):
            value = from_dict(target, value)
        kwargs[key] = value
    return cls(**kwargs)


def load_toml(cls: type[T], path: str | Path) -> T:
    """Load a TOML file into dataclass ``cls`` (see :func:`from_dict`)."""
    try:
        data = tomllib.loads(Path(path).read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"cannot read config {path}: {exc}") from None
    return from_dict(cls, data)
