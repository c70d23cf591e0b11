"""Safety checks: bad, empty, stale or sweeping input is refused (exit 4) and changes nothing."""

from __future__ import annotations

import json
from datetime import timedelta

from perun_helpers import ALPHA, BETA, T0, member

from fedcloud_site.errors import JobRefused

RS = "\x1e"


def _ten(site, **kwargs):
    users = [member(f"user{i}@egi.eu", **kwargs) for i in range(10)]
    site.push(users)
    assert site.run("once") == 0
    return users


def test_zero_byte_file_is_refused_and_changes_nothing(site):
    _ten(site)
    before = site.users()
    site.file.write_text("")
    assert site.run("once") == JobRefused.exit_status
    assert "empty input" in site.output()
    assert site.users() == before
    assert site.state()["last_run"]["result"] == "refused"


def test_input_without_users_is_refused_unless_forced(site):
    _ten(site)
    site.push([])
    assert site.run("once") == JobRefused.exit_status
    out = site.output()
    assert "lists no users at all" in out and "VO vo.alpha.eu has no VALID members in the input but had 10" in out
    assert all(u.enabled for n, u in site.users().items() if n.startswith("user"))
    assert site.run("sync", "--force") == 0
    assert not any(u.enabled for n, u in site.users().items() if n.startswith("user"))


def test_vo_dropping_to_zero_valid_members_is_refused(site):
    site.push([member("jane@egi.eu"), member("bob@egi.eu", vo=BETA)])
    site.run("once")
    site.push([member("bob@egi.eu", vo=BETA), member("jane@egi.eu", status="EXPIRED")])
    assert site.run("once") == JobRefused.exit_status
    assert "VO vo.alpha.eu has no VALID members in the input but had 1" in site.output()
    assert site.users()["jane@egi.eu"].enabled


def test_input_older_than_the_last_applied_one_is_refused(site):
    site.push([member("jane@egi.eu")], generated_at=T0 + timedelta(hours=2))
    site.run("once")
    site.push([member("jane@egi.eu"), member("bob@egi.eu")], generated_at=T0 + timedelta(hours=1))
    assert site.run("once") == JobRefused.exit_status
    assert "older than the last applied input" in site.output()
    assert "bob@egi.eu" not in site.users()


def test_plan_changing_more_than_the_allowed_fraction_is_refused_until_forced(site):
    site.configure(max_change_fraction=0.2, change_allowance=1)
    users = _ten(site)
    site.push(users[:7])  # 3 of 10 would be disabled: more than 20 %
    assert site.run("once") == JobRefused.exit_status
    assert "the plan changes 3 of 10 managed users (0 updates, 3 disables), more than max_change_fraction 0.2" \
        in site.output()
    assert all(u.enabled for n, u in site.users().items() if n.startswith("user"))
    assert site.run("sync", "--dry-run") == JobRefused.exit_status
    assert "# REFUSED: the plan changes 3 of 10" in site.output()
    assert site.run("sync", "--force") == 0
    assert sum(not u.enabled for u in site.users().values()) == 3


def test_changes_within_the_fraction_are_applied(site):
    site.configure(max_change_fraction=0.2, change_allowance=0)
    users = _ten(site)
    site.push(users[:8])
    assert site.run("once") == 0


def test_malformed_json_is_refused_naming_line_and_column(site):
    _ten(site)
    site.file.write_text('{"version": "1.0.0",\n "vos": ["vo.alpha.eu"],\n "users": [\n  {"id": "x" "y"}]}\n')
    assert site.run("once") == JobRefused.exit_status
    assert "perun.json: line 4 column 14: invalid JSON" in site.output()


def test_bad_record_is_refused_naming_the_record(site):
    users = [member("jane@egi.eu"), member("bob@egi.eu", status="ON_HOLIDAY")]
    site.push(users)
    assert site.run("once") == JobRefused.exit_status
    assert ("perun.json: users[1] (id 'bob@egi.eu'): memberships[0].status: 'ON_HOLIDAY' is not one of VALID, "
            "INVALID, EXPIRED, SUSPENDED, DISABLED") in site.output()
    assert "jane@egi.eu" not in site.users()


def test_record_without_id_or_with_a_bad_dn_is_refused(site):
    site.push([{"display_name": "nobody", "memberships": []}])
    assert site.run("once") == JobRefused.exit_status
    assert "users[0]: id: missing or empty" in site.output()
    site.push([member("jane@egi.eu", dns=["CN=Jane,O=Example"])])
    assert site.run("once") == JobRefused.exit_status
    assert "users[0] (id 'jane@egi.eu'): x509_dns[0]" in site.output()


def test_membership_of_a_vo_not_listed_in_vos_is_refused(site):
    site.push([member("jane@egi.eu", vo="vo.unlisted.eu")])
    assert site.run("once") == JobRefused.exit_status
    assert "vo 'vo.unlisted.eu' is not in the file's vos list" in site.output()


def test_unsupported_version_is_refused(site):
    site.file.write_text(json.dumps({"version": "2.0.0", "vos": [ALPHA], "users": []}))
    assert site.run("once") == JobRefused.exit_status
    assert "version: '2.0.0' is not supported" in site.output()


def test_legacy_fedcloud_export_lines_create_vo_uid_users(site):
    site.file.write_text(
        f"{ALPHA}_1042{RS}{ALPHA}{RS}/DC=org/DC=example/CN=Jane Doe{RS}jane@example.org{RS}"
        f"ssh-ed25519 AAAA1 jane|ssh-rsa AAAA2 jane\n"
        f"{BETA}_7{RS}{BETA}{RS}/DC=org/DC=example/CN=Bob{RS}{RS}\n")
    assert site.run("once") == 0
    users = site.users()
    jane = users[f"{ALPHA}_1042"]
    assert jane.groups == ("100",) and jane.ssh_keys == ("ssh-ed25519 AAAA1 jane", "ssh-rsa AAAA2 jane")
    assert users[f"{BETA}_7"].email is None  # an empty mail is kept as a user without mail, not dropped


def test_legacy_line_with_too_few_fields_is_refused_naming_the_line(site):
    site.file.write_text(f"{ALPHA}_1{RS}{ALPHA}{RS}/DC=org/CN=A{RS}a@x{RS}\n{ALPHA}_2{RS}{ALPHA}\n")
    assert site.run("once") == JobRefused.exit_status
    assert "perun.json: line 2: expected 5 RS-separated fields" in site.output()


def test_legacy_file_without_a_vo_that_had_members_is_refused(site):
    site.file.write_text(f"{ALPHA}_1{RS}{ALPHA}{RS}/DC=org/CN=A{RS}a@x{RS}\n{BETA}_2{RS}{BETA}{RS}/DC=org/CN=B{RS}{RS}\n")
    site.run("once")
    site.file.write_text(f"{ALPHA}_1{RS}{ALPHA}{RS}/DC=org/CN=A{RS}a@x{RS}\n")
    assert site.run("once") == JobRefused.exit_status
    assert "VO vo.beta.eu has no VALID members in the input but had 1" in site.output()


def test_missing_propagation_file_is_refused(site):
    assert site.run("once") == JobRefused.exit_status
    assert "perun.json: propagation file does not exist" in site.output()


def test_two_perun_users_mapping_to_one_local_name_are_refused(site):
    site.configure(user_name="fixed-{id}")
    site.push([member("a"), member("a ")])  # ids are stripped: a duplicate after normalisation
    assert site.run("once") == JobRefused.exit_status
    assert "duplicate of users[0]" in site.output()
