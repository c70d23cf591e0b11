"""Fixtures of the cloud information provider tests: a real slapd with the GLUE 2.0 schema."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator

import pytest
from cloudinfo_helpers import write_site_config

from fedcloud_site.config import Config, load_config
from fedcloud_testing.cip import VENV_ENV, CipUnavailable, ensure_venv
from fedcloud_testing.ldap import SlapdServer, slapd_available

GLUE_BASE = "GLUE2GroupID=cloud,o=glue"


def _require_slapd() -> None:
    missing = slapd_available(("GLUE20.schema",))
    if missing:
        pytest.skip(f"needs the Debian packages slapd, ldap-utils and glue-schema (missing: {missing})")


@pytest.fixture(scope="session")
def slapd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SlapdServer]:
    """One slapd (core, cosine, nis, BDII, GLUE 2.0 schemas; mdb ``o=glue``) shared by the session."""
    _require_slapd()
    server = SlapdServer(tmp_path_factory.mktemp("slapd"), suffixes=("o=glue",))
    server.start()
    server.add_root_entries()
    yield server
    server.stop()


@pytest.fixture
def glue_ldap(slapd: SlapdServer) -> Iterator[SlapdServer]:
    """The shared slapd with an empty ``o=glue`` (our subtree removed before and after the test)."""
    slapd.delete_subtree(GLUE_BASE)
    yield slapd
    slapd.delete_subtree(GLUE_BASE)


@pytest.fixture
def offline_dir(tmp_path: Path) -> Path:
    return tmp_path / "slapadd"


@pytest.fixture
def site_config(tmp_path: Path) -> Config:
    """Configuration of the fixed test site on the static backend."""
    return load_config(write_site_config(tmp_path))


@pytest.fixture(scope="session")
def cip_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The Python of a virtualenv with cloud-info-provider 1.2 (``FEDCLOUD_SITE_CIP_VENV`` keeps one)."""
    directory = Path(os.environ[VENV_ENV]) if os.environ.get(VENV_ENV) else tmp_path_factory.mktemp("cip-venv")
    try:
        return ensure_venv(directory)
    except CipUnavailable as exc:
        pytest.skip(str(exc))
