"""The ``accounting`` configuration section: defaults and errors naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from fedcloud_site.accounting.daemon import jobs
from fedcloud_site.accounting.settings import Settings as AccountingSettings
from fedcloud_site.config import load_config
from fedcloud_site.errors import ConfigError
from fedcloud_site.timeutil import parse_time

SITE = "site: {name: S}\n"


def test_defaults_extract_only_what_the_released_apel_server_loads_every_six_hours(write_config):
    config = load_config(write_config(SITE))
    settings = config.section(AccountingSettings)
    assert settings.record_types == ["cloud"]  # APEL 2.5.0 rejects the IP and accelerator JSON messages
    assert settings.queue_dirs() == {"cloud": settings.queue_dir}
    assert settings.max_records_per_message == 100
    assert settings.max_message_bytes < 1_000_000
    (job,) = jobs(config)
    assert job.name == "extract" and job.interval == 6 * 3600


def test_a_yaml_date_is_accepted_as_first_run_start(write_config):
    config = load_config(write_config(SITE + "accounting: {first_run_start: 2026-03-01}\n"))
    assert config.section(AccountingSettings).first_start() == parse_time("2026-03-01T00:00:00Z")


@pytest.mark.parametrize("section, problem", [
    ("{record_types: [cloud, storage]}", "storage_queue_dir"),
    ("{record_types: [cloud, gpu]}", "record_types"),
    ("{record_types: []}", "at least one"),
    ("{max_records_per_message: 0}", "at least 1"),
    ("{max_records_per_message: 5000}", "at most 1000"),
    ("{max_message_bytes: 2000000}", "700 KiB"),
    ("{first_run_start: last tuesday}", "first_run_start"),
    ("{queue_dir: /q, storage_queue_dir: /q, record_types: [storage]}", "must differ"),
    ("{vm_listing: once}", "vm_listing"),
    ("{record_types: [cloud, ip]}", "ip.destination: required when record_types includes ip"),
    ("{record_types: [cloud, accelerator], ip: {destination: x}}", "accelerator.destination: required"),
    ("{record_types: [cloud, ip], ip: {destination: ' '}}", "ip.destination: must not be empty"),
    ("{queue_dir: /q, record_types: [ip], ip: {queue_dir: /q, destination: x}}", "ip.queue_dir: /q is already"),
    ("{record_types: [ip, accelerator], ip: {queue_dir: /j, destination: x}, "
     "accelerator: {queue_dir: /j, destination: y}}", "queue of ip records"),
])
def test_invalid_settings_are_errors_naming_file_and_key(write_config, section, problem):
    path = write_config(SITE + f"accounting: {section}\n")
    with pytest.raises(ConfigError, match=problem) as info:
        load_config(path)
    assert str(path) in str(info.value) and "accounting" in str(info.value)


def test_each_json_record_type_has_its_own_queue_and_the_ssm_drains_it_to_its_own_destination(write_config):
    config = load_config(write_config(SITE + """accounting:
  queue_dir: /spool/cloud
  storage_queue_dir: /spool/storage
  record_types: [cloud, storage, ip, accelerator]
  ip: {destination: ip-topic}
  accelerator: {queue_dir: /spool/gpu, destination: gpu-topic}
ssm: {transport: ams}
"""))
    assert config.section(AccountingSettings).queue_dirs() == {
        "cloud": Path("/spool/cloud"), "storage": Path("/spool/storage"), "ip": Path("/spool/cloud-ip"),
        "accelerator": Path("/spool/gpu")}
    drained = {(q.name, q.queue_dir, q.destination) for q in config.daemons["ssm"].queues}
    assert drained == {("cloud", Path("/spool/cloud"), "eu-egi-cloud-accounting"),
                       ("storage", Path("/spool/storage"), "eu-egi-storage-accounting"),
                       ("ip", Path("/spool/cloud-ip"), "ip-topic"), ("accelerator", Path("/spool/gpu"), "gpu-topic")}


def test_a_destination_of_a_disabled_record_type_is_not_drained(write_config):
    config = load_config(write_config(SITE + "accounting: {ip: {destination: ip-topic}}\nssm: {transport: ams}\n"))
    assert [q.name for q in config.daemons["ssm"].queues] == ["cloud"]


def test_an_ams_destination_of_a_json_record_type_must_be_a_topic_name(write_config):
    path = write_config(SITE + "accounting: {record_types: [cloud, ip], ip: {destination: /queue/ip}}\n"
                               "ssm: {transport: ams}\n")
    with pytest.raises(ConfigError, match="is not an AMS topic name"):
        load_config(path)
