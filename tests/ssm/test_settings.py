"""The ``ssm`` configuration section: defaults and errors naming the file and key."""

from __future__ import annotations

import pytest

from fedcloud_site.config import load_config
from fedcloud_site.schema import ConfigError

BASE = """site:
  name: TEST
accounting:
  queue_dir: /var/spool/apel/outgoing/test
"""


def test_defaults_follow_the_accounting_queue_and_the_transport(write_config):
    config = load_config(write_config(BASE))
    assert str(config.ssm.queue_dir) == "/var/spool/apel/outgoing/test"
    assert config.ssm.destination == "/queue/global.accounting.cloud.central"
    assert str(config.ssm.reject_path) == "/var/spool/apel/outgoing/test.reject"
    ams = load_config(write_config(BASE + "ssm:\n  transport: ams\n"))
    assert ams.ssm.destination == "eu-egi-cloud-accounting"
    assert ams.ssm.ams.project == "accounting"


def test_brokers_are_parsed_from_host_port_and_urls(write_config):
    config = load_config(write_config(BASE + 'ssm:\n  brokers: ["mq.example.org:6162", "stomp+ssl://[::1]:6163"]\n'))
    assert config.ssm.broker_addresses() == [("mq.example.org", 6162), ("::1", 6163)]


@pytest.mark.parametrize("section, message", [
    ('  brokers: ["mq.example.org"]\n', "ssm: brokers[0]: broker 'mq.example.org': expected host:port"),
    ("  transport: ams\n  destination: /queue/x\n", "is not an AMS topic name"),
    ("  window: 0\n", "window: must be at least 1"),
    ("  transport: smtp\n", "ssm.transport: expected one of 'stomp', 'ams'"),
    ("  ams:\n    token: x\n    tokn: y\n", "ssm.ams.tokn: unknown key"),
])
def test_bad_settings_are_refused_with_the_file_and_key(write_config, section, message):
    path = write_config(BASE + "ssm:\n" + section)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(path) in str(info.value)
    assert message in str(info.value)


def test_the_ams_token_is_never_shown(write_config):
    config = load_config(write_config(BASE + "ssm:\n  transport: ams\n  ams:\n    token: very-secret\n"))
    assert "very-secret" not in repr(config.as_plain())
    assert config.ssm.ams.token == "very-secret"
