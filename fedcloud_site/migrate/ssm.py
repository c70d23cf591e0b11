"""apel-ssm's sender (``/etc/apel/sender.cfg``, Python ConfigParser INI, apel/ssm 3.x/4.x) -> ``ssm``.

Queue: apel-ssm sends from the dirq QueueSimple at ``[messaging] path`` (``path_type: dirq``, the default),
the layout our accounting writes and our sender drains, so the queue is adopted as is: messages left
in it are sent by the ssm daemon, each once (a message leaves the queue only after the broker or AMS
confirmed it).  A ``path_type: directory`` store is not a queue we drain: that is an error.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict

from .errors import MigrationError
from .ini import read_ini
from .report import Report
from .result import ToolResult

TOOL = "apel-ssm"
#: what apel-ssm's documentation gives for cloud accounting (grid sites use gLite-APEL)
GRID_DESTINATIONS = {"gLite-APEL", "/queue/global.accounting.cpu.central"}
_KNOWN = {
    "sender": {"protocol"},
    "broker": {"host", "port", "use_ssl", "bdii", "network"},
    "certificates": {"certificate", "key", "capath", "server_cert", "verify_server_cert", "check_crls"},
    "messaging": {"destination", "path", "path_type", "ams_project", "token"},
    "logging": {"logfile", "level", "console"},
}


def migrate(path: Path, report: Report) -> ToolResult:
    """Read apel-ssm's sender configuration into a :class:`ToolResult` (the ``ssm`` section)."""
    ini = read_ini(Path(path), case_sensitive=False)
    ssm: Dict[str, Any] = {}

    def get(section: str, option: str) -> Any:
        return ini.get_str(section, option)

    def put(key: str, value: Any, old: str, note: str = "", secret: bool = False) -> None:
        parts = key.split(".")
        target = ssm
        for part in parts[:-1]:
            target = target.setdefault(part, {})
        target[parts[-1]] = value
        report.map(path, old, f"ssm.{key}", value, note, secret)

    protocol = (get("sender", "protocol") or "STOMP").strip().upper()
    if protocol not in ("STOMP", "AMS"):
        raise ini.error(f"expected STOMP or AMS, got {protocol!r}", "sender", "protocol")
    transport = protocol.lower()
    put("transport", transport, "[sender] protocol")
    if get("sender", "protocol") is None:
        report.default(TOOL, "[sender] protocol", "STOMP", "stomp", kept=True)

    host = (get("broker", "host") or "").strip()
    if transport == "ams":
        if host:
            put("ams.host", host, "[broker] host")
        else:
            report.default(TOOL, "[broker] host (AMS)", "none (apel-ssm refuses to start)", "msg.argo.grnet.gr",
                           kept=False, note="the production AMS; msg-devel.argo.grnet.gr takes test data only")
        port = ini.get_int("broker", "port")
        if port is not None and port != 443:
            put("ams.port", port, "[broker] port")
        elif port is not None:
            report.map(path, "[broker] port", "ssm.ams.port", port, "fedcloud-site's default: not written")
        project = get("messaging", "ams_project")
        if project:
            put("ams.project", project, "[messaging] ams_project")
        token = get("messaging", "token")
        if token:
            put("ams.token", token, "[messaging] token", secret=True)
        for section, option in (("broker", "bdii"), ("broker", "network")):
            if get(section, option) is not None:
                report.skip(path, f"[{section}] {option}", "broker discovery is for STOMP; protocol is AMS")
    else:
        port = ini.get_int("broker", "port")
        if host:
            if port is None:
                raise ini.error("a STOMP broker needs its port", "broker", "port")
            brokers = [f"[{host}]:{port}" if ":" in host else f"{host}:{port}"]
            put("brokers", brokers, "[broker] host, port")
        else:
            bdii = get("broker", "bdii")
            network = get("broker", "network")
            if bdii:
                put("bdii", bdii, "[broker] bdii")
            if network:
                put("network", network, "[broker] network")
            if not bdii:
                raise ini.error("STOMP needs a broker host (or bdii and network to discover brokers)", "broker",
                                "host")
        for option in ("ams_project", "token"):
            if get("messaging", option) is not None:
                report.skip(path, f"[messaging] {option}", "used with AMS only; protocol is STOMP")
    use_ssl = ini.get_bool("broker", "use_ssl")
    if use_ssl is None:
        use_ssl = True  # apel-ssm's ConfigParser default
    if transport == "stomp":
        put("use_ssl", use_ssl, "[broker] use_ssl")
    elif not use_ssl:
        report.skip(path, "[broker] use_ssl", "AMS is always reached over HTTPS")

    for option in ("certificate", "key", "capath"):
        value = get("certificates", option)
        if value:
            put(option, value, f"[certificates] {option}")
    server_cert = get("certificates", "server_cert")
    if server_cert:
        if server_cert == get("certificates", "certificate"):
            raise ini.error("the same file as [certificates] certificate: messages would be encrypted for "
                            "ourselves (apel-ssm refuses this too)", "certificates", "server_cert")
        put("server_cert", server_cert, "[certificates] server_cert", "messages are encrypted for it")
    if ini.get_bool("certificates", "verify_server_cert") is False:
        report.skip(path, "[certificates] verify_server_cert",
                    "fedcloud-site always verifies the encryption certificate against capath")
    if get("certificates", "check_crls") is not None:
        report.skip(path, "[certificates] check_crls", "a receiver option; the sender does not use it")

    destination = get("messaging", "destination")
    if not destination:
        raise ini.error("no destination queue (apel-ssm refuses this too)", "messaging", "destination")
    put("destination", destination, "[messaging] destination")
    if destination in GRID_DESTINATIONS:
        report.warn(f"{path}: [messaging] destination {destination!r} is where grid job records go; EGI receives "
                    "cloud records on eu-egi-cloud-accounting (AMS) or /queue/global.accounting.cloud.central "
                    "(STOMP): check the value before starting the ssm daemon")
    path_type = (get("messaging", "path_type") or "dirq").strip().lower()
    if path_type != "dirq":
        raise ini.error(f"path_type {path_type!r}: fedcloud-site sends from dirq queues only (move the files into "
                        "a dirq queue, or let apel-ssm empty the directory first)", "messaging", "path_type")
    queue = get("messaging", "path")
    if not queue:
        raise ini.error("the outgoing queue directory is required", "messaging", "path")
    put("queue_dir", queue, "[messaging] path",
        "the same dirq queue: messages apel-ssm had not sent yet are sent once by the ssm daemon")

    report.default(TOOL, "schedule", "ssmsend from cron or a timer", "ssm.interval 5m, and at once when messages "
                   "appear (ssm.watch)", kept=False)
    for option in ("logfile", "level", "console"):
        if get("logging", option) is not None:
            report.skip(path, f"[logging] {option}", "fedcloud-site logs every daemon through its `logging` section "
                                                    "(to the journal by default)")
    for section, options in ini.sections.items():
        for option in options:
            if option not in _KNOWN.get(section, set()):
                why = ("not an option of apel-ssm's sender" if section in _KNOWN
                       else f"section [{section}] is not one of apel-ssm's sender")
                report.skip(path, f"[{section}] {option}", why)
    if "daemon" in ini.sections:
        raise MigrationError(path, "this is apel-ssm's receiver configuration, not the sender's", "daemon")
    return ToolResult(TOOL, str(path), sections={"ssm": ssm})
