"""``fedcloud-site check certs``: host certificate, CA directory and CRLs, with a real test PKI."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from fedcloud_site.demo.ca import CertificateAuthority, write_ca_directory, write_crl
from fedcloud_site.timeutil import utcnow


@pytest.fixture(scope="module")
def ca() -> CertificateAuthority:
    return CertificateAuthority("/DC=org/DC=example/CN=Probe Test CA")


def _site(tmp_path: Path, site_config, ca: CertificateAuthority, crl_options=None, **issue):
    host = ca.host("site.example.org", **issue)
    files = host.write(tmp_path / "grid")
    capath = write_ca_directory(tmp_path / "grid" / "certificates", [ca], crl_options=crl_options)
    config = site_config(f"""
        ssm:
          certificate: {files.cert}
          key: {files.key}
          capath: {capath}
        """)
    return config, host, files, capath


def test_valid_host_certificate_with_fresh_crl_is_ok(tmp_path, site_config, probe, ca):
    config, host, _, _ = _site(tmp_path, site_config, ca)
    run = probe(config, "certs")
    assert run.status == "OK", run.line
    assert "host certificate /DC=org/DC=example/CN=site.example.org expires in" in run.text
    assert run.perf("crls_expired").startswith("0")
    assert float(run.perf("host_cert_days_left").split(";")[0]) > 300


def test_certificate_expiring_within_the_warning_threshold_is_warning(tmp_path, site_config, probe, ca):
    config, *_ = _site(tmp_path, site_config, ca, days=20)
    run = probe(config, "certs")
    assert run.status == "WARNING", run.line
    assert "(warning 30d)" in run.text
    assert probe(config, "certs", "--warning", "10d").status == "OK"


def test_certificate_expiring_within_the_critical_threshold_is_critical(tmp_path, site_config, probe, ca):
    config, *_ = _site(tmp_path, site_config, ca, days=3)
    run = probe(config, "certs")
    assert run.status == "CRITICAL", run.line
    assert "(critical 7d)" in run.text


def test_expired_certificate_is_critical(tmp_path, site_config, probe, ca):
    now = utcnow()
    config, *_ = _site(tmp_path, site_config, ca, not_before=now - timedelta(days=30),
                       not_after=now - timedelta(days=2))
    run = probe(config, "certs")
    assert run.status == "CRITICAL"
    assert "expired 2d" in run.text


def test_expired_crl_is_critical_and_names_fetch_crl(tmp_path, site_config, probe, ca):
    now = utcnow()
    config, *_ = _site(tmp_path, site_config, ca, crl_options={"last_update": now - timedelta(days=9),
                                                               "next_update": now - timedelta(days=2)})
    run = probe(config, "certs")
    assert run.status == "CRITICAL"
    assert "1 expired CRL(s)" in run.text and "fetch-crl" in run.text
    assert run.perf("crls_expired").startswith("1")


def test_crl_close_to_its_next_update_is_warning(tmp_path, site_config, probe, ca):
    now = utcnow()
    config, *_ = _site(tmp_path, site_config, ca, crl_options={"next_update": now + timedelta(hours=3)})
    run = probe(config, "certs")
    assert run.status == "WARNING", run.line
    assert "expire within 12h" in run.text


def test_revoked_host_certificate_is_critical(tmp_path, site_config, probe):
    ca = CertificateAuthority("/DC=org/DC=example/CN=Revoking CA")
    config, host, _, capath = _site(tmp_path, site_config, ca)
    ca.revoke(host)
    write_crl(capath, ca)
    run = probe(config, "certs")
    assert run.status == "CRITICAL"
    assert "was revoked" in run.text


def test_key_of_another_certificate_is_critical(tmp_path, site_config, probe, ca):
    config, _, files, _ = _site(tmp_path, site_config, ca)
    files.key.write_bytes(ca.host("other.example.org").key_pem())
    run = probe(config, "certs")
    assert run.status == "CRITICAL"
    assert "does not match the host certificate" in run.text


def test_certificate_from_an_untrusted_ca_is_critical(tmp_path, site_config, probe, ca):
    stranger = CertificateAuthority("/DC=org/DC=elsewhere/CN=Unknown CA")
    config, _, files, _ = _site(tmp_path, site_config, ca)
    other = stranger.host("site.example.org")
    files.cert.write_bytes(other.cert_pem())
    files.key.write_bytes(other.key_pem())
    run = probe(config, "certs")
    assert run.status == "CRITICAL"
    assert "is not a trusted CA" in run.text


def test_missing_ca_directory_is_critical(tmp_path, site_config, probe, ca):
    config, *_ = _site(tmp_path, site_config, ca)
    run = probe(config, "certs", "--capath", str(tmp_path / "nowhere"))
    assert run.status == "CRITICAL"
    assert "CA directory does not exist" in run.text


def test_invalid_configuration_is_unknown(tmp_path, probe):
    config = tmp_path / "broken.yaml"
    config.write_text("site: {name: X}\nbogus: 1\n", encoding="utf-8")
    run = probe(config, "certs")
    assert run.status == "UNKNOWN"
    assert "invalid configuration" in run.text and "bogus" in run.text
