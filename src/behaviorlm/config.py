"""Typed, frozen configs composed at the edge.

Every component owns a ``@dataclass(frozen=True, kw_only=True)`` config. Experiment files
are TOML with one table per component (``[model]``, ``[train]``, ...); command-line
overrides look like ``--train.lr=1e-3``. Unknown keys are an error, values are checked
against the field types, and the resolved config is saved with every run as JSON.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import math
import numbers
import re
import tomllib
import types
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")


class ConfigError(ValueError):
    """A config file or override that does not match the config classes.

    Examples
    --------
    >>> apply_overrides({"train": {"lr": 0.001}}, ["--train.lr"])
    Traceback (most recent call last):
    ...
    behaviorlm.config.ConfigError: ...
    """


class IgnoredSettingWarning(UserWarning):
    """A setting that is valid but has no effect on the run it was given to (a ``[train]``
    setting for a baseline, which is fitted without the training loop); the command line
    prints it as a note."""


def _coerce(value: Any, annotation: Any, where: str) -> Any:
    """Check (and gently convert) ``value`` against a field's type annotation."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if annotation is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        optional = type(None) in args
        # TOML has no null: an override or file says none (a text field takes it as text)
        unset = isinstance(value, str) and value.strip().lower() in ("none", "null")
        if optional and (value is None or (unset and str not in args)):
            return None
        kinds = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, where)
            except ConfigError as exc:  # "model.x: expected an integer, got 'abc'"
                kinds.append(str(exc).partition(": expected ")[2].partition(", got ")[0])
        wanted = " or ".join(k for k in kinds if k) or str(annotation)
        raise ConfigError(
            f"{where}: expected {wanted}{' or none' if optional else ''}, got {value!r}"
        )
    if origin is typing.Literal:
        if value not in args:
            raise ConfigError(f"{where}: {value!r} is not one of {list(args)}")
        return value
    if origin in (tuple, list) or annotation in (tuple, list):
        if isinstance(value, str):  # target_actions=purchase (or purchase,cart): names
            value = [part.strip() for part in value.split(",") if part.strip()] or [value]
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        item_type = args[0] if args else Any
        items = [_coerce(v, item_type, f"{where}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if (origin or annotation) is tuple else items
    if annotation is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{where}: expected true or false, got {value!r}")
    if annotation is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ConfigError(f"{where}: expected an integer, got {value!r}")
    if annotation is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if not math.isfinite(value):  # nan and inf are floats in TOML too
                raise ConfigError(f"{where}: expected a finite number, got {value!r}")
            return float(value)
        raise ConfigError(f"{where}: expected a number, got {value!r}")
    if annotation is str:
        if isinstance(value, str):
            return value
        raise ConfigError(f"{where}: expected a string, got {value!r}")
    if dataclasses.is_dataclass(annotation) and isinstance(annotation, type):
        if not isinstance(value, Mapping):
            raise ConfigError(
                f"{where}: expected a table, written {{key = value, ...}}, got {value!r}"
            )
        return from_dict(annotation, value, where=where)
    return value


def did_you_mean(name: str, known: Sequence[str]) -> str:
    """`` (did you mean X?)`` for the known name nearest ``name`` (a dash read as an
    underscore, as people type flags), or nothing where none is near.

    Examples
    --------
    >>> did_you_mean("time-budget-s", ["lr", "time_budget_s"]), did_you_mean("zz", ["lr"])
    (' (did you mean time_budget_s?)', '')
    """
    close = difflib.get_close_matches(name.replace("-", "_"), list(known), n=1, cutoff=0.6)
    return f" (did you mean {close[0]}?)" if close else ""


def _real(value: object) -> bool:
    """A number that can be NaN or infinite: a float, numpy's too (not an int or a bool)."""
    return isinstance(value, numbers.Real) and not isinstance(value, numbers.Integral)


def check_finite(config: object, prefix: str = "") -> None:
    """Refuse a NaN or infinite number in a config dataclass's fields (or in a tuple field),
    which every comparison in a range check lets through; ``prefix`` (``"train."``) names
    the table in the message.

    Examples
    --------
    >>> @dataclasses.dataclass(frozen=True)
    ... class C:
    ...     rate: float = 1.0
    >>> check_finite(C(rate=float("nan")))
    Traceback (most recent call last):
    ...
    ValueError: rate must be a finite number, got nan
    """
    for field in dataclasses.fields(config):  # type: ignore[arg-type]
        value = getattr(config, field.name)
        values = value if isinstance(value, (tuple, list)) else (value,)
        if any(_real(v) and not math.isfinite(v) for v in values):
            raise ValueError(f"{prefix}{field.name} must be a finite number, got {value}")


def from_dict(cls: type[T], data: Mapping[str, Any], *, where: str = "") -> T:
    """Build config ``cls`` from a mapping; unknown keys and wrong types raise ConfigError.

    Examples
    --------
    >>> @dataclasses.dataclass(frozen=True, kw_only=True)
    ... class C:
    ...     lr: float = 1e-3
    >>> from_dict(C, {"lr": 1})
    C(lr=1.0)
    """
    if not dataclasses.is_dataclass(cls):
        raise TypeError(f"{cls} is not a dataclass")
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - known)
    if unknown:
        prefix = f"{where}." if where else ""
        raise ConfigError(
            f"unknown config key(s) {', '.join(prefix + k for k in unknown)}"
            f"{did_you_mean(unknown[0], sorted(known))}; known: {', '.join(sorted(known))}"
        )
    kwargs = {
        key: _coerce(value, hints[key], f"{where}.{key}" if where else key)
        for key, value in data.items()
    }
    try:
        return cls(**kwargs)
    except ConfigError:
        raise
    except ValueError as exc:  # a value out of range, refused by the class: a config error
        message = str(exc)
        first = re.match(r"\w+", message)
        if where and first and first.group() in known:  # "dropout ..." -> "model.dropout ..."
            message = f"{where}.{message}"
        raise ConfigError(message) from exc


def to_dict(config: object) -> dict[str, Any]:
    """A config as plain JSON-ready data (tuples become lists)."""
    if not dataclasses.is_dataclass(config) or isinstance(config, type):
        raise TypeError(f"{config!r} is not a dataclass instance")
    return json.loads(json.dumps(dataclasses.asdict(config)))  # type: ignore[no-any-return]


#: A number as people type it where TOML wants more (``.001``, ``5.``, ``-.5e-3``).
_LOOSE_NUMBER = re.compile(r"[+-]?(\d+\.\d*|\.\d+)([eE][+-]?\d+)?")


def parse_value(text: str) -> Any:
    """Parse an override value as TOML (numbers, booleans, lists, quoted strings), else as a
    number, a boolean or a list written loosely (``.001``, ``False``, ``[purchase, cart]``),
    else keep it as a string.

    Examples
    --------
    >>> parse_value("1e-3"), parse_value(".001"), parse_value("False"), parse_value("adamw")
    (0.001, 0.001, False, 'adamw')
    >>> parse_value("[purchase, cart]"), parse_value('["purchase"]'), parse_value("[]")
    (['purchase', 'cart'], ['purchase'], [])
    >>> parse_value("{social=False, time=true}")
    {'social': False, 'time': True}
    """
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        pass
    bare = text.strip()
    if _LOOSE_NUMBER.fullmatch(bare):
        return float(bare)
    if bare.lower() in ("true", "false"):
        return bare.lower() == "true"
    if bare.startswith("[") and bare.endswith("]"):
        inside = bare[1:-1].strip().removesuffix(",")
        if not any(c in inside for c in "[]\"'"):  # quoted or nested: TOML's to read, not ours
            return [parse_value(part.strip()) for part in inside.split(",")] if inside else []
    if bare.startswith("{") and bare.endswith("}"):  # {social=False}: loose values in a table
        inside = bare[1:-1].strip().removesuffix(",")
        pairs = [part.partition("=") for part in inside.split(",")] if inside else []
        plain = not any(c in inside for c in "{}[]\"'")
        if plain and all(key.strip() and sep for key, sep, _ in pairs):
            return {key.strip(): parse_value(value.strip()) for key, _, value in pairs}
    return text


def _plain(value: Any) -> Any:
    """JSON form of a config object inside config data (a dataclass as its fields)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    raise TypeError(f"{type(value).__name__} is not a config value")


def merge(base: Mapping[str, Any], top: Mapping[str, Any]) -> dict[str, Any]:
    """``top`` over ``base``, table by table (a value that is not a table replaces).

    Examples
    --------
    >>> merge({"model": {"dim": 64, "features": {"time": True}}}, {"model": {"dim": 32}})
    {'model': {'dim': 32, 'features': {'time': True}}}
    """
    out = dict(base)
    for key, value in top.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def apply_overrides(data: Mapping[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """Apply ``section.key=value`` overrides to nested config data. A table given as a value
    (``model.features={social=false}``) changes only the keys it sets, as a config file does.

    Examples
    --------
    >>> apply_overrides({"train": {"lr": 0.1}}, ["train.lr=0.01", "model.dim=64"])
    {'train': {'lr': 0.01}, 'model': {'dim': 64}}
    >>> apply_overrides({"model": {"features": {"time": False}}}, ["model.features={social=false}"])
    {'model': {'features': {'time': False, 'social': False}}}
    """
    if isinstance(overrides, str):
        raise ConfigError(f"overrides are a list of section.key=value strings, got {overrides!r}")
    # a section may also be given as its config object (SplitConfig, TrainConfig, ...)
    out: dict[str, Any] = json.loads(json.dumps(dict(data), default=_plain))
    for override in overrides:
        key, sep, value = override.removeprefix("--").partition("=")
        if not sep or "." not in key or key.startswith(".") or key.endswith("."):
            raise ConfigError(
                f"override {override!r} must look like section.key=value (e.g. train.lr=0.001)"
            )
        node = out
        parts = key.split(".")
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(f"override {override!r}: {part} is not a table")
            node = child
        parsed, held = parse_value(value), node.get(parts[-1])
        if isinstance(parsed, Mapping) and isinstance(held, Mapping):
            parsed = merge(held, parsed)
        node[parts[-1]] = parsed
    return out


def load_toml(path: str | Path) -> dict[str, Any]:
    """Read a TOML experiment file (UTF-8; a byte-order mark before it is skipped), or a
    ``.json`` file of the same tables (a run's resolved ``config.json``); a missing,
    unreadable or malformed file raises ConfigError.

    Examples
    --------
    >>> import tempfile
    >>> p = Path(tempfile.mkdtemp()) / "x.toml"
    >>> _ = p.write_bytes(b"\\xef\\xbb\\xbf[train]\\nlr = 1e-3\\n")  # as some editors save it
    >>> load_toml(p)
    {'train': {'lr': 0.001}}
    """
    p = Path(path)
    if p.is_dir():
        raise ConfigError(f"config file {p} is a folder; pass the TOML file in it")
    if not p.is_file():
        raise ConfigError(f"config file {p} does not exist")
    try:
        if p.suffix.lower() == ".json":  # a run's resolved config.json, fed back
            data = json.loads(p.read_text(encoding="utf-8-sig"))
            if not isinstance(data, dict):
                raise ConfigError(f"config file {p} holds no JSON object of tables")
            return data
        return tomllib.loads(p.read_text(encoding="utf-8-sig"))
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"config file {p} is not UTF-8 text (byte {exc.start}); save it as UTF-8"
        ) from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {p} is not valid TOML: {exc}") from exc
    except json.JSONDecodeError as exc:
        raise ConfigError(f"config file {p} is not valid JSON: {exc}") from exc
