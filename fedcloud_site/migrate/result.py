"""What one reader hands to the command: fragment data, shared sections, state to carry over."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List

#: a state carry-over run once the merged configuration is valid: (config, dry_run, force) -> report lines
StateAction = Callable[[Any, bool, bool], List[str]]


@dataclass
class ToolResult:
    """The migration of one tool.

    ``sections`` holds the tool's own daemon sections (``{"accounting": {...}}``) and goes into the
    tool's fragment; ``shared`` holds its contributions to ``site``, ``cloud`` and ``vos``, which every
    tool may set and which the command merges (refusing contradictions) into the site fragment.
    """

    tool: str  # caso, apel-ssm, cloud-info-provider, atrope
    source: str  # the file read
    sections: Dict[str, Any] = field(default_factory=dict)
    shared: Dict[str, Any] = field(default_factory=dict)
    actions: List[StateAction] = field(default_factory=list)
    merged_from: List[str] = field(default_factory=list)  # other tools' files whose sections were merged in
