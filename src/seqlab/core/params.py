"""Strict construction of frozen dataclasses from plain data (parsed YAML, checkpoint dicts).

An unknown key is an error naming the key path and the valid keys; a value of
the wrong type is an error naming the key, the expected type and the value.
bool is never accepted as a number, an int is accepted as a float.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any, Literal

from seqlab.core.errors import ConfigError


def build(cls: type, raw: Any, prefix: str) -> Any:
    """Build dataclass ``cls`` from the mapping ``raw``; ``prefix`` names it in errors."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{prefix or 'top level'}: expected a mapping, got {type(raw).__name__}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = [key for key in raw if key not in names]
    if unknown:
        where = f"{prefix}." if prefix else ""
        raise ConfigError(f"unknown key {where}{unknown[0]}; valid keys: {', '.join(names)}")
    values = {key: _convert(hints[key], value, f"{prefix}.{key}" if prefix else key) for key, value in raw.items()}
    return cls(**values)


def _convert(hint: Any, value: Any, key: str) -> Any:
    origin = typing.get_origin(hint)
    if dataclasses.is_dataclass(hint):
        return build(hint, value, key)
    if origin is Literal:
        choices = typing.get_args(hint)
        if value not in choices:
            raise ConfigError(f"{key}: {value!r} is not one of {', '.join(map(repr, choices))}")
        return value
    if origin is tuple:
        if not isinstance(value, list):
            raise ConfigError(f"{key}: expected a list, got {type(value).__name__}")
        (item,) = {a for a in typing.get_args(hint) if a is not Ellipsis}
        return tuple(_convert(item, v, f"{key}[{i}]") for i, v in enumerate(value))
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in typing.get_args(hint):
            return None
        arms = [a for a in typing.get_args(hint) if a is not type(None)]
        if len(arms) > 1:  # e.g. int | Literal["auto"]: the first arm that takes the value
            return _first_fit(arms, value, key)
        (hint,) = arms
    return _scalar(hint, value, key)


def _first_fit(arms: list[Any], value: Any, key: str) -> Any:
    for arm in arms:
        try:
            return _convert(arm, value, key)
        except ConfigError:
            continue
    names = " or ".join(repr(typing.get_args(a)[0]) if typing.get_origin(a) is Literal else a.__name__ for a in arms)
    raise ConfigError(f"{key}: expected {names}, got {type(value).__name__} {value!r}")


def _scalar(hint: type, value: Any, key: str) -> Any:
    # bool is an int in Python, so it is checked first and never accepted as a number.
    if hint is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, hint) and not (hint is int and isinstance(value, bool)):
        return value
    raise ConfigError(f"{key}: expected {hint.__name__}, got {type(value).__name__} {value!r}")


def as_dict(config: Any) -> dict[str, Any]:
    """A plain-dict copy (for checkpoints and logs); tuples become lists."""
    return _plain(dataclasses.asdict(config))


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value
