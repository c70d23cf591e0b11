"""What a migration did: every option mapped (old name -> new key), not mapped (and why), every default
that differs between the old tool and fedcloud-site, and the state carried over."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

MASK = "********"


@dataclass(frozen=True)
class Mapped:
    source: str  # file
    old: str  # "[section] option" (INI) or a YAML key path
    new: str  # our key path, e.g. accounting.queue_dir
    value: Any  # as written into the fragment (secrets masked)
    note: str = ""


@dataclass(frozen=True)
class Unmapped:
    source: str
    old: str
    why: str


@dataclass(frozen=True)
class DefaultChange:
    tool: str
    what: str  # the setting
    old_default: Any
    new_default: Any
    kept: bool  # True: the old default was written explicitly, so behaviour is unchanged
    note: str = ""


@dataclass
class Report:
    """Collects the outcome of every reader; rendered as text for the operator."""

    mapped: List[Mapped] = field(default_factory=list)
    unmapped: List[Unmapped] = field(default_factory=list)
    defaults: List[DefaultChange] = field(default_factory=list)
    warnings: List[str] = field(default_factory=list)
    state: List[str] = field(default_factory=list)  # state carried over (or that would be)
    written: List[str] = field(default_factory=list)

    def map(self, source: object, old: str, new: str, value: Any, note: str = "", secret: bool = False) -> None:
        self.mapped.append(Mapped(str(source), old, new, MASK if secret else value, note))

    def skip(self, source: object, old: str, why: str) -> None:
        self.unmapped.append(Unmapped(str(source), old, why))

    def default(self, tool: str, what: str, old_default: Any, new_default: Any, kept: bool, note: str = "") -> None:
        self.defaults.append(DefaultChange(tool, what, old_default, new_default, kept, note))

    def warn(self, text: str) -> None:
        self.warnings.append(text)

    def mapped_keys(self) -> Dict[str, str]:
        """old name -> new key (for tests and summaries)."""
        return {m.old: m.new for m in self.mapped}

    def unmapped_names(self) -> List[str]:
        return [u.old for u in self.unmapped]

    def render(self) -> str:
        """The report as text, one line per item, grouped."""
        lines: List[str] = []

        def group(title: str, items: List[str]) -> None:
            lines.append(f"# {title}: {len(items)}")
            lines.extend(f"  {item}" for item in items)

        group("mapped", [f"{m.source}: {m.old} -> {m.new} = {_show(m.value)}" + (f"  ({m.note})" if m.note else "")
                         for m in self.mapped])
        group("not mapped", [f"{u.source}: {u.old}: {u.why}" for u in self.unmapped])
        group("defaults that differ", [
            f"{d.tool}: {d.what}: was {_show(d.old_default)}, fedcloud-site {_show(d.new_default)}; "
            + ("old value written explicitly" if d.kept else "fedcloud-site's applies")
            + (f" ({d.note})" if d.note else "")
            for d in self.defaults])
        group("state", self.state)
        group("warnings", self.warnings)
        if self.written:
            group("written", self.written)
        return "\n".join(lines) + "\n"


def _show(value: Optional[Any]) -> str:
    if isinstance(value, str):
        return repr(value)
    if value is None:
        return "unset"
    return str(value)
