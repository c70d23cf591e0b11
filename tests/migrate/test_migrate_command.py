"""``fedcloud-site migrate``: fragments validated then written atomically, dry run, refusals, exit statuses."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from fedcloud_site.accounting.settings import Settings as AccountingSettings
from fedcloud_site.cli import main
from fedcloud_site.cloudinfo.settings import Settings as CloudinfoSettings
from fedcloud_site.config import load_config
from fedcloud_site.images.settings import Settings as ImagesSettings
from fedcloud_site.ssm.settings import Settings as SSMSettings
from fedcloud_testing.cip import site_file

ENDPOINT = "https://keystone.test.example.org:5000/v3"


@pytest.fixture
def sources(caso_site, tmp_path: Path, ssm_sender_cfg: str, atrope_sources: str):
    sender = tmp_path / "sender.cfg"
    sender.write_text(ssm_sender_cfg.replace("path: /var/spool/apel/outgoing", f"path: {tmp_path / 'outgoing'}")
                      .replace("destination: gLite-APEL", "destination: eu-egi-cloud-accounting"), encoding="utf-8")
    atrope_file = tmp_path / "sources.yaml"
    atrope_file.write_text(atrope_sources, encoding="utf-8")
    cip = site_file(tmp_path / "cip-site.yaml", "TEST-SITE", ENDPOINT, {"fedcloud.egi.eu": "p1"})
    return ["--from", f"caso={caso_site({})}", "--from", f"ssm={sender}", "--from", f"cloud-info-provider={cip}",
            "--from", f"atrope={atrope_file}"]


def test_all_four_tools_give_a_configuration_the_daemons_accept(site_dir: Path, sources, capsys, tmp_path: Path):
    assert main(["-c", str(site_dir / "fedcloud-site.yaml"), "migrate", *sources]) == 0
    names = sorted(p.name for p in (site_dir / "conf.d").iterdir())
    assert names == ["50-migrated-site.yaml", "60-migrated-apel-ssm.yaml", "60-migrated-atrope.yaml",
                     "60-migrated-caso.yaml", "60-migrated-cloud-info-provider.yaml"]
    for name in names:
        assert (site_dir / "conf.d" / name).stat().st_mode & 0o777 == 0o640  # credentials inside
    config = load_config(site_dir / "fedcloud-site.yaml")
    assert config.site.name == "TEST-SITE" and config.site.endpoint == ENDPOINT
    assert config.vos["fedcloud.egi.eu"].projects == ["p1"]
    assert config.section(AccountingSettings).queue_dir == tmp_path / "outgoing"
    ssm = config.section(SSMSettings)
    assert ssm.queues[0].queue_dir == tmp_path / "outgoing"  # one queue: written by one, drained by other
    assert ssm.transport == "ams" and ssm.destination == "eu-egi-cloud-accounting"
    assert config.section(CloudinfoSettings).compute_service_id == f"{ENDPOINT}_cloud.compute"
    assert [s.name for s in config.section(ImagesSettings).subscriptions] == ["ttycorelinux-egi", "vo.fedcloud.egi.eu"]
    out = capsys.readouterr().out
    assert "# mapped:" in out and "# not mapped:" in out and "# defaults that differ:" in out
    assert "caso-secret" not in out
    assert main(["-c", str(site_dir / "fedcloud-site.yaml"), "check-config"]) == 0


def test_dry_run_prints_the_fragments_and_writes_nothing(site_dir: Path, sources, capsys, tmp_path: Path):
    spool = tmp_path / "caso-spool"
    spool.mkdir()
    (spool / "lastrun.p1").write_text("2026-11-05 06:00:01+00:00", encoding="utf-8")
    assert main(["-c", str(site_dir / "fedcloud-site.yaml"), "migrate", "--dry-run", *sources]) == 0
    assert list((site_dir / "conf.d").iterdir()) == []
    assert not (tmp_path / "state").exists()
    out = capsys.readouterr().out
    fragment = out.split("# --- ")[1].split("\n", 1)[1].split("# --- ")[0]
    assert yaml.safe_load(fragment)["site"]["name"] == "TEST-SITE"
    assert "[dry run: not written]" in out


def test_existing_fragments_are_not_replaced_without_force(site_dir: Path, sources, capsys):
    config = ["-c", str(site_dir / "fedcloud-site.yaml"), "migrate"]
    assert main([*config, *sources]) == 0
    before = (site_dir / "conf.d" / "50-migrated-site.yaml").read_bytes()
    (site_dir / "conf.d" / "50-migrated-site.yaml").write_bytes(before + b"# edited by the operator\n")
    capsys.readouterr()
    assert main([*config, *sources]) == 2
    assert "already exists" in capsys.readouterr().err
    assert (site_dir / "conf.d" / "50-migrated-site.yaml").read_bytes().endswith(b"# edited by the operator\n")
    assert main([*config, "--force", *sources]) == 0
    assert (site_dir / "conf.d" / "50-migrated-site.yaml").read_bytes() == before


def test_tools_contradicting_each_other_write_nothing(site_dir: Path, caso_site, tmp_path: Path, capsys):
    cip = site_file(tmp_path / "cip-site.yaml", "OTHER-SITE", ENDPOINT, {"fedcloud.egi.eu": "p1"})
    status = main(["-c", str(site_dir / "fedcloud-site.yaml"), "migrate", "--from", f"caso={caso_site({})}",
                   "--from", f"cloud-info-provider={cip}"])
    assert status == 2
    err = capsys.readouterr().err
    assert "site.name" in err and "OTHER-SITE" in err and "TEST-SITE" in err
    assert list((site_dir / "conf.d").iterdir()) == []


def test_a_result_our_loader_rejects_is_refused_with_the_loaders_words(site_dir: Path, tmp_path: Path,
                                                                       ssm_sender_cfg: str, capsys):
    sender = tmp_path / "sender.cfg"
    sender.write_text(ssm_sender_cfg, encoding="utf-8")
    status = main(["-c", str(site_dir / "fedcloud-site.yaml"), "migrate", "--from", f"ssm={sender}"])
    assert status == 2  # no site section anywhere: the daemons would not start either
    err = capsys.readouterr().err
    assert "would not load" in err and "site" in err
    assert list((site_dir / "conf.d").iterdir()) == []


def test_a_malformed_old_file_is_an_error_naming_it_never_a_traceback(site_dir: Path, tmp_path: Path, capsys):
    broken = tmp_path / "caso.conf"
    broken.write_text("[DEFAULT]\nsite_name = X\n  continued\n[DEFAULT]\n", encoding="utf-8")
    status = main(["-c", str(site_dir / "fedcloud-site.yaml"), "migrate", "--from", f"caso={broken}"])
    assert status == 2
    err = capsys.readouterr().err
    assert str(broken) in err and "[DEFAULT]" in err and "Traceback" not in err


@pytest.mark.parametrize("argument", ["caso", "nothing=/etc/x", "caso="])
def test_bad_from_arguments_are_usage_errors(site_dir: Path, argument: str):
    with pytest.raises(SystemExit) as caught:
        main(["-c", str(site_dir / "fedcloud-site.yaml"), "migrate", "--from", argument])
    assert caught.value.code == 2


def test_cASOs_credentials_are_kept_when_cloud_info_provider_used_others(site_dir: Path, caso_site, tmp_path: Path,
                                                                         capsys):
    site_file(tmp_path / "cip-site.yaml", "TEST-SITE", ENDPOINT, {"fedcloud.egi.eu": "p1"})
    args = tmp_path / "cip.args"
    args.write_text(f"--os-auth-url\n{ENDPOINT}\n--os-username\nreader\n--os-password\nr\ncip-site.yaml\n",
                    encoding="utf-8")
    assert main(["-c", str(site_dir / "fedcloud-site.yaml"), "migrate", "--from", f"caso={caso_site({})}",
                 "--from", f"cloud-info-provider={args}"]) == 0
    config = load_config(site_dir / "fedcloud-site.yaml")
    assert config.cloud_backend_settings.username == "caso"
    assert "other credentials" in capsys.readouterr().out


def test_fragments_can_be_written_elsewhere_for_review(site_dir: Path, sources, tmp_path: Path, capsys):
    review = tmp_path / "review"
    review.mkdir()
    assert main(["-c", str(site_dir / "fedcloud-site.yaml"), "migrate", "--output", str(review), *sources]) == 0
    assert list((site_dir / "conf.d").iterdir()) == []
    assert (review / "50-migrated-site.yaml").exists()
    assert "the daemons read the fragments only once they are moved there" in capsys.readouterr().out
