"""Configuration: merging, validation errors naming file and key, secrets, path resolution."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from fedcloud_site.accounting.settings import Settings as AccountingSettings
from fedcloud_site.cloudinfo.settings import Settings as CloudinfoSettings
from fedcloud_site.config import load_config
from fedcloud_site.errors import ConfigError
from fedcloud_site.schema import Secret, parse_duration
from fedcloud_site.ssm.settings import Settings as SSMSettings

MINIMAL = "site: {name: TEST-SITE}\n"
DEMO_CONFIG = Path(__file__).resolve().parents[2] / "etc" / "fedcloud-site" / "demo.yaml"


def error_of(path: Path) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load_config(path)
    return info.value


def test_minimal_config_uses_the_static_backend_and_defaults(write_config):
    config = load_config(write_config(MINIMAL))
    assert config.site.name == "TEST-SITE"
    assert config.site.compute_service == "TEST-SITE"
    assert config.cloud.backend == "static"
    assert config.section(AccountingSettings).interval == 6 * 3600
    assert config.section(SSMSettings).queue_dir == config.section(AccountingSettings).queue_dir


def test_unknown_key_names_file_and_key_path(write_config):
    path = write_config(MINIMAL + "accounting:\n  queue_dri: /tmp/x\n")
    err = error_of(path)
    assert err.file == str(path)
    assert err.key == "accounting.queue_dri"
    assert str(err).startswith(f"{path}: accounting.queue_dri: unknown key (known keys here: ")
    assert "queue_dir" in str(err)


def test_unknown_section_is_an_error(write_config):
    path = write_config(MINIMAL + "acounting: {}\n")
    err = error_of(path)
    assert err.key == "acounting"
    assert "unknown section" in err.problem


def test_wrong_type_says_what_was_expected(write_config):
    path = write_config(MINIMAL + "perun:\n  max_change_fraction: lots\n")
    assert str(error_of(path)) == f"{path}: perun.max_change_fraction: expected a number, got str 'lots'"


def test_literal_values_are_checked(write_config):
    path = write_config(MINIMAL + "logging: {format: xml}\n")
    assert str(error_of(path)) == f"{path}: logging.format: expected one of 'keyvalue', 'json', got 'xml'"


def test_missing_site_section_is_reported(write_config):
    path = write_config("logging: {level: info}\n")
    assert str(error_of(path)) == f"{path}: site: required section missing (needs at least site.name)"


def test_missing_required_key(write_config):
    path = write_config("site: {endpoint: https://x}\n")
    assert str(error_of(path)) == f"{path}: site.name: required key missing (expected a string)"


def test_invalid_yaml_names_line(write_config):
    path = write_config("site: {name: [unclosed\n")
    err = error_of(path)
    assert err.file == str(path)
    assert "invalid YAML: line" in err.problem


def test_durations_accept_units(write_config):
    config = load_config(write_config(MINIMAL + "accounting: {interval: 90m, jitter: 30s}\n"))
    assert config.section(AccountingSettings).interval == 5400
    assert config.section(AccountingSettings).jitter == 30
    with pytest.raises(ValueError):
        parse_duration("soon")


def test_bad_duration_error(write_config):
    path = write_config(MINIMAL + "ssm: {interval: often}\n")
    assert str(error_of(path)) == (f"{path}: ssm.interval: expected a duration such as 30, '15m', '6h' or '2d', "
                                   f"got 'often'")


def test_bad_cron_is_rejected(write_config):
    path = write_config(MINIMAL + "accounting: {cron: '99 * * * *'}\n")
    err = error_of(path)
    assert err.key == "accounting"
    assert "cron" in err.problem


def test_conf_d_is_merged_in_name_order_and_errors_name_the_fragment(write_config, tmp_path):
    main = write_config(MINIMAL + "accounting: {interval: 1h, queue_dir: /q}\n")
    (tmp_path / "conf.d").mkdir()
    (tmp_path / "conf.d" / "20-late.yaml").write_text("accounting: {interval: 3h}\n")
    (tmp_path / "conf.d" / "10-early.yaml").write_text("accounting: {interval: 2h}\nvos: {vo.a: {projects: [p]}}\n")
    (tmp_path / "conf.d" / "ignored.txt").write_text("accounting: {interval: nonsense}\n")
    config = load_config(main)
    assert config.section(AccountingSettings).interval == 3 * 3600
    assert str(config.section(AccountingSettings).queue_dir) == "/q"
    assert list(config.vos) == ["vo.a"]
    assert [p.name for p in config.files] == ["fedcloud-site.yaml", "10-early.yaml", "20-late.yaml"]

    bad = tmp_path / "conf.d" / "30-bad.yaml"
    bad.write_text("accounting: {queue_dir: 5}\n")
    err = error_of(main)
    assert err.file == str(bad)
    assert err.key == "accounting.queue_dir"


def test_relative_paths_resolve_against_the_file_that_set_them(write_config, tmp_path):
    main = write_config(MINIMAL + "accounting: {queue_dir: spool/out}\n")
    (tmp_path / "conf.d").mkdir()
    (tmp_path / "conf.d" / "10.yaml").write_text("cloudinfo: {cache_dir: cache}\n")
    config = load_config(main)
    assert config.section(AccountingSettings).queue_dir == tmp_path / "spool" / "out"
    assert config.section(CloudinfoSettings).cache_dir == tmp_path / "conf.d" / "cache"


def test_secret_from_file_is_read_and_masked(write_config, tmp_path):
    (tmp_path / "pw").write_text("s3cret\n")
    path = write_config(MINIMAL + "cloud:\n  backend: openstack\n  openstack:\n"
                        "    auth_url: https://127.0.0.1:5000/v3\n    username: u\n    password_file: pw\n"
                        "    project_name: p\n")
    config = load_config(path)
    assert config.cloud_backend_settings.password == "s3cret"
    assert isinstance(config.cloud_backend_settings.password, Secret)
    assert "s3cret" not in repr(config.cloud_backend_settings.password)
    assert config.as_plain()["cloud"]["openstack"]["password"] == "********"


def test_missing_secret_file_is_named(write_config, tmp_path):
    path = write_config(MINIMAL + "cloud:\n  backend: openstack\n  openstack:\n"
                        "    auth_url: https://127.0.0.1:5000/v3\n    username: u\n    password_file: nothere\n")
    err = error_of(path)
    assert err.key == "cloud.openstack.password_file"
    assert f"cannot read secret file {tmp_path / 'nothere'}" in err.problem


def test_unknown_backend_lists_installed_ones(write_config):
    path = write_config(MINIMAL + "cloud: {backend: vmware}\n")
    err = error_of(path)
    assert err.key == "cloud.backend"
    assert "unknown cloud backend 'vmware'" in err.problem
    assert "openstack" in err.problem and "opennebula" in err.problem and "static" in err.problem


def test_settings_of_another_backend_are_rejected(write_config):
    path = write_config(MINIMAL + "cloud: {backend: static, opennebula: {endpoint: x}}\n")
    assert error_of(path).key == "cloud.opennebula"


def test_vo_of_project_from_config_then_property(write_config):
    config = load_config(write_config(MINIMAL + "vos: {vo.a: {projects: [p1, named]}}\n"))
    assert config.vo_of_project("p1") == "vo.a"
    assert config.vo_of_project("x", "named") == "vo.a"
    assert config.vo_of_project("p2", properties={"egi.VO": "vo.b"}) == "vo.b"
    assert config.vo_of_project("p3") is None


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "fedcloud_site.cli", *args], capture_output=True, text=True,
                          timeout=60)


def test_check_config_cli_exit_codes_and_masking(write_config, tmp_path):
    (tmp_path / "pw").write_text("hunter2")
    good = write_config(MINIMAL + "cloud:\n  backend: opennebula\n  opennebula:\n"
                        "    endpoint: http://127.0.0.1:2633/RPC2\n    username: oneadmin\n    password_file: pw\n")
    ok = run_cli("--config", str(good), "check-config")
    assert ok.returncode == 0, ok.stderr
    assert "hunter2" not in ok.stdout + ok.stderr
    assert "********" in ok.stdout
    bad = write_config(MINIMAL + "ssm: {transprot: stomp}\n", name="bad.yaml")
    failed = run_cli("--config", str(bad), "check-config")
    assert failed.returncode == 2
    assert f"{bad}: ssm.transprot: unknown key" in failed.stderr


def test_demo_configuration_is_valid():
    result = run_cli("--config", str(DEMO_CONFIG), "check-config")
    assert result.returncode == 0, result.stderr


def test_relative_paths_are_normalised(write_config, tmp_path):
    config = load_config(write_config(MINIMAL + "accounting: {queue_dir: ../x/../spool/out}\n"))
    assert config.section(AccountingSettings).queue_dir == tmp_path.parent / "spool" / "out"


def test_output_piped_into_a_closed_reader_is_not_an_error(write_config):
    path = write_config(MINIMAL)
    result = subprocess.run(f"{sys.executable} -m fedcloud_site.cli --config {path} check-config | head -1",
                            shell=True, capture_output=True, text=True, timeout=60)
    assert result.stdout.startswith("# configuration OK")
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("value", ["true", "0.1", "[[backend, static]]", "[static]", "'static'", "0", "[]"])
def test_a_cloud_section_that_is_not_a_mapping_is_a_named_error(write_config, value):
    path = write_config(MINIMAL + f"cloud: {value}\n")
    err = error_of(path)
    assert (err.file, err.key) == (str(path), "cloud")
    assert err.problem.startswith("expected a mapping, got ")


@pytest.mark.parametrize("section", ["site", "vos", "logging", "accounting", "ssm", "cloudinfo", "images", "perun"])
@pytest.mark.parametrize("value", ["true", "0.1", "[[a, b]]", "'text'"])
def test_every_section_that_is_not_a_mapping_is_a_named_error(write_config, section, value):
    text = f"{section}: {value}\n" + ("" if section == "site" else MINIMAL)
    path = write_config(text)
    err = error_of(path)
    assert (err.file, err.key) == (str(path), section)
    assert "expected a mapping" in err.problem


@pytest.mark.parametrize("text, key", [
    ("cloud: {vo_property: [egi.VO]}\n", "cloud.vo_property"),
    ("cloud: {backend: [static]}\n", "cloud.backend"),
    ("accounting: {interval: .nan}\n", "accounting.interval"),
    ("accounting: {interval: .inf}\n", "accounting.interval"),
    (f"accounting: {{interval: {10 ** 400}}}\n", "accounting.interval"),
    ("accounting: {interval: 99999999999999999999999999d}\n", "accounting.interval"),
    ("perun: {max_change_fraction: .nan}\n", "perun.max_change_fraction"),
    ("accounting: {queue_dir: ~no-such-user-here/queue}\n", "accounting.queue_dir"),
    ("accounting: {queue_dir: \"/var/spool/a\\0b\"}\n", "accounting.queue_dir"),
])
def test_values_of_the_wrong_shape_are_named_errors(write_config, text, key):
    path = write_config(MINIMAL + text)
    err = error_of(path)
    assert (err.file, err.key) == (str(path), key)


def test_check_config_names_a_malformed_cloud_section(write_config):
    path = write_config(MINIMAL + "cloud: true\n")
    result = run_cli("--config", str(path), "check-config")
    assert result.returncode == 2, result.stderr
    assert f"{path}: cloud: expected a mapping, got bool True" in result.stderr
    assert "Traceback" not in result.stderr
