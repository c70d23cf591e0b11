"""Our GLUE 2.1 JSON against cloud-info-provider 1.2's own output for the same site (OpenStack simulator).

cloud-info-provider 1.2.0 is installed from PyPI with pip into a virtualenv (set FEDCLOUD_SITE_CIP_VENV to
keep one between runs); the test is skipped only when PyPI cannot be reached.  Both tools read the same
simulated cloud: cloud-info-provider as a member of the VO projects (as sites run it), we through our
OpenStack backend.  Same classes, same IDs, same values; where the values differ on purpose the reason
is listed in KNOWN_DIFFERENCES below.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, Dict, Iterator

from cloudinfo_helpers import SITE_FILE, build, json_of, write_site_config

from fedcloud_site.config import load_config
from fedcloud_testing.cip import add_member_user, run_cip, site_file
from fedcloud_testing.openstack import OpenStackSim, from_site

P_FED = "0a1b2c3d4e5f40718293a4b5c6d7e8f9"
P_BIO = "1b2c3d4e5f60418293a4b5c6d7e8f90a"

#: (class, key) -> why our value differs from cloud-info-provider's
KNOWN_DIFFERENCES = {
    ("CloudComputingManager", "InstanceMinCPU"): "cloud-info-provider computes min(0, x): always 0",
    ("CloudComputingManager", "InstanceMinRAM"): "cloud-info-provider computes min(0, x): always 0",
    ("CloudComputingEndpoint", "IssuerCA"): "cloud-info-provider says UNKNOWN for an http endpoint; we leave "
                                            "unknown values out (set cloudinfo.endpoint.certificate)",
    ("CloudComputingEndpoint", "TrustedCA"): "as IssuerCA",
}
#: what we publish and cloud-info-provider 1.2 does not (GLUE 2.1 attributes it leaves empty)
OUR_EXTRAS = {("CloudComputingManager", k) for k in ("ProductName", "HypervisorName", "HypervisorVersion",
                                                     "TotalCPUs", "TotalRAM")}
OUR_EXTRAS.add(("CloudComputingInstanceType", "EphemeralStorage"))
# set in our vos.<vo> configuration; cloud-info-provider 1.2 has no setting for them
OUR_EXTRAS |= {("Share", k) for k in ("SLA", "DefaultNetworkType", "PublicNetworkName")}


def by_id(document: Dict[str, Any]) -> Dict[str, Dict[str, Dict[str, Any]]]:
    """{class: {ID: object}}; cloud-info-provider's per-share copies merged (their associations united)."""
    merged: Dict[str, Dict[str, Dict[str, Any]]] = {}
    for cls, objects in document.items():
        for obj in objects:
            seen = merged.setdefault(cls, {}).get(obj["ID"])
            if seen is None:
                merged[cls][obj["ID"]] = json.loads(json.dumps(obj))
                continue
            rest = {k: v for k, v in obj.items() if k != "Associations"}
            assert rest == {k: v for k, v in seen.items() if k != "Associations"}, f"{cls} {obj['ID']} copies differ"
            for key, values in obj.get("Associations", {}).items():
                seen["Associations"][key] = sorted(set(seen["Associations"].get(key, [])) | set(values))
    return merged


def normalised(cls: str, key: str, value: Any) -> Any:
    if key == "Associations":
        return {k: sorted(v) for k, v in value.items()}
    if key == "Rule":
        return sorted(value)
    return value


def differences(ours: Dict[str, Any], theirs: Dict[str, Any]) -> Iterator[str]:
    mine, peer = by_id(ours), by_id(theirs)
    if sorted(mine) != sorted(peer):
        yield f"classes: ours {sorted(mine)} vs theirs {sorted(peer)}"
    for cls in sorted(set(mine) & set(peer)):
        if sorted(mine[cls]) != sorted(peer[cls]):
            yield f"{cls} IDs: ours {sorted(mine[cls])} vs theirs {sorted(peer[cls])}"
        for object_id in sorted(set(mine[cls]) & set(peer[cls])):
            a, b = mine[cls][object_id], peer[cls][object_id]
            datetime.fromisoformat(a["CreationTime"])  # both are ISO 8601 with a time zone
            for key in sorted(set(a) | set(b)):
                if key == "CreationTime" or (cls, key) in KNOWN_DIFFERENCES:
                    continue
                if key not in b:
                    if (cls, key) not in OUR_EXTRAS:
                        yield f"{cls} {object_id}: {key} only in ours"
                    continue
                if key not in a:
                    yield f"{cls} {object_id}: {key} missing in ours (theirs {b[key]!r})"
                    continue
                if key == "OtherInfo" and cls == "Share":
                    yield from share_other_info(object_id, a[key], b[key])
                    continue
                if normalised(cls, key, a[key]) != normalised(cls, key, b[key]):
                    yield f"{cls} {object_id}: {key} ours {a[key]!r} vs theirs {b[key]!r}"


def share_other_info(share_id: str, ours: Dict[str, Any], theirs: Dict[str, Any]) -> Iterator[str]:
    """Same project name and domain name; quotas: ours are the instances/cores/ram the backend reports,
    theirs every Nova quota."""
    if ours.get("project_name") != theirs.get("project_name"):
        yield f"Share {share_id}: project_name ours {ours.get('project_name')!r} vs {theirs.get('project_name')!r}"
    if ours.get("project_domain_name") != theirs.get("project_domain_name"):
        yield f"Share {share_id}: project domain ours {ours.get('project_domain_name')!r} vs theirs " \
              f"{theirs.get('project_domain_name')!r}"
    for key, value in ours.get("quotas", {}).items():
        if theirs.get("quotas", {}).get(key) != value:
            yield f"Share {share_id}: quota {key} ours {value!r} vs theirs {theirs.get('quotas', {}).get(key)!r}"
    extra = set(ours) - {"project_name", "project_domain_name", "quotas"}
    if extra:
        yield f"Share {share_id}: OtherInfo keys only in ours: {sorted(extra)}"


def test_our_json_has_the_classes_ids_and_values_of_cloud_info_provider(cip_python, tmp_path):
    data = from_site(SITE_FILE)
    add_member_user(data, [P_FED, P_BIO], private_flavors=["3"])
    with OpenStackSim(data) as sim:
        config_path = write_site_config(tmp_path / "ours", backend="openstack", endpoint=sim.auth_url,
                                        backend_settings="\n".join(f"    {k}: {v}" for k, v in sim.auth.items()))
        ours = json_of(build(load_config(config_path)))
        cip_site = site_file(tmp_path / "cip-site.yaml", "TEST-SITE", sim.auth_url,
                             {"fedcloud.egi.eu": P_FED, "biomed": P_BIO})
        run = run_cip(cip_python, sim.auth_url, cip_site, "1234G0", "TEST-SITE", tmp_path / "cip")
    assert run.returncode == 0, run.stderr.decode(errors="replace")[-3000:]
    theirs = json.loads(run.stdout)
    assert sorted(theirs) == sorted(ours)
    found = list(differences(ours, theirs))
    assert found == [], "\n".join(found)
    tampered = json.loads(json.dumps(ours))
    tampered["CloudComputingInstanceType"][0]["RAM"] += 1
    assert list(differences(tampered, theirs)), "the comparison must notice a changed value"
    # the cases the comparison relies on are really there
    assert len(theirs["CloudComputingImage"]) > len(ours["CloudComputingImage"])  # their per-share copies
    assert {o["ID"] for o in ours["CloudComputingVirtualAccelerator"]} == {"3_gpu"}
