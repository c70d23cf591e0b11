"""The counts and problems of one images sync run (the run summary and the job's result)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List


@dataclass
class Summary:
    lists_ok: int = 0
    lists_unchanged: int = 0
    lists_failed: int = 0
    downloaded: int = 0
    registered: int = 0
    updated: int = 0
    deprecated: int = 0
    removed: int = 0
    failed: int = 0
    awaiting_approval: int = 0
    adopted: int = 0  # images another tool registered, taken over (adopt_images_from)
    templates_created: int = 0
    templates_removed: int = 0
    problems: List[str] = field(default_factory=list)
    would: Dict[str, int] = field(default_factory=dict)  # dry run: what a real run would do

    def as_dict(self) -> Dict[str, int]:
        counts = {k: v for k, v in self.__dict__.items() if k not in ("problems", "would")}
        counts.update({f"would_{k}": v for k, v in self.would.items()})
        return counts

    @property
    def cloud_changed(self) -> bool:
        return bool(self.registered or self.updated or self.deprecated or self.removed or self.adopted)

    def problem(self, where: str, reason: str) -> None:
        self.problems.append(f"{where}: {reason}")
