"""LDIF writing: RFC 2849 encoding and folding, RFC 4514 DN escaping, the GLUE 2.0 DIT."""

from __future__ import annotations

import base64
import io
import re

from cloudinfo_helpers import build, ldif_of

from fedcloud_site.cloudinfo.ldif import LdifWriter, escape_rdn_value, needs_base64


def entries(text: str):
    """(dn, [(attribute, value)]) per entry of unfolded, decoded LDIF."""
    result = []
    for block in text.replace("\n ", "").strip().split("\n\n"):
        pairs = []
        for line in block.splitlines():
            attribute, _, rest = line.partition(":")
            if rest.startswith(":"):
                pairs.append((attribute, base64.b64decode(rest[1:].strip()).decode("utf-8")))
            else:
                pairs.append((attribute, rest[1:]))
        dn = pairs.pop(0)[1]
        result.append((dn, pairs))
    return result


def written(dn, attributes) -> str:
    out = io.BytesIO()
    LdifWriter(out).entry(dn, attributes)
    return out.getvalue().decode("ascii")


def test_values_that_are_not_safe_strings_are_base64_encoded():
    text = written("o=x", [("a", "plain"), ("b", "Biomédical"), ("d", ":colon"), ("e", "<less")])
    assert "a: plain\n" in text
    assert f"b:: {base64.b64encode('Biomédical'.encode()).decode()}\n" in text
    for attribute in "de":
        assert f"\n{attribute}:: " in text
    assert dict(entries(text)[0][1]) == {"a": "plain", "b": "Biomédical", "d": ":colon", "e": "<less"}
    assert not needs_base64("a=b,c") and needs_base64("é") and needs_base64("x ")


def test_what_bdii_update_cannot_carry_is_replaced_before_writing():
    text = written("o=x", [("c", " leading space"), ("f", "trailing \t\x0b\x0c"), ("g", "two\nlines\r"),
                           ("h", "see dn: here"), ("i", "nul\x00\x1f\x85"), ("j", "lone \ud800"), ("k", " \t ")])
    assert dict(entries(text)[0][1]) == {"c": "leading space", "f": "trailing", "g": "two lines",
                                         "h": "see dn : here", "i": "nul", "j": "lone \ufffd"}
    assert "dn:" not in text.split("\n", 1)[1]


def test_long_lines_are_folded_at_76_columns_and_unfold_to_the_value():
    value = "https://appdb.egi.eu/" + "x" * 300
    text = written("o=x", [("GLUE2ApplicationEnvironmentRepository", value)])
    assert all(len(line) <= 76 for line in text.splitlines())
    assert dict(entries(text)[0][1])["GLUE2ApplicationEnvironmentRepository"] == value


def test_repeated_values_are_written_once_and_missing_values_not_at_all():
    text = written("o=x", [("r", "VO:a"), ("r", "VO:a"), ("r", "VO:b"), ("n", None)])
    assert entries(text)[0][1] == [("r", "VO:a"), ("r", "VO:b")]


def test_rdn_values_are_escaped_per_rfc4514_and_stay_ascii():
    assert escape_rdn_value("a,b+c=d") == "a\\,b\\+c\\=d"
    assert escape_rdn_value('"<x>;\\') == '\\"\\<x\\>\\;\\\\'
    assert escape_rdn_value("#lead") == "\\#lead" and escape_rdn_value(" pad ") == "\\ pad\\ "
    assert escape_rdn_value("é") == "\\C3\\A9"
    assert escape_rdn_value("https://h:5000/v3_cloud.compute") == "https://h:5000/v3_cloud.compute"


def test_the_glue2_tree_has_parents_before_children_and_unique_dns(site_config):
    parsed = entries(ldif_of(build(site_config)))
    seen = set()
    for dn, _ in parsed:
        parent = dn.split(",", 1)[1]
        assert parent == "o=glue" or parent in seen, f"{dn} comes before its parent"
        assert dn not in seen, f"duplicate {dn}"
        seen.add(dn)
    assert parsed[0][0] == "GLUE2GroupID=cloud,o=glue"


def test_every_rdn_value_is_the_entry_id(site_config):
    for dn, pairs in entries(ldif_of(build(site_config))):
        attribute, value = re.match(r"([^=]+)=((?:[^,\\]|\\.)*)", dn).groups()
        assert (attribute, value.replace("\\", "")) in [(a, v.replace("\\", "")) for a, v in pairs], dn


def test_glue21_details_without_a_glue20_attribute_go_to_other_info(site_config):
    text = ldif_of(build(site_config))
    parsed = {dn.split(",", 1)[0]: dict(pairs) for dn, pairs in entries(text)}
    other = [v for dn, pairs in entries(text) for a, v in pairs if a == "GLUE2EntityOtherInfo"]
    assert "TotalVM=4" in other and "RunningVM=2" in other and "HaltedVM=1" in other
    assert "OSName=ubuntu" in other and "AcceleratorModel=A100" in other and "Authn=password" in other
    assert all(re.match(r"^[A-Za-z_:.]+=.", v) for v in other), [v for v in other if "=" not in v]
    service = next(v for k, v in parsed.items() if k.startswith("GLUE2ServiceID="))
    assert service["GLUE2ServiceType"] == "IaaS" and service["GLUE2ServiceAdminDomainForeignKey"] == "TEST-SITE"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", service["GLUE2EntityCreationTime"])
    assert service["GLUE2EntityValidity"] == "43200"
