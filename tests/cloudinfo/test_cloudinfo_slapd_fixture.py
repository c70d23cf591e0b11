"""The real-slapd test helper (fedcloud_testing.ldap) enforces the GLUE 2.0 schema."""

from __future__ import annotations

from fedcloud_testing.ldap import slapadd_check

GROUP = "dn: GLUE2GroupID=cloud,o=glue\nobjectClass: GLUE2Group\nGLUE2GroupID: cloud\n\n"


def test_slapd_accepts_a_valid_glue2_entry_and_serves_it_to_ldap3(glue_ldap):
    result = glue_ldap.ldapadd(GROUP)
    assert result.returncode == 0, result.stderr
    conn = glue_ldap.connection()
    conn.search("o=glue", "(GLUE2GroupID=cloud)", attributes=["GLUE2GroupID"])
    assert [e.entry_dn for e in conn.entries] == ["GLUE2GroupID=cloud,o=glue"]


def test_slapd_rejects_an_entry_missing_a_required_glue2_attribute(glue_ldap):
    glue_ldap.ldapadd(GROUP)
    service = ("dn: GLUE2ServiceID=s,GLUE2GroupID=cloud,o=glue\nobjectClass: GLUE2Service\nGLUE2ServiceID: s\n"
               "GLUE2ServiceQualityLevel: production\nGLUE2ServiceAdminDomainForeignKey: SITE\n")
    result = glue_ldap.ldapadd(service)
    assert result.returncode != 0
    assert b"requires attribute 'GLUE2ServiceType'" in result.stderr


def test_offline_slapadd_check_reports_unknown_attributes(offline_dir):
    good = slapadd_check(GROUP, offline_dir / "good")
    assert good.returncode == 0, good.stderr
    bad = slapadd_check(GROUP.replace("GLUE2GroupID: cloud\n", "GLUE2GroupID: cloud\nGLUE2NoSuchThing: x\n"),
                        offline_dir / "bad")
    assert bad.returncode != 0
    assert b"GLUE2NoSuchThing" in bad.stderr
