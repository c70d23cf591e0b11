"""Typed configuration sections: dataclasses validated from YAML data.

A section is a dataclass; its field types drive validation: ``str``, ``int``,
``float``, ``bool``, :class:`pathlib.Path` (resolved against the directory of
the file that set it), :class:`Secret` (a string that is never printed; may be
given as ``<name>_file``), ``Duration`` (seconds, or ``"30s"``, ``"15m"``,
``"6h"``, ``"2d"``), ``Optional[...]``, ``list[...]``, ``dict[str, ...]``,
``Literal[...]`` and nested dataclasses.  Every error names the file and the
key path of the offending value.  Unknown keys are errors.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
import typing
from pathlib import Path
from typing import Any, Callable, Dict, List, Literal, Mapping, Optional, Type, TypeVar, Union

from .errors import ConfigError

T = TypeVar("T")


class Secret(str):
    """A password or token: masked whenever the configuration is shown."""

    def __repr__(self) -> str:
        return "Secret('********')"


class Duration(float):
    """A time span in seconds, written as a number or with a unit suffix (s, m, h, d)."""


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*$")
#: the longest duration accepted (ten years): longer ones overflow the scheduler's date arithmetic
MAX_DURATION = 10 * 366 * 86400
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}

#: key path ("accounting.queue_dir") -> the file that set it
Origins = Mapping[str, str]


@dataclasses.dataclass
class _Ctx:
    origins: Origins
    default_file: Optional[str]

    def file_of(self, key: str) -> Optional[str]:
        probe = key
        while probe:
            if probe in self.origins:
                return self.origins[probe]
            probe = probe.rpartition(".")[0]
        return self.default_file

    def error(self, key: str, problem: str) -> ConfigError:
        return ConfigError(self.file_of(key), key, problem)


def parse_duration(value: Any) -> Duration:
    """Seconds from 30, "30s", "15m", "6h", "2d" or "1w"."""
    if isinstance(value, bool):
        raise ValueError("expected a duration such as 30, '15m', '6h' or '2d'")
    seconds: Optional[float] = None
    if isinstance(value, (int, float)):
        seconds = _finite(value)
    elif isinstance(value, str):
        match = _DURATION.match(value)
        if match:
            seconds = _finite(float(match.group(1)) * _UNITS[match.group(2)])
    if seconds is None:
        got = repr(value)[:80] if isinstance(value, str) else describe_value(value)
        raise ValueError(f"expected a duration such as 30, '15m', '6h' or '2d', got {got}")
    if seconds < 0:
        raise ValueError("a duration cannot be negative")
    if seconds > MAX_DURATION:
        raise ValueError(f"a duration cannot exceed {MAX_DURATION // 86400} days")
    return Duration(seconds)


def _finite(value: float) -> Optional[float]:
    """``value`` as a finite float, or None (NaN, infinity, an integer too large for a float)."""
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if tp is Path:
        return "a path"
    if tp is Secret:
        return "a secret string"
    if tp is Duration:
        return "a duration (e.g. 30, '15m', '6h')"
    if tp in (str, int, float, bool):
        return {str: "a string", int: "an integer", float: "a number", bool: "true or false"}[tp]
    if origin is Literal:
        return "one of " + ", ".join(repr(v) for v in typing.get_args(tp))
    if origin in (list, List):
        return f"a list of {_type_name(typing.get_args(tp)[0])}"
    if origin in (dict, Dict):
        return f"a mapping to {_type_name(typing.get_args(tp)[1])}"
    if dataclasses.is_dataclass(tp):
        return "a mapping"
    return str(tp)


def describe_value(value: Any) -> str:
    """A short description of a configuration value for error messages ("a list", "int 3")."""
    if value is None:
        return "nothing (null)"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 10 ** 30:
        return "int with more than 30 digits"
    text = repr(value)
    return f"{type(value).__name__} {text if len(text) <= 80 else text[:77] + '...'}"


def _convert(tp: Any, value: Any, key: str, ctx: _Ctx) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin is Union:
        non_none = [a for a in args if a is not type(None)]
        if value is None:
            return None
        return _convert(non_none[0], value, key, ctx)
    if tp is Any:
        return value
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ctx.error(key, f"expected {_type_name(tp)}, got {describe_value(value)}")
        return _build(tp, value, key, ctx)  # type: ignore[arg-type]
    if origin is Literal:
        if value not in args:
            raise ctx.error(key, f"expected {_type_name(tp)}, got {value!r}")
        return value
    if origin in (list, List):
        if not isinstance(value, list):
            raise ctx.error(key, f"expected {_type_name(tp)}, got {describe_value(value)}")
        return [_convert(args[0], item, f"{key}[{i}]", ctx) for i, item in enumerate(value)]
    if origin in (dict, Dict):
        if not isinstance(value, dict):
            raise ctx.error(key, f"expected {_type_name(tp)}, got {describe_value(value)}")
        return {str(k): _convert(args[1], v, f"{key}.{k}", ctx) for k, v in value.items()}
    if tp is Duration:
        try:
            return parse_duration(value)
        except ValueError as exc:
            raise ctx.error(key, str(exc)) from exc
    if tp is bool:
        if not isinstance(value, bool):
            raise ctx.error(key, f"expected true or false, got {describe_value(value)}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ctx.error(key, f"expected an integer, got {describe_value(value)}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ctx.error(key, f"expected a number, got {describe_value(value)}")
        number = _finite(value)
        if number is None:
            raise ctx.error(key, f"expected a finite number, got {describe_value(value)}")
        return number
    if tp in (str, Secret):
        if isinstance(value, (int, float)) and not isinstance(value, bool) and tp is str:
            return str(value)
        if not isinstance(value, str):
            raise ctx.error(key, f"expected {_type_name(tp)}, got {describe_value(value)}")
        return tp(value)
    if tp is Path:
        if not isinstance(value, str) or not value or "\0" in value:
            raise ctx.error(key, f"expected a path, got {describe_value(value)}")
        try:
            path = Path(value).expanduser()
        except RuntimeError as exc:  # "~nosuchuser/..."
            raise ctx.error(key, f"cannot expand {value!r}: {exc}") from exc
        if not path.is_absolute():
            origin_file = ctx.file_of(key)
            base = Path(origin_file).resolve().parent if origin_file else Path.cwd()
            path = Path(os.path.normpath(base / path))  # "a/../b" -> "b", symlinks kept
        return path
    raise TypeError(f"unsupported configuration type {tp!r} at {key}")  # pragma: no cover - programming error


def _hints(cls: type) -> Dict[str, Any]:
    return typing.get_type_hints(cls)


def _build(cls: Type[T], data: Mapping[str, Any], prefix: str, ctx: _Ctx) -> T:
    hints = _hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    secret_files = {f"{name}_file": name for name, f in fields.items() if _is_secret(hints[name])}
    kwargs: Dict[str, Any] = {}
    for raw_key, value in data.items():
        key = str(raw_key)
        path = f"{prefix}.{key}" if prefix else key
        if key in secret_files:
            target = secret_files[key]
            if target in data:
                raise ctx.error(path, f"give either {target} or {key}, not both")
            file_path = _convert(Path, value, path, ctx)
            try:
                kwargs[target] = Secret(file_path.read_text(encoding="utf-8").strip())
            except OSError as exc:
                raise ctx.error(path, f"cannot read secret file {file_path}: {exc.strerror}") from exc
            continue
        if key not in fields:
            known = ", ".join(sorted(list(fields) + list(secret_files)))
            raise ctx.error(path, f"unknown key (known keys here: {known})")
        kwargs[key] = _convert(hints[key], value, path, ctx)
    for name, f in fields.items():
        if name not in kwargs and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            path = f"{prefix}.{name}" if prefix else name
            raise ctx.error(path, f"required key missing (expected {_type_name(hints[name])})")
    try:
        instance = cls(**kwargs)
    except ValueError as exc:
        raise ctx.error(prefix, str(exc)) from exc
    validate = getattr(instance, "validate", None)
    if callable(validate):
        try:
            validate()
        except ValueError as exc:
            raise ctx.error(prefix, str(exc)) from exc
    return instance


def _is_secret(tp: Any) -> bool:
    if tp is Secret:
        return True
    return typing.get_origin(tp) is Union and Secret in typing.get_args(tp)


def build_section(cls: Type[T], data: Optional[Mapping[str, Any]], prefix: str, origins: Origins,
                  default_file: Optional[str] = None) -> T:
    """Validate ``data`` into the dataclass ``cls``; ``prefix`` is the section's key path."""
    ctx = _Ctx(origins, default_file)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ctx.error(prefix, f"expected a mapping, got {describe_value(data)}")
    return _build(cls, data, prefix, ctx)


def to_plain(value: Any, mask: Callable[[Secret], str] = lambda s: "********") -> Any:
    """The section as plain data for printing, secrets masked."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_plain(getattr(value, f.name), mask) for f in dataclasses.fields(value)}
    if isinstance(value, Secret):
        return mask(value)
    if isinstance(value, dict):
        return {k: to_plain(v, mask) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_plain(v, mask) for v in value]
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, Duration):
        return float(value)
    return value
