"""The rendered LDIF is accepted by a real slapd with the standard GLUE 2.0 schema (Debian glue-schema).

Needs the Debian packages slapd, ldap-utils and glue-schema (installed by the README test command).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import yaml
from cloudinfo_helpers import ENDPOINT, SITE_FILE, build, ldif_of, write_site_config
from ldap3 import SUBTREE

from fedcloud_site.cloudinfo.ldif_values import ldif_id
from fedcloud_site.config import load_config
from fedcloud_testing.ldap import root_entry_ldif, slapadd_check

BASE = "GLUE2GroupID=cloud,o=glue"
pytestmark = pytest.mark.services


def all_entries(server):
    conn = server.connection()
    conn.search(BASE, "(objectClass=*)", SUBTREE, attributes=["*"])
    return {e.entry_dn: e.entry_attributes_as_dict for e in conn.entries}


def first_rdn(dn: str):
    """(attribute, unescaped value) of the first RDN of a DN as slapd returns it (\\c and \\XX escapes)."""
    attribute, _, rest = dn.partition("=")
    raw = bytearray()
    i = 0
    while i < len(rest):
        char = rest[i]
        if char == "\\":
            pair = rest[i + 1:i + 3]
            if len(pair) == 2 and all(c in "0123456789abcdefABCDEF" for c in pair):
                raw += bytes.fromhex(pair)
                i += 3
                continue
            raw += rest[i + 1].encode()
            i += 2
            continue
        if char == ",":
            break
        raw += char.encode()
        i += 1
    return attribute, raw.decode("utf-8")


def structural(attrs) -> str:
    return [c for c in attrs["objectClass"] if c not in ("GLUE2Entity", "GLUE2Resource", "GLUE2Policy")][-1]


def test_every_entry_of_the_test_site_is_accepted_by_slapd_and_reads_back(site_config, glue_ldap):
    model = build(site_config)
    result = glue_ldap.ldapadd(ldif_of(model))
    assert result.returncode == 0, result.stderr.decode()
    found = all_entries(glue_ldap)
    kinds = sorted(structural(attrs) for attrs in found.values())
    assert kinds.count("GLUE2ComputingService") == 1 and kinds.count("GLUE2ComputingManager") == 1
    assert kinds.count("GLUE2ComputingEndpoint") == 1 and kinds.count("GLUE2AccessPolicy") == 1
    assert kinds.count("GLUE2ComputingShare") == 2 and kinds.count("GLUE2MappingPolicy") == 2
    assert kinds.count("GLUE2ExecutionEnvironment") == 3 and kinds.count("GLUE2Benchmark") == 1
    assert kinds.count("GLUE2ApplicationEnvironment") == 3 and kinds.count("GLUE2Group") == 1
    for dn, attrs in found.items():  # RDN value == ID
        attribute, value = first_rdn(dn)
        assert attrs[attribute] == [value], dn
    share = next(a for a in found.values() if "GLUE2ComputingShare" in a["objectClass"]
                 and "VO=biomed" in a["GLUE2EntityOtherInfo"])
    assert share["GLUE2ShareID"] == [f"{ENDPOINT}_OpenStack_v3_share_biomed_1b2c3d4e5f60418293a4b5c6d7e8f90a"]
    assert len(share["GLUE2ComputingShareExecutionEnvironmentForeignKey"]) == 3
    flavour = next(a for a in found.values() if a.get("GLUE2EntityName") == ["g1.a100"])
    assert flavour["GLUE2ExecutionEnvironmentMainMemorySize"] == ["65536"]  # integer syntax: slapd checked it
    assert flavour["GLUE2ExecutionEnvironmentLogicalCPUs"] == ["8"]


def test_the_rendered_ldif_passes_the_offline_slapadd_check(site_config, offline_dir):
    result = slapadd_check(ldif_of(build(site_config)), offline_dir, preamble=root_entry_ldif("o=glue"))
    assert result.returncode == 0, result.stderr.decode()


def awkward_site(tmp_path: Path) -> Path:
    """The test site with IDs and names that need DN escaping and base64."""
    data = yaml.safe_load(SITE_FILE.read_text())
    data["projects"][0]["name"] = "Fédération, \"cloud\" +1"
    data["projects"][1]["properties"] = {"egi.VO": "vo.example.org/sub group"}
    data["projects"][1]["name"] = " leading-space"
    data["flavors"][0].update(id="m1,small+x=1;<y>#", name="m1 small é")
    data["images"][0]["name"] = "Ubuntu ® 22.04 "
    data["images"][0]["properties"]["vmcatcher_event_dc_description"] = "line one\nline two"
    path = tmp_path / "awkward.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True))
    return path


def test_awkward_ids_get_a_safe_form_and_values_are_stored_as_documented(tmp_path, glue_ldap):
    config_path = write_site_config(tmp_path, site_file=awkward_site(tmp_path))
    config_path.write_text(config_path.read_text().replace("projects: [biomed-cloud]", "projects: []"))
    model = build(load_config(config_path))
    result = glue_ldap.ldapadd(ldif_of(model))
    assert result.returncode == 0, result.stderr.decode()
    found = all_entries(glue_ldap)
    flavour_dn, flavour = next((dn, a) for dn, a in found.items() if a.get("GLUE2EntityName") == ["m1 small é"])
    original = f"m1,small+x=1;<y>#_{ENDPOINT}_cloud.compute"
    assert flavour["GLUE2ResourceID"] == [ldif_id(original)] and ldif_id(original) != original
    assert f"OriginalID={original}" in flavour["GLUE2EntityOtherInfo"]
    assert first_rdn(flavour_dn) == ("GLUE2ResourceID", flavour["GLUE2ResourceID"][0])
    image = next(a for a in found.values() if "GLUE2ApplicationEnvironment" in a["objectClass"]
                 and a["GLUE2ApplicationEnvironmentAppName"] == ["Ubuntu ® 22.04"])
    assert image["GLUE2ApplicationEnvironmentDescription"] == ["line one line two"]
    shares = [a for a in found.values() if "GLUE2ComputingShare" in a["objectClass"]]
    assert sorted(v for a in shares for v in a["GLUE2EntityOtherInfo"] if v.startswith("project_name=")) == [
        'project_name=Fédération, "cloud" +1', "project_name=leading-space"]
    assert any("VO=vo.example.org/sub group" in a["GLUE2EntityOtherInfo"] for a in shares)
    result = slapadd_check(ldif_of(model), tmp_path / "offline", preamble=root_entry_ldif("o=glue"))
    assert result.returncode == 0, result.stderr.decode()


def test_values_slapd_compares_as_equal_are_written_once_so_slapd_takes_the_entry(glue_ldap, site_config):
    """caseExactMatch ignores repeated spaces and compares NFKC forms: two such values make slapd refuse the entry."""
    model = build(site_config)
    rules = ("VO:bio  med", "VO:bio med", "VO:caf\u00e9", "VO:cafe\u0301", "VO:\uff21", "VO:A")
    model = replace(model, access_policy=replace(model.access_policy, rules=rules))
    result = glue_ldap.ldapadd(ldif_of(model))
    assert result.returncode == 0, result.stderr.decode()
    policy = next(a for a in all_entries(glue_ldap).values() if "GLUE2AccessPolicy" in a["objectClass"])
    assert sorted(policy["GLUE2PolicyRule"]) == ["VO:bio  med", "VO:caf\u00e9", "VO:\uff21"]
