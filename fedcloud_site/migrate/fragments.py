"""Turning the tools' results into conf.d fragments: merge, validate through our loader, write atomically.

Fragments: ``50-migrated-site.yaml`` (``site``, ``cloud``, ``vos`` as every tool contributed them: a
value two tools give differently is an error naming both files) and one ``60-migrated-<tool>.yaml`` per
tool with its daemon sections.  Before anything is written the fragments are loaded, with the main
configuration file and the other fragments of its conf.d, by :func:`fedcloud_site.config.load_config`:
what is written is what the daemons will accept.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import yaml

from ..atomic import atomic_write_text
from ..config import Config, config_files, load_config
from ..schema import ConfigError
from .atrope import subscription_name
from .errors import MigrationError
from .report import Report
from .result import ToolResult

SITE_FRAGMENT = "50-migrated-site.yaml"
HEADER = "# written by `fedcloud-site migrate` from {sources}\n"


@dataclass
class Fragment:
    name: str
    data: Dict[str, Any]
    sources: List[str]

    def text(self) -> str:
        return HEADER.format(sources=", ".join(self.sources)) + yaml.safe_dump(self.data, sort_keys=False,
                                                                              default_flow_style=False)


def tool_fragment_name(tool: str) -> str:
    return f"60-migrated-{tool}.yaml"


def _merge_shared(into: Dict[str, Any], data: Dict[str, Any], source: str, origins: Dict[str, str],
                  report: Report, prefix: str = "") -> None:
    """Merge one tool's site/cloud/vos into ``into``: lists are united, a contradiction about the site is an
    error; about the cloud credentials the first tool's are kept (one set reads everything, see below)."""
    if prefix == "cloud.openstack" and into and data != {k: into.get(k) for k in data}:
        first = origins.get("cloud.openstack", "another file")
        report.warn(f"{source} reached the cloud with other credentials than {first}: fedcloud-site reads every "
                    f"project with one set, cloud.openstack from {first} is kept (it must read every accounted "
                    "and published project)")
        return
    for key, value in data.items():
        path = f"{prefix}.{key}" if prefix else key
        current = into.get(key)
        if isinstance(value, dict) and (current is None or isinstance(current, dict)):
            if current is None:
                origins[path] = source
            _merge_shared(into.setdefault(key, {}), value, source, origins, report, path)
        elif isinstance(value, list) and isinstance(current, list):
            into[key] = current + [item for item in value if item not in current]  # vos.<vo>.projects: union
        elif current is None:
            into[key] = value
            origins[path] = source
        elif current != value:
            raise MigrationError(source, f"{path} would be {value!r} but {origins.get(path, 'another file')} gives "
                                         f"{current!r}: fix one of them (they describe the same site)")


def build_fragments(results: Sequence[ToolResult], report: Report) -> List[Fragment]:
    """The site fragment (when any tool contributed to it) and one fragment per tool."""
    shared: Dict[str, Any] = {}
    origins: Dict[str, str] = {}
    shared_sources: List[str] = []
    for result in results:
        if result.shared:
            _merge_shared(shared, result.shared, result.source, origins, report)
            shared_sources.append(result.source)
    _join_queues(results, report)
    _join_image_subscriptions(results, report)
    fragments = []
    if shared:
        ordered: Dict[str, Any] = {key: shared[key] for key in ("site", "cloud", "vos") if key in shared}
        fragments.append(Fragment(SITE_FRAGMENT, ordered, shared_sources))
    for result in results:
        if result.sections:
            fragments.append(Fragment(tool_fragment_name(result.tool), result.sections,
                                      [result.source, *result.merged_from]))
    return fragments


def _join_image_subscriptions(results: Sequence[ToolResult], report: Report) -> None:
    """atrope's and vmcatcher's subscriptions in ONE images section (a later fragment's list would replace the
    earlier one's): names kept unique, the tools to adopt from united."""
    holders = [r for r in results if "images" in r.sections]
    if len(holders) < 2:
        return
    first = holders[0].sections["images"]
    names = {sub["name"] for sub in first["subscriptions"]}
    for other in holders[1:]:
        section = other.sections.pop("images")
        for sub in section["subscriptions"]:
            if sub["name"] in names:
                renamed = subscription_name(sub["name"], names)
                report.warn(f"{other.source}: subscription {sub['name']!r} renamed {renamed!r} ({holders[0].source} "
                            "has one of that name)")
                sub["name"] = renamed
            names.add(sub["name"])
            first["subscriptions"].append(sub)
        first["adopt_images_from"] = sorted(set(first.get("adopt_images_from", [])) |
                                            set(section.get("adopt_images_from", [])))
        holders[0].merged_from.append(other.source)
        report.state.append(f"image subscriptions of {other.source} written with those of {holders[0].source} "
                            f"into {tool_fragment_name(holders[0].tool)}")


def _join_queues(results: Sequence[ToolResult], report: Report) -> None:
    """cASO's output queue and apel-ssm's queue: one queue (the usual set-up) or both drained."""
    accounting = next((r.sections["accounting"] for r in results if "accounting" in r.sections), None)
    ssm_result = next((r for r in results if "ssm" in r.sections), None)
    if accounting is None or ssm_result is None:
        return
    ssm = ssm_result.sections["ssm"]
    ssm_queue = ssm.get("queue_dir")
    cloud_queue = accounting.get("queue_dir")
    if ssm_queue is None or cloud_queue is None:
        return
    if os.path.normpath(ssm_queue) == os.path.normpath(cloud_queue):
        del ssm["queue_dir"]
        report.state.append(f"queue {cloud_queue}: written by accounting, drained by ssm (cASO's output_path and "
                            "apel-ssm's path were the same queue)")
        return
    report.warn(f"cASO wrote into {cloud_queue} but apel-ssm sent from {ssm_queue}: both are drained by ssm, to "
                f"{ssm.get('destination')!r} (check that cASO's queue really was being sent)")
    destination = ssm.pop("destination")
    del ssm["queue_dir"]
    ssm["queues"] = [{"name": "cloud", "queue_dir": cloud_queue, "destination": destination},
                     {"name": "apel-ssm", "queue_dir": ssm_queue, "destination": destination}]
    storage = accounting.get("storage_queue_dir")
    if storage:
        ssm["queues"].append({"name": "storage", "queue_dir": storage,
                              "destination": "eu-egi-storage-accounting" if ssm.get("transport") == "ams"
                              else "/queue/global.accounting.storage.central"})


def validate(fragments: Sequence[Fragment], main_config: Path, output: Path) -> Config:
    """Load the main configuration with its conf.d, the fragments added (same names replaced) -> Config.

    The check runs in a temporary directory holding links to the real files (so that relative paths
    resolve as they will) and the new fragments; ConfigError and MigrationError name the fragment.
    """
    with tempfile.TemporaryDirectory(prefix="fedcloud-site-migrate-") as tmp:
        root = Path(tmp)
        main = root / "fedcloud-site.yaml"
        if main_config.exists():
            main.symlink_to(main_config.resolve())
        else:
            main.write_text("{}\n", encoding="utf-8")
        conf_d = root / "conf.d"
        conf_d.mkdir()
        ours = {fragment.name for fragment in fragments}
        same_dir = output.resolve() == (main_config.parent / "conf.d").resolve()
        for existing in config_files(main_config)[1:] if main_config.exists() else []:
            if existing.name in ours and same_dir:
                continue
            (conf_d / existing.name).symlink_to(existing.resolve())
        if not same_dir and output.is_dir():
            for existing in sorted(output.glob("*.yaml")):
                if existing.name not in ours and not (conf_d / existing.name).exists():
                    (conf_d / existing.name).symlink_to(existing.resolve())
        for fragment in fragments:
            (conf_d / fragment.name).write_text(fragment.text(), encoding="utf-8")
        try:
            return load_config(main)
        except ConfigError as exc:
            where = exc.file or str(main_config)
            if where.startswith(str(root)):
                where = str(output / Path(where).name) if Path(where).parent == conf_d else str(main_config)
            raise MigrationError(where, f"the migrated configuration would not load: {exc.key}: {exc.problem}"
                                 if exc.key else f"the migrated configuration would not load: {exc.problem}") from exc


def write(fragments: Sequence[Fragment], output: Path, force: bool) -> List[Tuple[Path, bool]]:
    """Write every fragment atomically (0640); refuses, before writing any, to replace one without ``force``."""
    targets = [(output / fragment.name, fragment) for fragment in fragments]
    existing = [str(path) for path, _ in targets if path.exists()]
    if existing and not force:
        raise MigrationError(existing[0], "already exists: a previous migration? Compare, then run again with --force "
                                          f"to replace {', '.join(existing)}")
    written = []
    for path, fragment in targets:
        replaced = path.exists()
        try:
            atomic_write_text(path, fragment.text(), mode=0o640)
        except OSError as exc:
            raise MigrationError(path, f"cannot write: {exc.strerror}") from exc
        written.append((path, replaced))
    return written


def read_back(path: Path) -> Optional[Dict[str, Any]]:
    """A written fragment as data (for tests and --dry-run comparisons)."""
    return yaml.safe_load(path.read_text(encoding="utf-8")) if path.exists() else None
