"""Small helpers for frozen-dataclass configurations: validation at the boundary and TOML loading.

Configurations are frozen dataclasses that take typed values and validate them in ``__post_init__``.
:func:`from_dict` turns a table (a dict, as read from TOML) into one, nested dataclasses included, and
:func:`load_toml` is the one TOML reader.

Names a user types (a router, an autoscaling policy, a role, an interconnect, a MIG profile, an option of a
function) follow one rule, :func:`require_choice`: they are matched without regard to case or surrounding
spaces, and the canonical spelling is what the configuration keeps (``"JSQ "`` becomes ``"jsq"``). GPU and model
names follow the same rule in the hardware catalog, which also ignores punctuation and knows aliases
(``"h100"`` is ``"H100-SXM"``).
"""

from __future__ import annotations

import dataclasses
import functools
import math
import numbers
import tomllib
import types
import typing
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from workbench.errors import ConfigError

T = TypeVar("T")


def as_float(value: Any) -> float:
    """Return a polars scalar of a numeric column (``Series.max()``, ``.mean()``, ``.item()``) as a float.

    polars types such scalars as a union of every Python value; this is ``float(value)`` for the type checker,
    so a ``None`` (an empty or all-null column) still raises ``TypeError``.
    """
    return float(value)


def as_int(value: Any) -> int:
    """Return a polars scalar of an integer column as an int (``int(value)``; see :func:`as_float`)."""
    return int(value)


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


def require_choice(name: str, value: str, choices: Iterable[str], *, what: str | None = None) -> str:
    """Return the spelling in ``choices`` of the name ``value``, matched ignoring case and surrounding spaces.

    This is the workbench's one rule for names a user types (see the module docstring): ``"JSQ "`` is
    ``"jsq"``. Callers keep the returned canonical spelling.

    Returns
    -------
    str
        The matching element of ``choices``.

    Raises
    ------
    ConfigError
        When nothing matches (or ``value`` is not a string). The message reads ``unknown <name> 'x'; choose
        one of: ...``; with ``what`` (what the value is, when ``name`` is a field path such as
        ``"pool 'a'.role"``) it reads ``<name>: unknown <what> 'x'; ...``.
    """
    choices = tuple(choices)
    if isinstance(value, str):
        key = value.strip().casefold()
        for choice in choices:
            if choice.casefold() == key:
                return choice
    head = f"unknown {name}" if what is None else f"{name}: unknown {what}"
    raise ConfigError(f"{head} {value!r}; choose one of: {', '.join(sorted(choices))}")


def from_dict(cls: type[T], data: Mapping[str, Any], *, where: str = "") -> T:
    """Build a (frozen) dataclass from a mapping (a TOML table), with nested dataclasses, naming bad fields.

    Field types are read with :func:`typing.get_type_hints` (so string annotations work). A value is converted
    when its field's type asks for it: a table for a dataclass field (or a dataclass member of a union, e.g.
    ``AutoscaleConfig | None``, unless the union also takes a ``dict``) becomes that dataclass, recursively; a
    list for a ``tuple[...]`` field becomes a tuple (of dataclasses, when the items are). Everything else is
    passed as it is, and the dataclass validates it (``__post_init__``). This is the only place where tables
    become configuration objects: the dataclasses themselves take typed values only.

    Parameters
    ----------
    cls
        The dataclass.
    data
        Field name -> value.
    where
        Path of ``data`` in the whole configuration (``"pools[1]"``), prefixed to error messages.

    Returns
    -------
    T
        ``cls(**converted)``.

    Raises
    ------
    ConfigError
        For a table that is not a mapping, unknown or missing fields (listing the valid ones), or a value the
        dataclass rejects; the message starts with the field's path.
    """
    if not dataclasses.is_dataclass(cls):
        raise TypeError(f"{cls!r} is not a dataclass")
    prefix = f"{where}: " if where else ""
    if not isinstance(data, Mapping):
        raise ConfigError(f"{prefix}expected a table of {cls.__name__} fields, got {type(data).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = [k for k in data if k not in fields]
    if unknown:
        raise ConfigError(
            f"{prefix}unknown field(s) {sorted(map(str, unknown))} for {cls.__name__}; "
            f"valid fields: {', '.join(fields)}"
        )
    missing = [
        name
        for name, f in fields.items()
        if name not in data and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    ]
    if missing:
        raise ConfigError(f"{prefix}missing field(s) {missing} for {cls.__name__}")
    hints = _type_hints(cls)
    kwargs = {
        key: _convert(hints.get(key, Any), value, f"{where}.{key}" if where else key)
        for key, value in data.items()
    }
    try:
        return cls(**kwargs)
    except ConfigError as exc:
        if not where or str(exc).startswith(where):
            raise
        raise type(exc)(f"{where}: {exc}") from None


@functools.cache
def _type_hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _convert(hint: Any, value: Any, where: str) -> Any:
    """``value`` converted to the field type ``hint`` where a table or list needs it (see :func:`from_dict`)."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        members = [m for m in typing.get_args(hint) if m is not type(None)]
        if isinstance(value, Mapping) and any(m is dict or typing.get_origin(m) is dict for m in members):
            return value  # the field takes a table itself (e.g. fields over a default): the class builds it
        if isinstance(value, Mapping):
            target = next((m for m in members if isinstance(m, type) and dataclasses.is_dataclass(m)), None)
            return from_dict(target, value, where=where) if target is not None else value
        if isinstance(value, list):
            target = next((m for m in members if typing.get_origin(m) is tuple or m is tuple), None)
            return _convert(target, value, where) if target is not None else value
        if len(members) == 1 and value is not None:
            return _convert(members[0], value, where)
        return value
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        if isinstance(value, Mapping):
            return from_dict(hint, value, where=where)
        if not isinstance(value, hint):
            got = type(value).__name__
            raise ConfigError(f"{where}: expected a table of {hint.__name__} fields, got {got}")
    if (origin is tuple or hint is tuple) and isinstance(value, list | tuple):
        args = typing.get_args(hint)
        item = args[0] if len(args) == 2 and args[1] is Ellipsis else Any
        return tuple(_convert(item, v, f"{where}[{i}]") for i, v in enumerate(value))
    return value


def read_toml(path: str | Path, what: str = "config") -> dict[str, Any]:
    """Return the tables of a TOML file: the one TOML reader of the workbench.

    Parameters
    ----------
    path
        The file (read literally).
    what
        What the file is, for the message (``"fleet config"``, ``"plan config"``).

    Returns
    -------
    dict
        The parsed document.

    Raises
    ------
    ConfigError
        For a file that cannot be read, is not UTF-8 or is not valid TOML (with the parser's line and column),
        naming the file.
    """
    try:
        return tomllib.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"cannot read {what} {path}: {exc}") from None


def load_toml(cls: type[T], path: str | Path, what: str = "config") -> T:
    """Load a TOML file (:func:`read_toml`) into dataclass ``cls`` (:func:`from_dict`).

    Parameters
    ----------
    cls
        The configuration dataclass (e.g. :class:`workbench.sim.Fleet`, :class:`workbench.sim.SimConfig`).
    path
        The file (read literally).
    what
        What the file is, for messages.

    Returns
    -------
    T

    Raises
    ------
    ConfigError
        For every error of :func:`read_toml` and :func:`from_dict`.
    """
    return from_dict(cls, read_toml(path, what))
