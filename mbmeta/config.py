"""Configs are dataclasses loaded from YAML, checked field by field where they are built.

Every config class declares, in `RANGES`, the allowed range of each numeric field and calls
`check_fields(self)` in `__post_init__`; so a config built in Python, from YAML or from a checkpoint
is checked the same way: type (a float field takes an int or a float, nothing else), finiteness and
range. A bad value is one `ConfigError` line naming the key, the value and what is allowed.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml

C = TypeVar("C")


class ConfigError(ValueError):
    """A config that cannot be used; the message names the key and the fix."""


class FieldError(ConfigError):
    """A bad value of one field; `from_dict` prefixes the field with where the config came from."""

    def __init__(self, owner: str, field: str, message: str) -> None:
        self.field, self.message = field, message
        super().__init__(f"{owner}.{field}: {message}")


@dataclasses.dataclass(frozen=True)
class Range:
    """Allowed values of a numeric field: low/high bounds (None: unbounded), each open or closed."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False

    def __contains__(self, value: float) -> bool:
        above = self.low is None or (value > self.low if self.low_open else value >= self.low)
        below = self.high is None or (value < self.high if self.high_open else value <= self.high)
        return above and below

    def __str__(self) -> str:
        if self.high is None:
            return f"{'>' if self.low_open else '>='} {self.low:g}"
        if self.low is None:
            return f"{'<' if self.high_open else '<='} {self.high:g}"
        return f"in {'(' if self.low_open else '['}{self.low:g}, {self.high:g}{')' if self.high_open else ']'}"


def at_least(low: float) -> Range:
    return Range(low)


POSITIVE = Range(0, low_open=True)
NON_NEGATIVE = Range(0)
FRACTION = Range(0, 1)


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def check_fields(config: Any) -> None:
    """Check every field of dataclass `config` against its type hint and its class's `RANGES`."""
    cls = type(config)
    ranges: dict[str, Range] = getattr(cls, "RANGES", {})
    for field in dataclasses.fields(config):
        value = getattr(config, field.name)
        try:
            _check(value, _hints(cls)[field.name], ranges.get(field.name))
        except _Bad as bad:
            raise FieldError(cls.__name__, field.name, str(bad)) from None


class _Bad(Exception):
    """What is wrong with a value (internal: check_fields turns it into a FieldError)."""


def _describe(hint: Any) -> str:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is typing.Literal:
        return f"one of {list(args)}"
    if origin is tuple:
        return f"a list of {_describe(args[0])}"
    if _is_union(origin):
        return " or ".join("null" if a is type(None) else _describe(a) for a in args)
    if dataclasses.is_dataclass(hint):
        return f"a {hint.__name__} mapping"
    if hint is float:
        return "a number"
    return getattr(hint, "__name__", str(hint))


def _is_union(origin: Any) -> bool:
    return origin is typing.Union or origin is types.UnionType


def _check(value: Any, hint: Any, allowed: Range | None) -> None:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if _is_union(origin):
        if value is None and type(None) in args:
            return
        for arg in args:
            if arg is not type(None):
                return _check(value, arg, allowed)
    if origin is tuple:
        if not isinstance(value, tuple):
            raise _Bad(f"expected {_describe(hint)}, got {value!r}")
        for item in value:
            _check(item, args[0], allowed)
        return
    if origin is typing.Literal:
        if value not in args:
            raise _Bad(f"expected {_describe(hint)}, got {value!r}")
        return
    if dataclasses.is_dataclass(hint) or hint in (str, bool, Path, typing.Any):
        if hint is not typing.Any and not isinstance(value, hint):
            raise _Bad(f"expected {_describe(hint)}, got {value!r}")
        return
    if hint in (int, float):
        numeric = isinstance(value, int) or (hint is float and isinstance(value, float))
        if isinstance(value, bool) or not numeric:
            raise _Bad(f"expected {'an int' if hint is int else 'a number'}, got {value!r}")
        if not math.isfinite(value):
            raise _Bad(f"expected a finite number, got {value!r}")
        if allowed is not None and value not in allowed:
            raise _Bad(f"must be {allowed}, got {value!r}")


def from_dict(cls: type[C], data: dict[str, Any] | None, where: str = "config") -> C:
    """Build dataclass `cls` from `data` (YAML), recursing into nested dataclasses; every bad key or
    value is a ConfigError naming `where.key`."""
    data = {} if data is None else data
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping of keys to values, got {type(data).__name__}")
    hints = _hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {unknown}; valid keys are {sorted(fields)}")
    values = {}
    for name, value in data.items():
        nested = _dataclass_of(hints[name])
        if nested is not None and value is not None:
            values[name] = from_dict(nested, value, f"{where}.{name}")
        else:
            values[name] = _from_yaml(value, hints[name])
    try:
        return cls(**values)
    except FieldError as err:
        raise ConfigError(f"{where}.{err.field}: {err.message}") from None


def _dataclass_of(hint: Any) -> type | None:
    """The dataclass a field holds (`X` or `X | None`), or None."""
    options = typing.get_args(hint) if _is_union(typing.get_origin(hint)) else (hint,)
    return next((a for a in options if dataclasses.is_dataclass(a)), None)


def _from_yaml(value: Any, hint: Any) -> Any:
    """YAML's spelling of a value of type `hint`: lists for tuples, ints for floats."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if _is_union(origin) and value is not None:
        return _from_yaml(value, next(a for a in args if a is not type(None)))
    if origin is tuple and isinstance(value, list):
        return tuple(_from_yaml(v, args[0]) for v in value)
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if hint is Path and isinstance(value, str):
        return Path(value)
    return value


def read_yaml(path: str | Path) -> Any:
    """The parsed contents of a YAML file, or a ConfigError saying why there are none."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {str(path)!r} does not exist")
    with path.open() as f:
        try:
            return yaml.safe_load(f)
        except yaml.YAMLError as err:
            raise ConfigError(f"{path}: not valid YAML ({err})") from err


def load_yaml(cls: type[C], path: str | Path) -> C:
    """Load dataclass `cls` from a YAML file."""
    return from_dict(cls, read_yaml(path), where=Path(path).name)


def to_dict(config: Any) -> dict[str, Any]:
    """A plain dict (lists instead of tuples) that `from_dict` and YAML both accept."""
    def plain(v: Any) -> Any:
        if isinstance(v, (list, tuple)):
            return [plain(x) for x in v]
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        return v
    return plain(dataclasses.asdict(config))


@dataclasses.dataclass
class RLRunConfig:
    """What every budgeted RL learner's config starts with."""

    robot: str = "ant"  # for `mbmeta train`; the learners themselves take any env
    episode_length: int = 200
    seed: int = 0
    budget: int = 100_000  # environment steps; a resumed run may raise it

    RANGES: typing.ClassVar[dict[str, Range]] = {"episode_length": at_least(1), "seed": NON_NEGATIVE,
                                                 "budget": at_least(1)}

    def __post_init__(self) -> None:
        check_fields(self)
