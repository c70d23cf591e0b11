"""The packaged ``ldap-legacy-options`` wrapper: bdii-update's ``-h``/``-p`` options on OpenLDAP 2.5 tools.

Debian 12's bdii 6.0 runs ``ldapsearch``/``ldapadd``/``ldapmodify``/``ldapdelete`` with ``-h HOST -p PORT``
(or ``-h HOST:PORT``), options OpenLDAP 2.5 removed.  The packages install a POSIX sh script,
``/usr/libexec/fedcloud-site/ldap-legacy-options``, linked under each tool's name in
``/usr/libexec/fedcloud-site/bdii-ldap-tools/``; with that directory first on PATH the tools get
``-H ldap://HOST:PORT`` instead.  These tests run the script of this checkout, laid out the same way
by :func:`fedcloud_testing.ldap.legacy_ldap_tools`: first in front of an argument recorder (what
exactly reaches the real tool), then in front of the real tools and a real slapd.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import subprocess
from pathlib import Path
from typing import List, Sequence
from urllib.parse import urlsplit

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ldap3 import SUBTREE

from fedcloud_testing.ldap import SlapdServer, legacy_ldap_tools, slapd_available

TOOLS = ("ldapsearch", "ldapadd", "ldapmodify", "ldapdelete")
#: stands in for a real tool: prints each argument it got, NUL-terminated
RECORDER = '#!/bin/sh\nfor arg in "$@"; do printf "%s\\0" "$arg"; done\n'


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The wrapper directory in front of a directory of argument recorders named like the tools."""
    base = tmp_path_factory.mktemp("ldap-legacy")
    real = base / "real"
    real.mkdir()
    for tool in TOOLS:
        (real / tool).write_text(RECORDER)
        (real / tool).chmod(0o755)
    wrappers = legacy_ldap_tools(base / "bdii-ldap-tools")
    assert wrappers is not None
    return {"wrappers": wrappers, "real": real, "path": f"{wrappers}:{real}:/usr/bin:/bin"}


def run_tool(recorded: dict, tool: str, args: Sequence[str]) -> subprocess.CompletedProcess:
    """``tool args`` found on PATH by /bin/sh, as bdii-update's os.popen/os.system find it."""
    env = {"PATH": recorded["path"], "LC_ALL": "C"}
    return subprocess.run(["/bin/sh", "-c", f'{tool} "$@"', "sh", *args], env=env, capture_output=True,
                          timeout=30, check=False)


def argv_reaching_the_tool(recorded: dict, tool: str, args: Sequence[str]) -> List[str]:
    result = run_tool(recorded, tool, args)
    assert result.returncode == 0, result.stderr.decode()
    assert result.stdout.endswith(b"\0") or result.stdout == b""
    return [part.decode("utf-8", "surrogateescape") for part in result.stdout.split(b"\0")[:-1]]


# -- the command lines of bdii-update (bdii 6.0) ---------------------------------------------------
@pytest.mark.parametrize("tool, args, expected", [
    ("ldapadd", ["-d", "256", "-x", "-c", "-h", "localhost", "-p", "2170", "-D", "o=grid", "-y", "/run/bdii/o=grid"],
     ["-H", "ldap://localhost:2170", "-d", "256", "-x", "-c", "-D", "o=grid", "-y", "/run/bdii/o=grid"]),
    ("ldapmodify", ["-d", "256", "-x", "-c", "-h", "bdii.example.org", "-p", "2170", "-D", "o=glue", "-y", "pw"],
     ["-H", "ldap://bdii.example.org:2170", "-d", "256", "-x", "-c", "-D", "o=glue", "-y", "pw"]),
    ("ldapdelete", ["-d", "256", "-x", "-c", "-h", "127.0.0.1", "-p", "2170", "-D", "o=glue", "-y", "pw"],
     ["-H", "ldap://127.0.0.1:2170", "-d", "256", "-x", "-c", "-D", "o=glue", "-y", "pw"]),
    ("ldapsearch", ["-LLL", "-x", "-h", "top-bdii.example.org:2170", "-b", "o=grid"],  # an ldap:// source
     ["-H", "ldap://top-bdii.example.org:2170", "-LLL", "-x", "-b", "o=grid"]),
    ("ldapsearch", ["-LLL", "-x", "-h", "localhost", "-p", "2170", "-b", "o=shadow", "-s", "base"],
     ["-H", "ldap://localhost:2170", "-LLL", "-x", "-b", "o=shadow", "-s", "base"]),
])
def test_bdii_update_command_lines_reach_the_tool_with_an_ldap_uri_and_every_other_argument_in_order(
        recorded, tool, args, expected):
    assert argv_reaching_the_tool(recorded, tool, args) == expected


@pytest.mark.parametrize("args, expected", [
    (["-h", "::1", "-p", "2170"], ["-H", "ldap://[::1]:2170"]),  # bare IPv6 literal
    (["-h", "[2001:db8::7]:389"], ["-H", "ldap://[2001:db8::7]:389"]),
    (["-h", "[::1]", "-p", "2170"], ["-H", "ldap://[::1]:2170"]),
    (["-h", "ldap.example.org"], ["-H", "ldap://ldap.example.org"]),  # the tool's default port
    (["-p", "2170"], ["-H", "ldap://localhost:2170"]),  # the host defaults to localhost
    (["-h", "one.example.org two.example.org:2171", "-p", "2170"],
     ["-H", "ldap://one.example.org:2170 ldap://two.example.org:2171"]),  # a host list, as ldap_init took it
    (["-xLLLh127.0.0.1", "-p2170"], ["-H", "ldap://127.0.0.1:2170", "-xLLL"]),  # option clusters, as getopt
    (["-xh", "127.0.0.1", "-bo=glue"], ["-H", "ldap://127.0.0.1", "-x", "-bo=glue"]),
    (["-D", "-h", "-b", "-p"], ["-D", "-h", "-b", "-p"]),  # values of other options are never taken for -h/-p
    (["-x", "--", "-h", "x"], ["-x", "--", "-h", "x"]),  # nothing after -- is an option
    (["-H", "ldap://127.0.0.1:2170", "-x"], ["-H", "ldap://127.0.0.1:2170", "-x"]),  # already OpenLDAP 2.5 style
    (["-x", "(objectClass=*)", "-h", "h.example.org", "GLUE2EntityName", "o"],
     ["-H", "ldap://h.example.org", "-x", "(objectClass=*)", "GLUE2EntityName", "o"]),
])
def test_host_and_port_forms_become_one_uri_per_host(recorded, args, expected):
    assert argv_reaching_the_tool(recorded, "ldapsearch", args) == expected


@pytest.mark.parametrize("args, message", [
    (["-h", "x.example.org", "-p", "ldap"], "-p ldap: the port must be a number"),
    (["-h", "x.example.org:ldap"], "-h x.example.org:ldap: the port must be a number"),
    (["-h", "x.example.org/o=grid"], "-h x.example.org/o=grid: not a host name or IP address"),
    (["-h", "x@y"], "not a host name or IP address"),
    (["-h", ""], "-h needs a host name"),
    (["-x", "-h"], "option -h needs a value"),
    (["-H", "ldap://a", "-h", "b"], "give either -H URI or -h/-p, not both"),
])
def test_a_malformed_host_or_port_is_refused_with_status_2_and_the_tool_is_not_run(recorded, args, message):
    result = run_tool(recorded, "ldapmodify", args)
    assert result.returncode == 2
    assert result.stdout == b""  # the recorder never ran
    assert message in result.stderr.decode()
    assert result.stderr.decode().startswith("ldap-legacy-options (ldapmodify): ")


def test_without_the_real_tool_on_path_it_says_so_with_status_127(recorded):
    result = subprocess.run([str(recorded["wrappers"] / "ldapdelete"), "-h", "localhost", "x"],
                            env={"PATH": str(recorded["wrappers"])}, capture_output=True, timeout=30, check=False)
    assert result.returncode == 127
    assert "the real ldapdelete is not installed" in result.stderr.decode()


def test_another_copy_of_the_wrapper_on_path_is_not_taken_for_the_real_tool(recorded, tmp_path):
    second = legacy_ldap_tools(tmp_path / "second")
    assert second is not None
    env = {"PATH": f"{recorded['wrappers']}:{second}:{recorded['real']}:/usr/bin:/bin"}
    result = subprocess.run(["/bin/sh", "-c", "ldapsearch -h localhost -p 1 -x"], env=env, capture_output=True,
                            timeout=30, check=False)
    assert result.returncode == 0, result.stderr.decode()
    assert result.stdout.split(b"\0")[:-1] == [b"-H", b"ldap://localhost:1", b"-x"]


def test_called_under_another_name_it_refuses(recorded, tmp_path):
    other = tmp_path / "ldapwhoami"
    other.symlink_to(recorded["wrappers"] / "ldap-legacy-options")
    result = subprocess.run([str(other)], env={"PATH": "/usr/bin:/bin"}, capture_output=True, timeout=30, check=False)
    assert result.returncode == 2
    assert "run me through a link named ldapsearch" in result.stderr.decode()


# -- any host, port and other arguments (property) -------------------------------------------------
LABEL = st.from_regex(r"\A[a-z0-9]([a-z0-9-]{0,14}[a-z0-9])?\Z")
HOSTNAMES = st.lists(LABEL, min_size=1, max_size=4).map(".".join)
IPV4 = st.ip_addresses(v=4).map(str)
IPV6 = st.ip_addresses(v=6).map(str)
#: arguments bdii-update or an operator may pass besides -h/-p: options with values, flags, operands
VALUE = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\0"), max_size=20) \
    .filter(lambda v: not v.startswith("-"))
OTHER = st.one_of(
    st.tuples(st.sampled_from(["-b", "-D", "-y", "-s", "-d", "-o", "-f", "-z"]), VALUE).map(list),
    st.sampled_from([["-x"], ["-c"], ["-LLL"], ["-r"], ["-M"]]),
    VALUE.filter(lambda v: v != "").map(lambda v: [v]),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(host=st.one_of(HOSTNAMES, IPV4, IPV6), port=st.integers(1, 65535), joined=st.booleans(),
       before=st.lists(OTHER, max_size=3), after=st.lists(OTHER, max_size=3))
def test_any_host_and_port_reach_the_tool_as_a_uri_that_parses_back_to_them(recorded, host, port, joined,
                                                                            before, after):
    literal = f"[{host}]" if ":" in host else host
    where = ["-h", f"{literal}:{port}"] if joined else ["-h", host, "-p", str(port)]
    others_before = [arg for group in before for arg in group]
    others_after = [arg for group in after for arg in group]
    argv = argv_reaching_the_tool(recorded, "ldapsearch", others_before + where + others_after)
    assert argv[0] == "-H"
    assert argv[2:] == others_before + others_after
    uri = urlsplit(argv[1])
    assert uri.scheme == "ldap" and uri.port == port
    if ":" in host:
        assert ipaddress.ip_address(uri.hostname or "") == ipaddress.ip_address(host)
    else:
        assert uri.hostname == host


# -- in front of the real tools and a real slapd ---------------------------------------------------
def _ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as sock:
            sock.bind(("::1", 0))
        return True
    except OSError:
        return False


@pytest.mark.services
@pytest.mark.parametrize("host", ["127.0.0.1", "::1"])
def test_the_real_tools_add_modify_search_and_delete_through_the_wrapper_with_h_and_p(tmp_path, host):
    missing = slapd_available(("core.schema",))
    if missing:
        pytest.skip(f"needs the Debian packages slapd and ldap-utils (missing: {missing})")
    if host == "::1" and not _ipv6_loopback():
        pytest.skip("no IPv6 loopback on this machine")
    wrappers = legacy_ldap_tools(tmp_path / "bdii-ldap-tools")
    env = dict(os.environ, PATH=f"{wrappers}:{os.environ.get('PATH', '/usr/bin:/bin')}")
    with SlapdServer(tmp_path / "slapd", suffixes=("o=grid",), schemas=("core.schema", "cosine.schema"),
                     host=host) as server:
        password = str(server.password_file())

        def tool(*args: str, stdin: str = "") -> subprocess.CompletedProcess:
            result = subprocess.run(["/bin/sh", "-c", '"$@"', "sh", *args], input=stdin.encode(), env=env,
                                    capture_output=True, timeout=60, check=False)
            assert result.returncode == 0, f"{args}: {result.stderr.decode()}"
            return result

        # exactly as bdii-update calls them: -h HOST -p PORT, the root DN and its password file
        tool("ldapadd", "-x", "-c", "-h", host, "-p", str(server.port), "-D", "o=grid", "-y", password,
             stdin="dn: o=grid\nobjectClass: organization\no: grid\n\n"
                   "dn: ou=site,o=grid\nobjectClass: organizationalUnit\nou: site\ndescription: first\n\n")
        tool("ldapmodify", "-x", "-c", "-h", host, "-p", str(server.port), "-D", "o=grid", "-y", password,
             stdin="dn: ou=site,o=grid\nchangetype: modify\nreplace: description\ndescription: second\n\n")
        literal = f"[{host}]" if ":" in host else host
        found = tool("ldapsearch", "-LLL", "-x", "-h", f"{literal}:{server.port}", "-b", "o=grid", "(ou=site)",
                     "description").stdout.decode()
        assert "description: second" in found.splitlines()

        conn = server.connection()
        conn.search("o=grid", "(objectClass=organizationalUnit)", SUBTREE, attributes=["description"])
        assert [(e.entry_dn, e.description.values) for e in conn.entries] == [("ou=site,o=grid", ["second"])]

        tool("ldapdelete", "-x", "-c", "-h", host, "-p", str(server.port), "-D", "o=grid", "-y", password,
             stdin="ou=site,o=grid\n")
        conn.search("o=grid", "(objectClass=organizationalUnit)", SUBTREE)
        assert conn.entries == []


def test_the_wrapper_needs_nothing_but_a_posix_shell(recorded):
    script = (recorded["wrappers"] / "ldap-legacy-options").read_text()
    assert script.startswith("#!/bin/sh\n")
    for tool in TOOLS:
        assert os.readlink(recorded["wrappers"] / tool) == "ldap-legacy-options"
    checkbashisms = Path("/usr/bin/checkbashisms")
    if checkbashisms.exists():
        result = subprocess.run([str(checkbashisms), "--posix", str(recorded["wrappers"] / "ldap-legacy-options")],
                                capture_output=True, timeout=60, check=False)
        assert result.returncode == 0, result.stderr.decode() + result.stdout.decode()
    dash = Path("/bin/dash")
    if dash.exists():
        result = subprocess.run([str(dash), "-n", str(recorded["wrappers"] / "ldap-legacy-options")],
                                capture_output=True, timeout=30, check=False)
        assert result.returncode == 0, result.stderr.decode()
