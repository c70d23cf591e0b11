"""apel-ssm's sender.cfg (its own shipped file, and as sites edit it) -> the ssm section."""

from __future__ import annotations

from pathlib import Path

import pytest

from fedcloud_site.migrate import ssm
from fedcloud_site.migrate.errors import MigrationError
from fedcloud_site.migrate.report import Report


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "sender.cfg"
    path.write_text(text, encoding="utf-8")
    return path


def test_the_shipped_sender_cfg_maps_to_ams_and_adopts_its_queue(tmp_path: Path, ssm_sender_cfg: str):
    report = Report()
    result = ssm.migrate(_write(tmp_path, ssm_sender_cfg), report)
    section = result.sections["ssm"]
    assert section["transport"] == "ams"
    assert section["ams"] == {"project": "accounting"}  # empty host: our default, the production AMS
    assert section["queue_dir"] == "/var/spool/apel/outgoing"
    assert section["destination"] == "gLite-APEL"
    assert section["certificate"] == "/etc/grid-security/hostcert.pem"
    assert any("gLite-APEL" in w for w in report.warnings)  # grid destination: flagged, not silently kept
    assert any(d.what == "[broker] host (AMS)" for d in report.defaults)
    assert {"[logging] logfile", "[logging] level", "[logging] console"} <= set(report.unmapped_names())


def test_a_stomp_sender_with_a_broker_and_encryption(tmp_path: Path, ssm_sender_cfg: str):
    text = (ssm_sender_cfg.replace("protocol: AMS", "protocol: STOMP")
            .replace("host:\n", "host: broker.example.org\n").replace("port: 443", "port: 6162")
            .replace("#server_cert: /etc/grid-security/servercert.pem", "server_cert: /etc/grid-security/apel.pem")
            .replace("destination: gLite-APEL", "destination: /queue/global.accounting.cloud.central"))
    report = Report()
    section = ssm.migrate(_write(tmp_path, text), report).sections["ssm"]
    assert section["transport"] == "stomp"
    assert section["brokers"] == ["broker.example.org:6162"]
    assert section["use_ssl"] is True
    assert section["server_cert"] == "/etc/grid-security/apel.pem"
    assert "[messaging] ams_project" in report.unmapped_names()
    assert not report.warnings


def test_an_ams_token_is_carried_and_masked_in_the_report(tmp_path: Path, ssm_sender_cfg: str):
    text = ssm_sender_cfg.replace("#token:", "token: s3cr3t-t0ken")
    report = Report()
    section = ssm.migrate(_write(tmp_path, text), report).sections["ssm"]
    assert section["ams"]["token"] == "s3cr3t-t0ken"
    assert "s3cr3t-t0ken" not in report.render()


@pytest.mark.parametrize("change, section, option", [
    (("path_type: dirq", "path_type: directory"), "messaging", "path_type"),
    (("destination: gLite-APEL", "destination:"), "messaging", "destination"),
    (("protocol: AMS", "protocol: HTTP"), "sender", "protocol"),
    (("use_ssl: true", "use_ssl: maybe"), "broker", "use_ssl"),
    (("protocol: AMS", "protocol: STOMP"), "broker", "port"),  # STOMP with an empty host and port 443? host missing
])
def test_what_apel_ssm_itself_would_refuse_is_a_named_error(tmp_path: Path, ssm_sender_cfg: str, change, section,
                                                            option):
    text = ssm_sender_cfg.replace(*change)
    if option == "port":
        text = text.replace("host:\n", "host: broker.example.org\n").replace("port: 443\n", "")
    with pytest.raises(MigrationError) as caught:
        ssm.migrate(_write(tmp_path, text), Report())
    assert (caught.value.section, caught.value.option) == (section, option)


def test_the_receiver_configuration_is_recognised(tmp_path: Path, ssm_sender_cfg: str):
    text = ssm_sender_cfg + "\n[daemon]\npidfile: /var/run/apel/ssmreceive.pid\n"
    with pytest.raises(MigrationError, match="receiver"):
        ssm.migrate(_write(tmp_path, text), Report())


def test_an_ini_syntax_error_names_the_line(tmp_path: Path, ssm_sender_cfg: str):
    path = _write(tmp_path, "protocol: AMS\n" + ssm_sender_cfg)
    with pytest.raises(MigrationError, match="line 1: text before the first"):
        ssm.migrate(path, Report())
    path = _write(tmp_path, ssm_sender_cfg + "\n[sender]\nprotocol: STOMP\n")
    with pytest.raises(MigrationError, match="section given twice") as caught:
        ssm.migrate(path, Report())
    assert caught.value.section == "sender"
