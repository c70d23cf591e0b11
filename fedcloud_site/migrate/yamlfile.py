"""Reading the YAML files of the tools we replace, with errors that name the file and the line."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from .errors import MigrationError, read_text


def read_yaml_mapping(path: Path) -> Any:
    """The top-level mapping of a YAML file (``{}`` for an empty file); MigrationError otherwise."""
    text = read_text(path)
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise MigrationError(path, f"invalid YAML: {where}{problem}") from exc
    except RecursionError as cause:
        raise MigrationError(path, "invalid YAML: nested too deeply") from cause
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise MigrationError(path, f"expected a mapping at the top level, got {type(data).__name__}")
    return data
