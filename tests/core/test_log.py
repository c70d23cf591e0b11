"""Structured logging: key=value and JSON lines, log file reopened after rotation."""

from __future__ import annotations

import json
import logging

from fedcloud_site.config import LoggingSettings
from fedcloud_site.log import configure_logging, get_logger


def teardown_function() -> None:
    configure_logging(LoggingSettings())


def test_json_lines_to_a_file(tmp_path):
    log_file = tmp_path / "logs" / "fedcloud.log"
    configure_logging(LoggingSettings(format="json", file=log_file))
    get_logger("accounting", job="extract").info("run summary", records=12)
    logging.getLogger().handlers[-1].flush()
    entry = json.loads(log_file.read_text().splitlines()[-1])
    assert entry["event"] == "run summary"
    assert entry["records"] == 12 and entry["job"] == "extract"
    assert entry["level"] == "info" and entry["logger"] == "accounting"
    assert entry["timestamp"].endswith("Z")


def test_keyvalue_format_and_level_filter(tmp_path):
    log_file = tmp_path / "kv.log"
    configure_logging(LoggingSettings(format="keyvalue", file=log_file, level="warning"))
    log = get_logger("ssm")
    log.info("hidden")
    log.warning("queue stuck", remaining=3)
    text = log_file.read_text()
    assert "hidden" not in text
    assert "level='warning' logger='ssm' event='queue stuck'" in text and "remaining=3" in text


def test_log_file_is_reopened_after_logrotate_moves_it(tmp_path):
    log_file = tmp_path / "rot.log"
    configure_logging(LoggingSettings(file=log_file))
    get_logger("x").info("before rotation")
    log_file.rename(tmp_path / "rot.log.1")
    get_logger("x").info("after rotation")
    assert "before rotation" in (tmp_path / "rot.log.1").read_text()
    assert "after rotation" in log_file.read_text()
    assert "after rotation" not in (tmp_path / "rot.log.1").read_text()


def test_reconfiguring_does_not_duplicate_handlers(tmp_path):
    log_file = tmp_path / "once.log"
    configure_logging(LoggingSettings(file=log_file))
    configure_logging(LoggingSettings(file=log_file))
    get_logger("x").info("single line")
    assert log_file.read_text().count("single line") == 1
