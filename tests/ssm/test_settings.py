"""The ``ssm`` configuration section: defaults and errors naming the file and key."""

from __future__ import annotations

import pytest

from fedcloud_site.config import load_config
from fedcloud_site.errors import ConfigError
from fedcloud_site.ssm.settings import Settings as SSMSettings

BASE = """site:
  name: TEST
accounting:
  queue_dir: /var/spool/apel/outgoing/test
"""


def test_defaults_follow_the_accounting_queue_and_the_transport(write_config):
    config = load_config(write_config(BASE))
    assert str(config.section(SSMSettings).queue_dir) == "/var/spool/apel/outgoing/test"
    assert config.section(SSMSettings).destination == "/queue/global.accounting.cloud.central"
    assert str(config.section(SSMSettings).reject_path) == "/var/spool/apel/outgoing/test.reject"
    ams = load_config(write_config(BASE + "ssm:\n  transport: ams\n"))
    assert ams.section(SSMSettings).destination == "eu-egi-cloud-accounting"
    assert ams.section(SSMSettings).ams.project == "accounting"


def test_brokers_are_parsed_from_host_port_and_urls(write_config):
    config = load_config(write_config(BASE + 'ssm:\n  brokers: ["mq.example.org:6162", "stomp+ssl://[::1]:6163"]\n'))
    assert config.section(SSMSettings).broker_addresses() == [("mq.example.org", 6162), ("::1", 6163)]


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
    assert config.section(SSMSettings).ams.token == "very-secret"


STORAGE = BASE + "  storage_queue_dir: /var/spool/apel/outgoing-storage\n"


def _queues(config):
    return [(q.label, str(q.queue_dir), q.destination) for q in config.section(SSMSettings).queues]


def test_the_storage_queue_of_the_accounting_section_is_drained_to_the_storage_destination(write_config):
    stomp = load_config(write_config(STORAGE))
    assert _queues(stomp) == [
        ("cloud", "/var/spool/apel/outgoing/test", "/queue/global.accounting.cloud.central"),
        ("storage", "/var/spool/apel/outgoing-storage", "/queue/global.accounting.storage.central")]
    ams = load_config(write_config(STORAGE + "ssm:\n  transport: ams\n"))
    queues = ams.section(SSMSettings).queues
    assert [q.destination for q in queues] == ["eu-egi-cloud-accounting", "eu-egi-storage-accounting"]
    own = load_config(write_config(STORAGE + "ssm:\n  destination: /queue/c\n  storage_destination: /queue/s\n"))
    assert [q.destination for q in own.section(SSMSettings).queues] == ["/queue/c", "/queue/s"]
    assert str(own.section(SSMSettings).queues[1].reject_path) == "/var/spool/apel/outgoing-storage.reject"


def test_without_a_storage_queue_only_the_cloud_queue_is_drained(write_config):
    config = load_config(write_config(BASE + "ssm:\n  queue_dir: /q/caso\n  reject_dir: /q/bad\n"))
    assert _queues(config) == [("cloud", "/q/caso", "/queue/global.accounting.cloud.central")]
    ssm = config.section(SSMSettings)
    assert str(ssm.queue_dir) == "/q/caso" and str(ssm.reject_path) == "/q/bad"


def test_an_explicit_queue_list_replaces_the_derived_one(write_config):
    config = load_config(write_config(STORAGE + """ssm:
  queues:
    - {queue_dir: /q/caso, destination: /queue/a}
    - {name: mine, queue_dir: /q/other, destination: /queue/b, reject_dir: /q/rejects}
"""))
    assert _queues(config) == [("caso", "/q/caso", "/queue/a"), ("mine", "/q/other", "/queue/b")]
    assert str(config.section(SSMSettings).queues[1].reject_path) == "/q/rejects"
    # the single-queue keys describe the first queue (read by the probes)
    ssm = config.section(SSMSettings)
    assert str(ssm.queue_dir) == "/q/caso" and ssm.destination == "/queue/a"


@pytest.mark.parametrize("section, message", [
    ("  destination: /queue/x\n  queues: [{queue_dir: /q/a, destination: /queue/a}]\n",
     "give either queues or destination"),
    ("  queues:\n    - {queue_dir: /q/a, destination: /queue/a}\n    - {queue_dir: /q/a, destination: /queue/b, "
     "name: b}\n", "queues[1]: queue_dir /q/a already drained by queues[0]"),
    ("  queues:\n    - {queue_dir: /q/a, destination: /queue/a}\n    - {queue_dir: /r/a, destination: /queue/b}\n",
     "queues[1]: name 'a' already used by queues[0]"),
    ("  queues: [{queue_dir: /q/a}]\n", "ssm.queues[0].destination: required key missing"),
    ("  transport: ams\n  queues: [{queue_dir: /q/a, destination: /queue/a}]\n",
     "queues[0].destination: '/queue/a' is not an AMS topic name"),
    ("  transport: ams\n  storage_destination: /queue/s\n", "storage_destination: '/queue/s' is not an AMS topic"),
    ("  queues: [{queue_dir: /q/a, destination: /queue/a, name: 'a b'}]\n", "name: 'a b': use letters"),
])
def test_bad_queue_lists_are_refused_with_the_file_and_key(write_config, section, message):
    path = write_config(BASE + "ssm:\n" + section)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(path) in str(info.value)
    assert message in str(info.value)
