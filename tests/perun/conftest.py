"""Fixtures of the Perun synchroniser tests (helpers live in perun_helpers.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from perun_helpers import PKI, PerunSite

from fedcloud_testing.perun_sim import PerunSim


@pytest.fixture
def site(tmp_path: Path, capsys: Any) -> PerunSite:
    return PerunSite(tmp_path, capsys)


@pytest.fixture(scope="session")
def pki(tmp_path_factory: Any) -> PKI:
    return PKI(tmp_path_factory.mktemp("perun-pki"))


@pytest.fixture
def perun_sim(pki: PKI):
    sim = PerunSim(pki.server.cert, pki.server.key, client_ca_file=pki.ca_file, allowed_dns=[pki.client_dn])
    with sim:
        yield sim
