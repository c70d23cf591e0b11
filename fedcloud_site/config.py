"""Loading and validating ``fedcloud-site.yaml`` (+ ``conf.d/*.yaml``).

The main file and then every ``conf.d/*.yaml`` beside it (in name order) are
merged: mappings merge key by key, anything else is replaced by the later file.
Each value remembers the file that set it, so errors name that file and
relative paths are resolved against that file's directory.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Literal, Mapping, Optional, Type, TypeVar, Union, overload

import yaml

from .cloud import backend_declaration, backend_settings_class
from .errors import ConfigError
from .registry import section_schemas
from .schema import Duration, build_section, describe_value, to_plain
from .settings import DaemonSettings

S = TypeVar("S", bound=DaemonSettings)

DEFAULT_CONFIG = Path("/etc/fedcloud-site/fedcloud-site.yaml")

QualityLevel = Literal["development", "pre-production", "production", "testing"]


@dataclass
class SiteSettings:
    """``site``: who we are in GOCDB and the federation."""

    name: str  # GOCDB site name
    endpoint: Optional[str] = None  # public URL of the cloud API (e.g. Keystone v3)
    service_name: Optional[str] = None  # CloudComputeService; defaults to the site name
    gocdb_service_id: Optional[str] = None
    region: Optional[str] = None
    production_level: QualityLevel = "production"
    country: Optional[str] = None
    ngi: Optional[str] = None

    @property
    def compute_service(self) -> str:
        return self.service_name or self.name


@dataclass
class VOSettings:
    """One entry of ``vos``: a VO and the local projects/groups that serve it."""

    projects: List[str] = field(default_factory=list)  # project ids or names in the cloud
    group: Optional[str] = None  # local user group (OpenNebula); defaults to the VO name
    fqan: Optional[str] = None  # what accounting publishes as FQAN; defaults to the VO name
    sla: Optional[str] = None
    default_network_type: Optional[str] = None
    public_network_name: Optional[str] = None
    instance_max_cpu: Optional[int] = None
    instance_max_ram_mb: Optional[int] = None
    max_vms: Optional[int] = None


@dataclass
class CloudSettings:
    """``cloud``: which backend plugin and its own settings (validated by the plugin)."""

    backend: str = "static"
    vo_property: str = "egi.VO"  # project property naming the VO, used when ``vos`` does not map a project


@dataclass
class LoggingSettings:
    """``logging``: structured log output."""

    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["keyvalue", "json"] = "keyvalue"
    file: Optional[Path] = None  # None: stderr (the journal under systemd)


@dataclass
class Config:
    """The whole validated configuration."""

    site: SiteSettings
    cloud: CloudSettings
    cloud_backend_settings: object  # the backend's own Settings dataclass (its schema, its validation)
    vos: Dict[str, VOSettings]
    logging: LoggingSettings
    daemons: Dict[str, DaemonSettings]  # section name -> that daemon's settings (every installed daemon)
    files: List[Path]
    origins: Mapping[str, str] = field(default_factory=dict)

    @overload
    def section(self, kind: Type[S]) -> S: ...

    @overload
    def section(self, kind: str) -> DaemonSettings: ...

    def section(self, kind: Union[Type[S], str]) -> Union[S, DaemonSettings]:
        """A daemon's section, typed by its settings class: ``config.section(accounting.settings.Settings)``.

        By name (``config.section(<daemon name>)``) it is only a :class:`DaemonSettings` to the type checker.
        """
        if isinstance(kind, str):
            return self.daemon_settings(kind)
        for settings in self.daemons.values():
            if type(settings) is kind:
                return settings
        raise LookupError(f"no installed daemon has the settings class {kind.__module__}.{kind.__qualname__}")

    def daemon_settings(self, daemon: str) -> DaemonSettings:
        """The settings of daemon ``daemon`` (by name, for code that serves every daemon: runner, probes)."""
        return self.daemons[daemon]

    def vo_of_project(self, project_id: str, project_name: Optional[str] = None,
                      properties: Optional[Mapping[str, str]] = None) -> Optional[str]:
        """The VO a project serves: from ``vos`` first, then the project property ``cloud.vo_property``."""
        for vo, settings in self.vos.items():
            if project_id in settings.projects or (project_name is not None and project_name in settings.projects):
                return vo
        if properties and properties.get(self.cloud.vo_property):
            return properties[self.cloud.vo_property]
        return None

    def as_plain(self) -> Dict[str, Any]:
        """Effective configuration as plain data, secrets masked."""
        cloud = {"backend": self.cloud.backend, "vo_property": self.cloud.vo_property,
                 self.cloud.backend: to_plain(self.cloud_backend_settings)}
        data: Dict[str, Any] = {
            "site": to_plain(self.site),
            "cloud": cloud,
            "vos": to_plain(self.vos),
            "logging": to_plain(self.logging),
        }
        for name, settings in self.daemons.items():
            data[name] = to_plain(settings)
        return data


def _read_yaml(path: Path) -> Dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(str(path), "", f"cannot read configuration: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(str(path), "", f"not UTF-8 text: invalid byte at offset {exc.start}") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(str(path), "", f"invalid YAML: {where}{problem}") from exc
    except RecursionError as exc:
        raise ConfigError(str(path), "", "invalid YAML: nested too deeply") from exc
    except ValueError as exc:  # e.g. an integer longer than Python converts (4300 digits)
        raise ConfigError(str(path), "", f"invalid YAML value: {exc}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(str(path), "", "expected a mapping of sections at the top level")
    return data


def _merge(into: Dict[str, Any], data: Mapping[str, Any], origin: str, origins: Dict[str, str],
           prefix: str = "") -> None:
    for key, value in data.items():
        path = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _merge(into[key], value, origin, origins, path)
        else:
            into[key] = value
            for stale in [k for k in origins if k.startswith(path + ".") or k.startswith(path + "[")]:
                del origins[stale]
            origins[path] = origin
            if isinstance(value, dict):
                _record_origins(value, origin, origins, path)


def _record_origins(data: Mapping[str, Any], origin: str, origins: Dict[str, str], prefix: str) -> None:
    for key, value in data.items():
        path = f"{prefix}.{key}"
        origins[path] = origin
        if isinstance(value, dict):
            _record_origins(value, origin, origins, path)


def config_files(path: Path) -> List[Path]:
    """The main file followed by ``conf.d/*.yaml`` beside it, in name order."""
    conf_d = path.parent / "conf.d"
    extra = sorted(conf_d.glob("*.yaml")) if conf_d.is_dir() else []
    return [path] + extra


def _mapping(merged: Mapping[str, Any], section: str, origins: Mapping[str, str], main_file: str,
             expected: str = "a mapping") -> Mapping[str, Any]:
    """A section that must be a mapping (absent or empty: ``{}``); anything else is a named error."""
    data = merged.get(section)
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(origins.get(section, main_file), section, f"expected {expected}, got {describe_value(data)}")
    return data


def load_config(path: Optional[Path] = None) -> Config:
    """Read, merge and validate the configuration; raises :class:`ConfigError`."""
    main = Path(path) if path is not None else DEFAULT_CONFIG
    files = config_files(main)
    merged: Dict[str, Any] = {}
    origins: Dict[str, str] = {}
    for file in files:
        _merge(merged, _read_yaml(file), str(file), origins)
    main_file = str(main)
    schemas = section_schemas()
    known = {"site", "cloud", "vos", "logging", *schemas}
    for key in merged:
        if key not in known:
            raise ConfigError(origins.get(str(key), main_file), str(key),
                              f"unknown section (known sections: {', '.join(sorted(known))})")
    if "site" not in merged:
        raise ConfigError(main_file, "site", "required section missing (needs at least site.name)")
    site = build_section(SiteSettings, merged.get("site"), "site", origins, main_file)

    cloud_data = dict(_mapping(merged, "cloud", origins, main_file))
    backend = cloud_data.pop("backend", "static")
    vo_property = cloud_data.pop("vo_property", "egi.VO")
    if not isinstance(backend, str):
        raise ConfigError(origins.get("cloud.backend", main_file), "cloud.backend",
                          f"expected a backend name, got {describe_value(backend)}")
    if not isinstance(vo_property, str) or not vo_property:
        raise ConfigError(origins.get("cloud.vo_property", main_file), "cloud.vo_property",
                          f"expected a project property name, got {describe_value(vo_property)}")
    try:
        settings_cls = backend_settings_class(backend)
    except LookupError as exc:
        raise ConfigError(origins.get("cloud.backend", main_file), "cloud.backend", str(exc)) from exc
    backend_data = cloud_data.pop(backend, None)
    for other in cloud_data:
        raise ConfigError(origins.get(f"cloud.{other}", main_file), f"cloud.{other}",
                          f"unknown key (expected backend, vo_property and {backend})")
    backend_settings: object = build_section(settings_cls, backend_data, f"cloud.{backend}", origins, main_file)
    cloud = CloudSettings(backend=backend, vo_property=vo_property)

    vos_data = _mapping(merged, "vos", origins, main_file, "a mapping of VO name to its settings")
    vos = {str(vo): build_section(VOSettings, data, f"vos.{vo}", origins, main_file) for vo, data in vos_data.items()}
    logging_settings = build_section(LoggingSettings, merged.get("logging"), "logging", origins, main_file)
    sections: Dict[str, DaemonSettings] = {
        name: build_section(schema, merged.get(name), name, origins, main_file) for name, schema in schemas.items()
    }
    config = Config(site=site, cloud=cloud, cloud_backend_settings=backend_settings, vos=vos,
                    logging=logging_settings, daemons=sections, files=files, origins=origins)
    for name, settings in sections.items():
        finish = getattr(settings, "finish", None)
        if callable(finish):
            try:
                finish(config)
            except ValueError as exc:
                raise ConfigError(origins.get(name, main_file), name, str(exc)) from exc
    for name in sections:
        if name in merged:  # a section the site configures: its daemon must be able to run on this backend
            check_capabilities(config, name)
    return config


def check_capabilities(config: Config, daemon: str) -> None:
    """Refuse (ConfigError naming the key and the capability) a section the backend cannot serve."""
    declaration = backend_declaration(config.cloud.backend)
    needed = config.daemons[daemon].needed_capabilities()
    for capability in declaration.lacks(needed):
        key = needed[capability]
        path = f"{daemon}.{key}" if key else daemon
        raise ConfigError(config.origins.get(path, config.origins.get(daemon, str(config.files[0]))), path,
                          f"the {config.cloud.backend} backend has no {capability.noun} "
                          f"(it does not declare the {capability.value!r} capability)")


__all__ = ["Config", "ConfigError", "Duration", "load_config", "SiteSettings", "VOSettings",
           "LoggingSettings", "CloudSettings", "check_capabilities"]
