"""The one error every migration reader raises: which file, section and option is wrong, and why."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from ..errors import FedcloudSiteError


class MigrationError(FedcloudSiteError):
    """An old configuration or state file that cannot be migrated (``file: [section] option: problem``)."""

    exit_status = 2

    def __init__(self, file: object, problem: str, section: Optional[str] = None,
                 option: Optional[str] = None) -> None:
        self.file = str(file)
        self.section = section
        self.option = option
        self.problem = problem
        where = self.file
        if section is not None:
            where += f": [{section}]"
        if option is not None:
            where += f" {option}"
        super().__init__(f"{where}: {problem}")


def read_text(path: Path) -> str:
    """A tool's file as text; MigrationError naming it when unreadable or not UTF-8."""
    if "\x00" in str(path):
        raise MigrationError(str(path).replace("\x00", "\\x00"), "a file name cannot contain a NUL character")
    try:
        return Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise MigrationError(path, f"cannot read: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise MigrationError(path, f"not UTF-8 text (byte {exc.start})") from exc
