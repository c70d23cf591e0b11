"""Reading the INI files of the tools we replace: oslo.config files (cASO) and ConfigParser files (apel-ssm).

Both are read with :mod:`configparser` without interpolation and without a special ``DEFAULT``
section, so every ``[section]`` keeps exactly the options written in it.  Every problem (unreadable
file, text before the first section, a line that is not ``option = value``, a section given twice)
becomes a :class:`MigrationError` naming the file and the line; values are converted by the typed
getters, whose errors name the section and option.
"""

from __future__ import annotations

import configparser
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Mapping, Optional

from .errors import MigrationError, read_text

_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0"}
_OSLO_VARIABLE = re.compile(r"\$(\$|\{([A-Za-z0-9_.-]+)\}|([A-Za-z0-9_]+))")
_NO_DEFAULT_SECTION = "\x00no default section"


@dataclass
class IniFile:
    """The options of an INI file, per section, as written (values stripped, comments dropped)."""

    path: Path
    sections: Dict[str, Dict[str, str]] = field(default_factory=dict)

    def has(self, section: str, option: str) -> bool:
        return option in self.sections.get(section, {})

    def options(self, section: str) -> Dict[str, str]:
        return dict(self.sections.get(section, {}))

    def raw(self, section: str, option: str) -> Optional[str]:
        return self.sections.get(section, {}).get(option)

    def error(self, problem: str, section: Optional[str] = None, option: Optional[str] = None) -> MigrationError:
        return MigrationError(self.path, problem, section, option)

    def get_str(self, section: str, option: str) -> Optional[str]:
        """The value, None when absent; an empty value is returned as ``""``."""
        return self.raw(section, option)

    def get_bool(self, section: str, option: str) -> Optional[bool]:
        value = self.raw(section, option)
        if value is None:
            return None
        lowered = value.strip().lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
        raise self.error(f"expected true or false, got {value!r}", section, option)

    def get_int(self, section: str, option: str) -> Optional[int]:
        value = self.raw(section, option)
        if value is None:
            return None
        try:
            return int(value.strip())
        except ValueError as exc:
            raise self.error(f"expected an integer, got {value!r}", section, option) from exc

    def get_list(self, section: str, option: str) -> Optional[List[str]]:
        """A comma-separated list (oslo ``ListOpt``); empty items dropped."""
        value = self.raw(section, option)
        if value is None:
            return None
        return [item.strip() for item in value.split(",") if item.strip()]


def read_ini(path: Path, case_sensitive: bool = True) -> IniFile:
    """Parse ``path``; :class:`MigrationError` (with the line) on anything configparser rejects.

    ``case_sensitive=False`` lower-cases option names as Python's ConfigParser (apel-ssm) does;
    oslo.config (cASO) matches them as written.
    """
    text = read_text(path)
    parser = configparser.RawConfigParser(strict=True, interpolation=None, default_section=_NO_DEFAULT_SECTION,
                                          comment_prefixes=("#", ";"), inline_comment_prefixes=None,
                                          empty_lines_in_values=False)
    if case_sensitive:
        parser.optionxform = str  # type: ignore[assignment,method-assign]
    try:
        parser.read_string(text, source=str(path))
    except configparser.MissingSectionHeaderError as exc:
        raise MigrationError(path, f"line {exc.lineno}: text before the first [section]: "
                                   f"{exc.line.strip()!r}") from exc
    except configparser.DuplicateSectionError as exc:
        raise MigrationError(path, f"line {exc.lineno}: section given twice", exc.section) from exc
    except configparser.DuplicateOptionError as exc:
        raise MigrationError(path, f"line {exc.lineno}: option given twice in one section", exc.section,
                             exc.option) from exc
    except configparser.ParsingError as exc:
        lineno, line = exc.errors[0]
        raise MigrationError(path, f"line {lineno}: not an 'option = value' line: {line.strip()!r}") from exc
    except configparser.Error as exc:
        raise MigrationError(path, f"not an INI file: {exc.message}") from exc
    sections = {name: {key: (value or "").strip() for key, value in parser.items(name, raw=True)}
                for name in parser.sections()}
    return IniFile(path=Path(path), sections=sections)


def expand_oslo(ini: IniFile, section: str, option: str, value: str,
                defaults: Mapping[str, str]) -> str:
    """oslo.config's ``$option`` / ``${option}`` substitution (``$$`` is a literal ``$``).

    Names are looked up in the same section, then ``[DEFAULT]``, then ``defaults`` (the tool's own
    defaults).  An unknown name or a loop is a :class:`MigrationError` naming the option.
    """

    def expand(text: str, seen: List[str]) -> str:
        def substitute(match: re.Match[str]) -> str:
            if match.group(1) == "$":
                return "$"
            name = match.group(2) or match.group(3)
            if name in seen:
                raise ini.error(f"${name} refers to itself", section, option)
            for where in (section, "DEFAULT"):
                found = ini.raw(where, name)
                if found is not None:
                    return expand(found, seen + [name])
            if name in defaults:
                return expand(defaults[name], seen + [name])
            raise ini.error(f"${name}: no such option to substitute", section, option)

        return _OSLO_VARIABLE.sub(substitute, text)

    return expand(value, [option])
