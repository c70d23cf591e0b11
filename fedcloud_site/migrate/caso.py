"""cASO (``/etc/caso/caso.conf``, oslo.config INI, as of cASO 5.2.2) -> ``site``, ``cloud``, ``vos``, ``accounting``.

State: cASO keeps one file per project, ``<spooldir>/lastrun.<project id>``, holding ``str(extract_to +
1 s)`` (``Manager.write_lastrun``): the instant its next run starts from.  Its records are measured at
``extract_to``.  Our state says "records up to ``extracted_to`` are in the queue" and our next window
is ``(extracted_to, now]``, so the carried-over state is ``extracted_to = lastrun - 1 s`` (whole
seconds, rounded down: a VM ending within the fraction of a second is then reported by both tools with
the same end, never by neither).  See :func:`lastrun_states`.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from ..accounting.settings import Settings as AccountingSettings
from ..accounting.state import StateError, StateStore
from ..timeutil import iso_utc
from .errors import MigrationError
from .ini import IniFile, expand_oslo, read_ini
from .report import Report
from .result import StateAction, ToolResult

TOOL = "caso"
DEFAULT_SPOOLDIR = "/var/spool/caso"
DEFAULT_OUTPUT_PATH = "/var/spool/apel/outgoing/openstack"
DEFAULT_MAPPING_FILE = "/etc/caso/voms.json"
DEFAULT_EXTRACTORS = ["nova", "cinder", "neutron"]
#: cASO's record types per extractor (nova also makes the accelerator records)
EXTRACTOR_RECORDS = {"nova": ["cloud", "accelerator"], "cinder": ["storage"], "neutron": ["ip"]}
#: flavor extra-spec keys fedcloud-site reads (cASO's defaults)
ACCELERATOR_DEFAULTS = {"type_key": "Accelerator:Type", "vendor_key": "Accelerator:Vendor",
                        "model_key": "Accelerator:Model", "number_key": "Accelerator:Number"}
BENCHMARK_DEFAULTS = {"name_key": "accounting:benchmark_type", "value_key": "accounting:benchmark_value"}
#: [keystone_auth] option -> cloud.openstack key (same meaning)
KEYSTONE_SAME = {"auth_url": "auth_url", "username": "username", "password": "password",
                 "user_domain_name": "user_domain_name", "project_domain_name": "project_domain_name",
                 "project_name": "project_name", "project_id": "project_id",
                 "application_credential_id": "application_credential_id",
                 "application_credential_secret": "application_credential_secret", "cafile": "cacert",
                 "timeout": "timeout"}
KEYSTONE_SECRETS = {"password", "application_credential_secret"}
KEYSTONE_AUTH_TYPES = {"password", "v3password", "applicationcredential", "v3applicationcredential"}
_LOGGING_WHY = ("oslo.log option: fedcloud-site logs every daemon through its own `logging` section "
                "(to the journal by default); set logging.level / logging.file there")
OSLO_LOG_OPTIONS = {
    "debug", "log_config_append", "log_date_format", "log_file", "log_dir", "watch_log_file", "use_syslog",
    "use_journal", "syslog_log_facility", "use_json", "use_stderr", "use_eventlog", "log_color",
    "log_rotate_interval", "log_rotate_interval_type", "max_logfile_count", "max_logfile_size_mb",
    "log_rotation_type", "logging_context_format_string", "logging_default_format_string",
    "logging_debug_format_suffix", "logging_exception_prefix", "logging_user_identity_format",
    "default_log_levels", "publish_errors", "instance_format", "instance_uuid_format", "rate_limit_interval",
    "rate_limit_burst", "rate_limit_except_level", "fatal_deprecations", "verbose"}
OSLO_CONFIG_OPTIONS = {"config_file", "config_dir", "config_source"}


def _options(ini: IniFile, section: str) -> Dict[str, str]:
    """oslo.config matches ``dry-run`` and ``dry_run`` alike: names with ``_``."""
    return {name.replace("-", "_"): value for name, value in ini.options(section).items()}


class _Reader:
    def __init__(self, path: Path, report: Report) -> None:
        self.path = Path(path)
        self.ini = read_ini(self.path, case_sensitive=True)
        self.report = report
        self.sections: Dict[str, Any] = {}
        self.shared: Dict[str, Any] = {}
        self.done: set = set()  # (section, option) handled

    # -- helpers --------------------------------------------------------------------------------------
    def value(self, section: str, option: str) -> Optional[str]:
        raw = _options(self.ini, section).get(option)
        if raw is None:
            return None
        self.done.add((section, option))
        return expand_oslo(self.ini, section, option, raw, {"spooldir": DEFAULT_SPOOLDIR})

    def as_list(self, section: str, option: str) -> Optional[List[str]]:
        value = self.value(section, option)
        if value is None:
            return None
        return [item.strip() for item in value.split(",") if item.strip()]

    def as_bool(self, section: str, option: str) -> Optional[bool]:
        value = self.value(section, option)
        if value is None:
            return None
        lowered = value.lower()
        if lowered in ("true", "yes", "on", "1"):
            return True
        if lowered in ("false", "no", "off", "0"):
            return False
        raise self.ini.error(f"expected true or false, got {value!r}", section, option)

    def put(self, target: Dict[str, Any], key: str, value: Any, old: str, new: str, note: str = "",
            secret: bool = False) -> None:
        target[key] = value
        self.report.map(self.path, old, new, value, note, secret)

    def skip(self, section: str, option: str, why: str) -> None:
        self.done.add((section, option))
        self.report.skip(self.path, f"[{section}] {option}", why)

    # -- sections ---------------------------------------------------------------------------------------
    def read(self) -> ToolResult:
        site: Dict[str, Any] = {}
        accounting: Dict[str, Any] = {}
        self.read_default(site, accounting)
        openstack = self.read_keystone()
        self.read_flavor_keys()
        self.read_messengers(accounting)
        self.read_unused_sections()
        cloud: Dict[str, Any] = {"backend": "openstack", "openstack": openstack}
        vo_property = self.value("DEFAULT", "vo_property")
        if vo_property is None:
            vo_property = "VO"
            self.report.default(TOOL, "[DEFAULT] vo_property -> cloud.vo_property", "VO", "egi.VO", kept=True,
                                note="cASO's default written explicitly so projects keep their VO")
            cloud["vo_property"] = vo_property
        else:
            self.put(cloud, "vo_property", vo_property, "[DEFAULT] vo_property", "cloud.vo_property")
        self.report_unknown()
        if site:
            self.shared["site"] = site
        self.shared["cloud"] = cloud
        self.sections["accounting"] = accounting
        return ToolResult(TOOL, str(self.path), sections=self.sections, shared=self.shared)

    def read_default(self, site: Dict[str, Any], accounting: Dict[str, Any]) -> None:
        name = self.value("DEFAULT", "site_name")
        if name:
            self.put(site, "name", name, "[DEFAULT] site_name", "site.name")
        else:
            raise self.ini.error("required by cASO and by fedcloud-site (the GOCDB site name)", "DEFAULT",
                                 "site_name")
        service = self.value("DEFAULT", "service_name")
        if service is not None and service != name:
            self.put(site, "service_name", service, "[DEFAULT] service_name", "site.service_name")
        elif service is not None:
            self.report.map(self.path, "[DEFAULT] service_name", "site.service_name", service,
                            "same as site.name, fedcloud-site's default: not written")
        region = self.value("DEFAULT", "region_name")
        self._region = region
        projects = self.as_list("DEFAULT", "projects") or []
        self._projects = projects
        tag = self.value("DEFAULT", "caso_tag")
        why = (f"cASO also extracted the projects tagged {tag or 'caso'!r} in Keystone; fedcloud-site extracts "
               "accounting.projects or, when that is empty, every project mapped to a VO (vos / cloud.vo_property); "
               "the projects of cASO's lastrun files are added to accounting.projects")
        if tag is not None:
            self.skip("DEFAULT", "caso_tag", why)
        else:
            self.report.default(TOOL, "[DEFAULT] caso_tag", "caso", None, kept=False, note=why)
        mapping = self.value("DEFAULT", "mapping_file")
        mapping_path = Path(mapping) if mapping else Path(DEFAULT_MAPPING_FILE)
        if mapping or mapping_path.exists():
            vos = read_voms_json(mapping_path, self.report, explicit=mapping is not None)
            if vos:
                self.shared["vos"] = vos
        extractors = self.as_list("DEFAULT", "extractor")
        if extractors is None:
            extractors = list(DEFAULT_EXTRACTORS)
        unknown = [e for e in extractors if e not in EXTRACTOR_RECORDS]
        if unknown:
            self.report.skip(self.path, "[DEFAULT] extractor",
                             f"extractor(s) {', '.join(unknown)} have no fedcloud-site equivalent (prometheus "
                             "energy records are not produced)")
        self._record_types = [kind for e in extractors if e in EXTRACTOR_RECORDS for kind in EXTRACTOR_RECORDS[e]]
        self._spooldir = Path(self.value("DEFAULT", "spooldir") or DEFAULT_SPOOLDIR)
        self.report.default(TOOL, "schedule", "caso-extract from cron or a timer (commonly hourly)",
                            "accounting.interval 6h (the daemon schedules itself)", kept=False,
                            note="usage is cumulative: a longer interval delays records, loses none")
        self.report.map(self.path, "[DEFAULT] spooldir", "accounting state (projects/<id>.json)",
                        str(self._spooldir), "its lastrun.<project> files are carried over")
        for option, why in (
                ("lock_path", "fedcloud-site locks its own state directory"),
                ("extract_to", "a run option of caso-extract; fedcloud-site extracts up to now"),
                ("extract_from", "a run option of caso-extract; fedcloud-site starts from its state (carried over "
                                 "from cASO's lastrun files) or accounting.first_run_start"),
        ):
            if self.value("DEFAULT", option) is not None:
                self.skip("DEFAULT", option, why)
        if self.as_bool("DEFAULT", "dry_run"):
            self.report.warn(f"{self.path}: [DEFAULT] dry_run = true: cASO was sending nothing; fedcloud-site will "
                             "(use `fedcloud-site accounting once --dry-run` to look first)")
            self.skip("DEFAULT", "dry_run", "use --dry-run on the command line")
        for option in sorted(_options(self.ini, "DEFAULT")):
            if option in OSLO_LOG_OPTIONS:
                self.skip("DEFAULT", option, _LOGGING_WHY)
            elif option in OSLO_CONFIG_OPTIONS:
                self.skip("DEFAULT", option, "oslo.config's own option (more configuration files): migrate "
                                             "those files with further --from caso=FILE")
        if projects:
            accounting["projects"] = projects  # lastrun projects are added by the command (see lastrun_projects)
            self.report.map(self.path, "[DEFAULT] projects", "accounting.projects", projects)

    def read_keystone(self) -> Dict[str, Any]:
        section = "keystone_auth"
        openstack: Dict[str, Any] = {}
        auth_type = self.value(section, "auth_type")
        if auth_type is not None and auth_type.lower() not in KEYSTONE_AUTH_TYPES:
            raise self.ini.error(f"auth type {auth_type!r}: fedcloud-site authenticates with a password or an "
                                 "application credential (Keystone v3)", section, "auth_type")
        if auth_type is not None:
            self.report.map(self.path, f"[{section}] auth_type", "cloud.openstack (credentials given)", auth_type)
        for option, key in KEYSTONE_SAME.items():
            value = self.value(section, option)
            if value is None or value == "":
                continue
            converted: Any = value
            if key == "timeout":
                try:
                    converted = int(value)
                except ValueError as exc:
                    raise self.ini.error(f"expected an integer, got {value!r}", section, option) from exc
            self.put(openstack, key, converted, f"[{section}] {option}", f"cloud.openstack.{key}",
                     secret=option in KEYSTONE_SECRETS)
        insecure = self.as_bool(section, "insecure")
        if insecure is not None:
            self.put(openstack, "verify", not insecure, f"[{section}] insecure", "cloud.openstack.verify")
        scope = self.value(section, "system_scope")
        if scope:
            if scope != "all":
                raise self.ini.error(f"system scope {scope!r}: only 'all' exists in Keystone", section, "system_scope")
            self.put(openstack, "system_scope", True, f"[{section}] system_scope", "cloud.openstack.system_scope")
        for option in ("user_domain_id", "project_domain_id"):
            value = self.value(section, option)
            if value is None:
                continue
            name_key = option.replace("_id", "_name")
            if value.lower() == "default" and name_key not in openstack:
                self.put(openstack, name_key, "Default", f"[{section}] {option}", f"cloud.openstack.{name_key}",
                         "the domain with id 'default' is named 'Default'")
            else:
                self.skip(section, option, f"fedcloud-site names domains: set cloud.openstack.{name_key} to the "
                                           f"name of domain {value!r}")
        if self._region:
            self.put(openstack, "region", self._region, "[DEFAULT] region_name", "cloud.openstack.region")
        app = "application_credential_id" in openstack
        if not app and not any(k in openstack for k in ("project_name", "project_id", "system_scope")):
            openstack["system_scope"] = True
            self.report.default(TOOL, "[keystone_auth] scope", "none: cASO scopes itself (system scope 'all' for "
                                "Keystone, then each project)", "one scope", kept=False,
                                note="cloud.openstack.system_scope: true written; the user needs a system-scoped "
                                     "reader role (or set project_name of a project where it is admin)")
        for option in sorted(_options(self.ini, section)):
            if (section, option) not in self.done:
                self.skip(section, option, "keystoneauth option fedcloud-site does not use (it reads the "
                                           "credentials of cloud.openstack)")
        return openstack

    def read_flavor_keys(self) -> None:
        for section, defaults in (("accelerator", ACCELERATOR_DEFAULTS), ("benchmark", BENCHMARK_DEFAULTS)):
            for option, default in defaults.items():
                value = self.value(section, option)
                if value is None:
                    continue
                if value == default:
                    self.report.map(self.path, f"[{section}] {option}", "(built in)", value,
                                    "fedcloud-site reads the same flavor extra spec")
                else:
                    self.skip(section, option, f"fedcloud-site reads the flavor extra spec {default!r}: set it "
                                               f"on the flavors that have {value!r}")

    def read_messengers(self, accounting: Dict[str, Any]) -> None:
        messengers = self.as_list("DEFAULT", "messengers")
        if messengers is None:
            messengers = ["noop"]
        ssm = [m for m in messengers if m in ("ssm", "ssmv4")]
        others = [m for m in messengers if m not in ("ssm", "ssmv4")]
        if "noop" in others and not ssm:
            self.report.warn(f"{self.path}: [DEFAULT] messengers = noop: cASO was writing no records; fedcloud-site "
                             "writes them to accounting.queue_dir")
        for name in others:
            if name != "noop":
                self.report.skip(self.path, f"[DEFAULT] messengers: {name}",
                                 "fedcloud-site writes APEL messages for SSM only")
        self.done.add(("DEFAULT", "messengers"))
        if ssm:
            self.report.map(self.path, "[DEFAULT] messengers", "accounting (APEL messages into queue_dir)",
                            ",".join(ssm))
        output = self.value("ssm", "output_path")
        queue_dir = output or DEFAULT_OUTPUT_PATH
        self.put(accounting, "queue_dir", queue_dir, "[ssm] output_path", "accounting.queue_dir",
                 "the same dirq queue: messages cASO left there are sent by the ssm daemon")
        if output is None:
            self.report.default(TOOL, "[ssm] output_path -> accounting.queue_dir", DEFAULT_OUTPUT_PATH,
                                "/var/spool/apel/outgoing/fedcloud-site", kept=True)
        max_size = self.value("ssm", "max_size")
        if max_size is not None:
            try:
                size = int(max_size)
            except ValueError as exc:
                raise self.ini.error(f"expected an integer, got {max_size!r}", "ssm", "max_size") from exc
            self.put(accounting, "max_records_per_message", size, "[ssm] max_size",
                     "accounting.max_records_per_message")
        types = list(self._record_types)
        for messenger in ssm:
            wanted = self.as_list(f"messenger_{messenger}", "record_types")
            if wanted:
                types = [t for t in types if t in wanted]
                self.report.map(self.path, f"[messenger_{messenger}] record_types", "accounting.record_types",
                                wanted)
        for kind in ("ip", "accelerator"):
            if kind in types:
                types.remove(kind)
                self.report.skip(self.path, f"record type {kind} ([DEFAULT] extractor, messenger record_types)",
                                 f"cASO put {kind} records (JSON) into the cloud records' queue, where the released "
                                 f"APEL server (2.5.0) rejects them; fedcloud-site sends them only to a destination "
                                 f"you name: add {kind!r} to accounting.record_types and set "
                                 f"accounting.{kind}.destination when your receiver loads them")
        if "storage" in types:
            accounting["storage_queue_dir"] = f"{queue_dir.rstrip('/')}-storage"
            self.report.map(self.path, "[DEFAULT] extractor: cinder", "accounting.storage_queue_dir",
                            accounting["storage_queue_dir"],
                            "fedcloud-site sends storage (StAR) records from a queue of their own to EGI's "
                            "storage destination; cASO put them into output_path")
        if not types:
            raise self.ini.error("no cloud or storage records left to extract (nova and cinder are not both "
                                 "disabled by fedcloud-site's rules: check extractor and messenger record_types)",
                                 "DEFAULT", "extractor")
        accounting["record_types"] = sorted(set(types), key=["cloud", "storage"].index)
        self.report.map(self.path, "[DEFAULT] extractor", "accounting.record_types", accounting["record_types"])
        if self.value("DEFAULT", "extractor") is None:
            self.report.default(TOOL, "[DEFAULT] extractor -> accounting.record_types", DEFAULT_EXTRACTORS,
                                ["cloud"], kept=True,
                                note="cASO's default storage records kept (written explicitly)")

    def read_unused_sections(self) -> None:
        for section in ("logstash", "prometheus", "messenger_logstash", "messenger_noop"):
            for option in _options(self.ini, section):
                self.skip(section, option, "no fedcloud-site equivalent (it writes APEL messages for SSM only)")

    def report_unknown(self) -> None:
        handled_sections = {"DEFAULT", "keystone_auth", "accelerator", "benchmark", "ssm", "messenger_ssm",
                            "messenger_ssmv4", "logstash", "prometheus", "messenger_logstash", "messenger_noop"}
        for section in self.ini.sections:
            for option in _options(self.ini, section):
                if (section, option) in self.done:
                    continue
                if section in handled_sections:
                    why = "not an option of cASO 5.2.2 (misspelt?)"
                else:
                    why = f"section [{section}] is not one of cASO 5.2.2's"
                self.skip(section, option, why)


def read_voms_json(path: Path, report: Report, explicit: bool) -> Dict[str, Dict[str, List[str]]]:
    """cASO's deprecated project->VO map (``{"<vo>": {"projects": [...]}}``, older ``tenant``/``tenants``)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        if explicit:
            report.warn(f"{path}: mapping_file does not exist (cASO ignored it too)")
        return {}
    except OSError as exc:
        raise MigrationError(path, f"cannot read: {exc.strerror}") from exc
    except UnicodeDecodeError as cause:
        raise MigrationError(path, "not UTF-8 text") from cause
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise MigrationError(path, f"not JSON: {exc}") from exc
    except RecursionError as cause:
        raise MigrationError(path, "not JSON cASO can use: nested too deeply") from cause
    if not isinstance(data, dict):
        raise MigrationError(path, "expected an object of VO name -> {projects: [...]}")
    vos: Dict[str, Dict[str, List[str]]] = {}
    for vo, entry in data.items():
        if not isinstance(entry, dict):
            raise MigrationError(path, "expected an object with projects", vo)
        projects: List[str] = []
        for key in ("projects", "tenants"):
            value = entry.get(key, [])
            if not isinstance(value, list) or not all(isinstance(p, str) for p in value):
                raise MigrationError(path, "expected a list of project ids", vo, key)
            projects += value
        tenant = entry.get("tenant")
        if tenant is not None:
            if not isinstance(tenant, str):
                raise MigrationError(path, "expected a project id", vo, "tenant")
            projects.append(tenant)
        for key in entry:
            if key not in ("projects", "tenants", "tenant"):
                report.skip(path, f"{vo}.{key}", "not used by cASO 5.2.2's mapping")
        if not projects:
            report.warn(f"{path}: VO {vo!r} maps no project")
            continue
        unique = list(dict.fromkeys(projects))
        vos[vo] = {"projects": unique}
        report.map(path, f"{vo}", f"vos.{vo}.projects", unique)
    return vos


def parse_lastrun(path: Path) -> datetime:
    """The instant cASO's next run of a project starts from (aware UTC); MigrationError when unreadable."""
    if path.exists() and not path.is_file():
        raise MigrationError(path, "not a regular file (cASO writes its lastrun files as plain files)")
    try:
        text = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise MigrationError(path, f"cannot read: {exc.strerror}") from exc
    except UnicodeDecodeError as cause:
        raise MigrationError(path, "not a date written by cASO (not text)") from cause
    candidate = text[:-1] + "+00:00" if text.endswith(("Z", "z")) else text
    try:
        moment = datetime.fromisoformat(candidate)
    except ValueError as cause:
        raise MigrationError(path, f"not a date written by cASO: {text[:80]!r}") from cause
    if moment.tzinfo is None:  # cASO takes dates without a time zone as UTC
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc)


def lastrun_files(spooldir: Path) -> List[Tuple[str, Path]]:
    """(project id, file) of every ``lastrun.<project id>`` in cASO's spool directory."""
    try:
        if not spooldir.is_dir():
            return []
        entries = sorted(spooldir.iterdir())
    except OSError as exc:
        raise MigrationError(spooldir, f"cannot read cASO's spool directory: {exc.strerror or exc}") from exc
    found = []
    for path in entries:
        if path.name.startswith("lastrun.") and len(path.name) > len("lastrun.") and not path.is_dir():
            found.append((path.name[len("lastrun."):], path))
    return found


def extracted_to(lastrun: datetime) -> datetime:
    """Our ``extracted_to`` from cASO's lastrun (``extract_to + 1 s``): ``extract_to``, whole seconds down."""
    return (lastrun - timedelta(seconds=1)).replace(microsecond=0)


def lastrun_states(spooldir: Path, report: Report) -> List[Tuple[str, datetime, Path]]:
    """(project, our extracted_to, file) for every lastrun file; each unreadable file is an error."""
    states = []
    for project, path in lastrun_files(spooldir):
        lastrun = parse_lastrun(path)
        if lastrun > datetime.now(timezone.utc) + timedelta(minutes=5):
            raise MigrationError(path, f"{lastrun.isoformat()} is in the future (cASO refuses it too)")
        states.append((project, extracted_to(lastrun), path))
    return states


def carry_state(spooldir: Path, report: Report) -> Tuple[StateAction, List[str]]:
    """The state action: cASO's lastrun files -> our accounting state files (after the config is valid)."""
    states = lastrun_states(spooldir, report)

    def action(config: Any, dry_run: bool, force: bool) -> List[str]:
        store = StateStore(config.section(AccountingSettings).state_path("accounting"))
        lines = []
        for project, moment, path in states:
            target = store.path(project)
            try:
                current = store.load(project)
            except StateError as exc:
                if not force:
                    raise MigrationError(target, f"{exc}; give --force to replace it") from exc
                current = None
            if current is not None and not force:
                lines.append(f"{path} -> {target}: kept fedcloud-site's state (extracted_to "
                             f"{iso_utc(current.extracted_to)}; cASO's would be {iso_utc(moment)}; --force replaces)")
                continue
            vo = config.vo_of_project(project)
            if not dry_run:
                store.save(project, moment, vo=vo, summary={"migrated_from": str(path)})
            lines.append(f"{path} -> {target}: extracted_to {iso_utc(moment)} (cASO's next run would have started "
                         f"1 s later){' [dry run: not written]' if dry_run else ''}")
        if not states:
            lines.append(f"{spooldir}: no lastrun files (nothing extracted by cASO yet: fedcloud-site starts from "
                         "accounting.first_run_start)")
        return lines

    return action, [project for project, _, _ in states]


def migrate(path: Path, report: Report) -> ToolResult:
    """Read cASO's configuration (and the names of its state files) into a :class:`ToolResult`."""
    reader = _Reader(path, report)
    result = reader.read()
    action, projects = carry_state(reader._spooldir, report)
    result.actions.append(action)
    accounting = result.sections["accounting"]
    if accounting.get("projects"):
        extra = [p for p in projects if p not in accounting["projects"]]
        if extra:
            accounting["projects"] = accounting["projects"] + extra
            report.map(reader._spooldir, "lastrun.<project> files", "accounting.projects", extra,
                       "projects cASO extracted (tagged in Keystone) besides [DEFAULT] projects")
    return result
