"""The daemon registry: every daemon is a plugin, found through one entry-point group.

A daemon package registers ``<name> = <package>.spec:SPEC`` under ``fedcloud_site.daemons``
(ours in setup.cfg).  Its :class:`DaemonSpec` tells the core everything it needs: the settings
class (the schema of the ``<name>`` section), the jobs, the extra CLI commands and the probe.
The core (configuration, command line, probes, packaging tests) enumerates the registry and imports
no daemon by name.

A spec module must stay cheap to import (loading the configuration imports every spec): it names
its settings class and reaches the daemon's heavier modules through small functions.
"""

from __future__ import annotations

import argparse
import importlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Dict, List, Optional, Sequence, Type

from . import plugins
from .settings import DaemonSettings

if TYPE_CHECKING:  # the spec's callables take the configuration and return jobs; neither is imported here
    from typing import TypeAlias

    from .config import Config
    from .runner import Job

    #: what ``ArgumentParser.add_subparsers()`` returns: a daemon's ``add_commands`` adds its actions to it
    SubParsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"

ENTRY_POINT_GROUP = "fedcloud_site.daemons"

AddCommon = Callable[[argparse.ArgumentParser], None]


@dataclass(frozen=True)
class DaemonSpec:
    """What a daemon declares to the core.

    ``jobs`` and ``cli`` name modules (``module:function`` / ``module``) imported only when used, so that
    loading the configuration, which reads every spec, does not import every daemon.
    """

    name: str  # section name, ``fedcloud-site <name>``, unit fedcloud-site-<name>.service
    summary: str  # one line: what it does (``fedcloud-site --help``)
    settings: Type[DaemonSettings]  # the schema of its section
    jobs: str  # "module:function": function(config) -> its scheduled jobs
    order: int  # where it runs in the demo and is listed (accounting before the sender that ships its records)
    #: module with ``add_commands(actions, add_common)`` (actions beside run/once: status, republish...) and
    #: optionally ``add_run_arguments(parser)`` (daemon-specific options of run/once, e.g. perun --force)
    cli: Optional[str] = None
    probe: Optional[str] = None  # module of its ``fedcloud-site check`` probe (NAME, HELP, add_arguments, run)

    def make_jobs(self, config: Config) -> List[Job]:
        """The daemon's jobs for a validated configuration."""
        module_name, _, function = self.jobs.partition(":")
        jobs = getattr(importlib.import_module(module_name), function)
        return list(jobs(config))

    def add_cli(self, actions: SubParsers, add_common: AddCommon,
                run_parsers: Sequence[argparse.ArgumentParser]) -> None:
        """Add the daemon's own actions, and its options of ``run``/``once`` (``run_parsers``)."""
        if self.cli is None:
            return
        module = importlib.import_module(self.cli)
        add_run_arguments = getattr(module, "add_run_arguments", None)
        if add_run_arguments is not None:
            for parser in run_parsers:
                add_run_arguments(parser)
        module.add_commands(actions, add_common)


def _load(name: str) -> DaemonSpec:
    spec = plugins.load(ENTRY_POINT_GROUP, name, "daemon")
    if not isinstance(spec, DaemonSpec):
        raise LookupError(f"daemon {name!r}: the entry point does not name a DaemonSpec")
    if spec.name != name:
        raise LookupError(f"daemon {name!r}: its spec is named {spec.name!r}")
    return spec


def daemon_specs() -> List[DaemonSpec]:
    """Every installed daemon, in run order; LookupError names a registered daemon that cannot be loaded."""
    found = [_load(name) for name in plugins.names(ENTRY_POINT_GROUP)]
    return sorted(found, key=lambda spec: (spec.order, spec.name))


def daemon_spec(name: str) -> DaemonSpec:
    """The spec of daemon ``name``; LookupError if it is not installed."""
    return _load(name)


def daemon_names() -> List[str]:
    """Names of the installed daemons, in run order."""
    return [spec.name for spec in daemon_specs()]


def section_schemas() -> Dict[str, Type[DaemonSettings]]:
    """Section name -> settings class, for the configuration loader."""
    return {spec.name: spec.settings for spec in daemon_specs()}


def probe_modules() -> Sequence[str]:
    """The probe modules the daemons declare, in run order."""
    return [spec.probe for spec in daemon_specs() if spec.probe]


__all__ = ["DaemonSpec", "ENTRY_POINT_GROUP", "daemon_names", "daemon_spec", "daemon_specs", "probe_modules",
           "section_schemas"]
