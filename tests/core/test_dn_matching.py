"""DNs are compared as parsed structures (RDN by RDN, OID and exact value), never as rendered strings."""

from __future__ import annotations

from cryptography import x509 as cx509
from cryptography.x509.oid import NameOID
from hypothesis import given
from hypothesis import strategies as st

from fedcloud_site import x509

OIDS = [NameOID.DOMAIN_COMPONENT, NameOID.ORGANIZATION_NAME, NameOID.ORGANIZATIONAL_UNIT_NAME,
        NameOID.COMMON_NAME, NameOID.COUNTRY_NAME, NameOID.EMAIL_ADDRESS]


def name(*rdns):
    return cx509.Name([cx509.RelativeDistinguishedName([cx509.NameAttribute(oid, value) for oid, value in rdn])
                       for rdn in rdns])


ENDORSER = "/DC=org/DC=example/O=Hosts/CN=appdb.example.org"


def test_a_value_hiding_further_rdns_behind_a_slash_is_not_the_dn_it_renders_as():
    forged = name([(NameOID.DOMAIN_COMPONENT, "org")], [(NameOID.DOMAIN_COMPONENT, "example")],
                  [(NameOID.ORGANIZATION_NAME, "Hosts/CN=appdb.example.org")])
    assert x509.dn_to_slash(forged) == ENDORSER
    assert not x509.dn_matches(forged, ENDORSER)


def test_a_multi_valued_rdn_never_equals_a_slash_form_dn():
    forged = name([(NameOID.DOMAIN_COMPONENT, "org")], [(NameOID.DOMAIN_COMPONENT, "example")],
                  [(NameOID.ORGANIZATION_NAME, "Hosts"), (NameOID.COMMON_NAME, "appdb.example.org")])
    assert x509.dn_to_slash(forged) == ENDORSER
    assert not x509.dn_matches(forged, ENDORSER)


def test_the_real_endorser_and_a_grid_host_dn_with_a_slash_in_its_cn_match():
    real = name([(NameOID.DOMAIN_COMPONENT, "org")], [(NameOID.DOMAIN_COMPONENT, "example")],
                [(NameOID.ORGANIZATION_NAME, "Hosts")], [(NameOID.COMMON_NAME, "appdb.example.org")])
    assert x509.dn_matches(real, ENDORSER)
    host = name([(NameOID.DOMAIN_COMPONENT, "org")], [(NameOID.COMMON_NAME, "host/h.example.org")])
    assert x509.dn_matches(host, "/DC=org/CN=host/h.example.org")


def test_aliases_are_the_same_attribute_values_are_exact_and_garbage_matches_nothing():
    assert x509.dn_equal("/DC=org/CN=x/Email=a@b", "/DC=org/CN=x/emailAddress=a@b")
    assert not x509.dn_equal("/DC=org/CN=x", "/DC=org/CN=X")
    assert not x509.dn_equal("not a dn", "not a dn")  # unparseable: never equal, even to itself
    assert not x509.dn_equal("/DC=org/CN=x", "/DC=org")


value_text = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=12)
rdn = st.lists(st.tuples(st.sampled_from(OIDS), value_text), min_size=1, max_size=3)


def _hides_an_attribute(value: str) -> bool:
    """``value`` contains ``/KEY=`` for an attribute name: a slash-form DN would read it as another RDN."""
    try:
        return len(x509.slash_to_name("/CN=" + value).rdns) > 1
    except x509.X509Error:
        return True


@given(st.lists(rdn, min_size=1, max_size=5))
def test_no_certificate_name_is_taken_for_a_dn_it_is_not(rdns):
    try:
        cert_name = name(*rdns)
    except ValueError:  # e.g. a country code that is not two letters: no such certificate exists
        return
    rendered = x509.dn_to_slash(cert_name)
    matched = x509.dn_matches(cert_name, rendered)
    if any(len(r) > 1 for r in rdns) or any(_hides_an_attribute(v) for r in rdns for _, v in r):
        assert not matched
    if matched:
        parsed = x509.slash_to_name(rendered)
        assert [[(a.oid, a.value) for a in r] for r in parsed.rdns] == [[(o, v) for o, v in r] for r in rdns]


plain_value = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9 .@-]{0,10}[A-Za-z0-9]", fullmatch=True)


@given(st.lists(st.tuples(st.sampled_from([o for o in OIDS if o != NameOID.COUNTRY_NAME]), plain_value),
                min_size=1, max_size=6))
def test_every_ordinary_single_valued_name_matches_its_slash_form(pairs):
    cert_name = name(*[[pair] for pair in pairs])
    assert x509.dn_matches(cert_name, x509.dn_to_slash(cert_name))


@given(st.text(max_size=80), st.text(max_size=80))
def test_dn_comparison_of_any_two_strings_answers_true_or_false(first, second):
    assert x509.dn_equal(first, second) in (True, False)
