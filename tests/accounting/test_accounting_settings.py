"""The ``accounting`` configuration section: defaults and errors naming the key."""

from __future__ import annotations

import pytest

from fedcloud_site.accounting.daemon import jobs
from fedcloud_site.config import load_config
from fedcloud_site.errors import ConfigError
from fedcloud_site.timeutil import parse_time

SITE = "site: {name: S}\n"


def test_defaults_extract_cloud_ip_and_accelerator_every_six_hours(write_config):
    config = load_config(write_config(SITE))
    settings = config.accounting
    assert settings.record_types == ["cloud", "ip", "accelerator"]
    assert settings.max_records_per_message == 100
    assert settings.max_message_bytes < 1_000_000
    (job,) = jobs(config)
    assert job.name == "extract" and job.interval == 6 * 3600


def test_a_yaml_date_is_accepted_as_first_run_start(write_config):
    config = load_config(write_config(SITE + "accounting: {first_run_start: 2026-03-01}\n"))
    assert config.accounting.first_start() == parse_time("2026-03-01T00:00:00Z")


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
])
def test_invalid_settings_are_errors_naming_file_and_key(write_config, section, problem):
    path = write_config(SITE + f"accounting: {section}\n")
    with pytest.raises(ConfigError, match=problem) as info:
        load_config(path)
    assert str(path) in str(info.value) and "accounting" in str(info.value)
