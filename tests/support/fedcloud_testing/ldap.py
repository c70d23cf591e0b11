"""A throw-away OpenLDAP ``slapd`` on loopback for tests and benchmarks.

:class:`SlapdServer` writes a ``slapd.conf`` into a directory of its own (one
``mdb`` database per suffix, each with ``rootdn`` = the suffix and a plain
password), checks it with ``slaptest``, starts ``slapd`` in the foreground on
127.0.0.1 and an ephemeral port, and stops it again.  It loads the schemas a
BDII uses (core, cosine, nis, BDII and GLUE 2.0 when installed), so that what
the server accepts is what a real BDII accepts: any schema violation shows as an
``ldapadd`` error.

:func:`slapadd_check` is the offline check: ``slapadd -u`` (dry run) of an LDIF
file against the same configuration, without a running server.

Needs the Debian packages ``slapd`` and ``ldap-utils`` (``bdii`` and
``glue-schema`` for the BDII and GLUE 2.0 schemas); :func:`slapd_available`
tells whether they are installed.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Sequence, Union

#: where Debian installs the schemas; the first existing path of each name is used
SCHEMA_DIRS: Sequence[Path] = (Path("/etc/ldap/schema"), Path("/usr/share/ldap/schema"), Path("/etc/bdii"),
                               Path("/usr/share/glue-schema"), Path("/etc/openldap/schema"))
#: schemas loaded by default, in order (missing optional ones are skipped)
DEFAULT_SCHEMAS: Sequence[str] = ("core.schema", "cosine.schema", "nis.schema", "BDII.schema", "GLUE20.schema")
REQUIRED_SCHEMAS: Sequence[str] = ("core.schema", "cosine.schema")
MODULE_DIRS: Sequence[Path] = (Path("/usr/lib/ldap"), Path("/usr/lib64/openldap"), Path("/usr/lib/openldap"))
SLAPD_CANDIDATES: Sequence[str] = ("/usr/sbin/slapd", "/usr/libexec/slapd")

DEFAULT_PASSWORD = "fedcloud-site-test"


class SlapdError(RuntimeError):
    """slapd could not be configured or started, or a tool failed."""


def find_schema(name: str) -> Optional[Path]:
    """The installed schema file ``name`` (e.g. ``GLUE20.schema``), or None."""
    for directory in SCHEMA_DIRS:
        candidate = directory / name
        if candidate.is_file():
            return candidate
    return None


def _slapd_binary() -> Optional[str]:
    for candidate in SLAPD_CANDIDATES:
        if os.access(candidate, os.X_OK):
            return candidate
    return shutil.which("slapd")


def _tool(name: str) -> Optional[str]:
    return shutil.which(name) or next((p for p in (f"/usr/sbin/{name}", f"/usr/bin/{name}") if os.access(p, os.X_OK)),
                                      None)


def slapd_available(schemas: Sequence[str] = ("GLUE20.schema",)) -> Optional[str]:
    """None when slapd, slapadd, ldapadd and the given schemas are installed, else what is missing."""
    missing: List[str] = []
    if _slapd_binary() is None:
        missing.append("slapd")
    for tool in ("slapadd", "slaptest", "ldapadd", "ldapsearch"):
        if _tool(tool) is None:
            missing.append(tool)
    for schema in (*REQUIRED_SCHEMAS, *schemas):
        if find_schema(schema) is None:
            missing.append(schema)
    return ", ".join(missing) if missing else None


def free_port(host: str = "127.0.0.1") -> int:
    """An ephemeral TCP port that was free a moment ago."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class Database:
    """One ``mdb`` database: its suffix, root DN (= suffix) and directory."""

    suffix: str
    directory: Path

    @property
    def rootdn(self) -> str:
        return self.suffix


def write_slapd_conf(directory: Path, suffixes: Sequence[str] = ("o=glue",),
                     schemas: Sequence[str] = DEFAULT_SCHEMAS, password: str = DEFAULT_PASSWORD,
                     max_size: int = 1 << 30) -> Path:
    """Write ``slapd.conf`` (and empty database directories) into ``directory``; returns its path.

    Schemas named in :data:`REQUIRED_SCHEMAS` must exist; other missing schemas are left out.
    """
    directory.mkdir(parents=True, exist_ok=True)
    lines = []
    for name in schemas:
        path = find_schema(name)
        if path is None:
            if name in REQUIRED_SCHEMAS:
                raise SlapdError(f"LDAP schema {name} is not installed (looked in {', '.join(map(str, SCHEMA_DIRS))})")
            continue
        lines.append(f"include {path}")
    module_dir = next((d for d in MODULE_DIRS if (d / "back_mdb.la").exists() or (d / "back_mdb.so").exists()), None)
    if module_dir is not None:
        lines += [f"modulepath {module_dir}", "moduleload back_mdb"]
    lines += [f"pidfile {directory / 'slapd.pid'}", f"argsfile {directory / 'slapd.args'}", "loglevel 0",
              "sizelimit unlimited", "timelimit unlimited", ""]
    for index, suffix in enumerate(suffixes):
        db_dir = directory / f"db{index}"
        db_dir.mkdir(exist_ok=True)
        lines += ["database mdb", f'suffix "{suffix}"', f'rootdn "{suffix}"', f"rootpw {password}",
                  f"directory {db_dir}", f"maxsize {max_size}", "dbnosync", "index objectClass eq,pres", ""]
    conf = directory / "slapd.conf"
    conf.write_text("\n".join(lines), encoding="utf-8")
    return conf


def _run(argv: Sequence[str], stdin: Optional[bytes] = None, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(list(argv), input=stdin, capture_output=True, timeout=timeout, check=False)


def slapadd_check(ldif: Union[Path, bytes, str], directory: Path, suffixes: Sequence[str] = ("o=glue",),
                  schemas: Sequence[str] = DEFAULT_SCHEMAS, preamble: str = "") -> subprocess.CompletedProcess:
    """``slapadd -u`` (dry run, schema checked) of an LDIF file or text; returns the finished process.

    ``preamble`` is LDIF prepended to the input (e.g. the ``o=glue`` root entry).  ``directory``
    holds the throw-away configuration.
    """
    conf = write_slapd_conf(directory, suffixes, schemas)
    if isinstance(ldif, Path):
        data = ldif.read_bytes()
    else:
        data = ldif.encode("utf-8") if isinstance(ldif, str) else ldif
    path = directory / "input.ldif"
    path.write_bytes(preamble.encode("utf-8") + data)
    slapadd = _tool("slapadd") or "slapadd"
    # -u: dry run; no -s (that would skip the schema check) and no -c (stop, and fail, at the first error)
    return _run([slapadd, "-f", str(conf), "-u", "-l", str(path)], timeout=600)


class SlapdServer:
    """A slapd serving ``suffixes`` on ``ldap://127.0.0.1:<port>`` from files in ``directory``.

    Use as a context manager or call :meth:`start` / :meth:`stop`.  Each suffix is its own
    database whose root DN is the suffix itself, with password :attr:`password`.
    """

    def __init__(self, directory: Path, suffixes: Sequence[str] = ("o=glue",),
                 schemas: Sequence[str] = DEFAULT_SCHEMAS, password: str = DEFAULT_PASSWORD,
                 host: str = "127.0.0.1", port: int = 0) -> None:
        if host not in ("127.0.0.1", "::1", "localhost"):
            raise ValueError("test slapd only listens on loopback")
        self.directory = Path(directory)
        self.suffixes = tuple(suffixes)
        self.schemas = tuple(schemas)
        self.password = password
        self.host = host
        self.port = port
        self.conf: Optional[Path] = None
        self._process: Optional[subprocess.Popen] = None
        self._log: Optional[Path] = None

    # -- life cycle -------------------------------------------------------------------------
    @property
    def url(self) -> str:
        return self._url(self.port)

    def _url(self, port: int) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"ldap://{host}:{port}"

    @property
    def pid(self) -> Optional[int]:
        return self._process.pid if self._process is not None else None

    def start(self, timeout: float = 20.0) -> SlapdServer:
        """Write the configuration, check it with slaptest and start slapd; waits until it answers."""
        binary = _slapd_binary()
        if binary is None:
            raise SlapdError("slapd is not installed")
        self.conf = write_slapd_conf(self.directory, self.suffixes, self.schemas, self.password)
        check = _run([_tool("slaptest") or "slaptest", "-u", "-f", str(self.conf)])
        if check.returncode != 0:
            raise SlapdError(f"slaptest rejected {self.conf}: {check.stderr.decode(errors='replace').strip()}")
        attempts = 1 if self.port else 5
        last_error = ""
        for _ in range(attempts):
            port = self.port or free_port(self.host if self.host != "localhost" else "127.0.0.1")
            self._log = self.directory / "slapd.log"
            with open(self._log, "wb") as log:
                process = subprocess.Popen(
                    [binary, "-f", str(self.conf), "-h", f"{self._url(port)}/", "-d", "0"],
                    stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
            if self._wait_listening(process, port, timeout):
                self._process = process
                self.port = port
                return self
            last_error = self._log.read_text(errors="replace")[-2000:]
            if process.poll() is None:
                process.terminate()
                process.wait(timeout=10)
        raise SlapdError(f"slapd did not start: {last_error.strip()}")

    def _wait_listening(self, process: subprocess.Popen, port: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if process.poll() is not None:
                return False
            try:
                with socket.create_connection((self.host if self.host != "localhost" else "127.0.0.1", port),
                                              timeout=0.5):
                    return True
            except OSError:
                time.sleep(0.05)
        return False

    def stop(self) -> None:
        """Stop slapd (SIGTERM, then SIGKILL after 10 s)."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)

    def __enter__(self) -> SlapdServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- data -------------------------------------------------------------------------------
    def rootdn(self, suffix: Optional[str] = None) -> str:
        """Bind DN with write access to ``suffix`` (default: the first suffix)."""
        suffix = suffix or self.suffixes[0]
        if suffix not in self.suffixes:
            raise ValueError(f"{suffix} is not served by this slapd ({', '.join(self.suffixes)})")
        return suffix

    def password_file(self) -> Path:
        """A file holding the root password (for ``ldapadd -y``)."""
        path = self.directory / "rootpw"
        if not path.exists():
            path.write_text(self.password, encoding="utf-8")
            path.chmod(0o600)
        return path

    def ldapadd(self, ldif: Union[str, bytes, Path], suffix: Optional[str] = None,
                continue_on_error: bool = False, timeout: float = 600) -> subprocess.CompletedProcess:
        """Run ``ldapadd`` with the LDIF (text, bytes or file) bound as root of ``suffix``."""
        argv = [_tool("ldapadd") or "ldapadd", "-x", "-H", self.url, "-D", self.rootdn(suffix),
                "-y", str(self.password_file())]
        if continue_on_error:
            argv.append("-c")
        if isinstance(ldif, Path):
            argv += ["-f", str(ldif)]
            return _run(argv, timeout=timeout)
        data = ldif.encode("utf-8") if isinstance(ldif, str) else ldif
        return _run(argv, stdin=data, timeout=timeout)

    def add_root_entries(self) -> None:
        """Create the entry of each suffix (``o=...`` as an organization, ``GLUE2GroupID=...`` as a GLUE2Group)."""
        for suffix in self.suffixes:
            result = self.ldapadd(root_entry_ldif(suffix), suffix)
            if result.returncode not in (0, 68):  # 68: already exists
                raise SlapdError(f"cannot add {suffix}: {result.stderr.decode(errors='replace').strip()}")

    def ldapsearch(self, base: str, *args: str, timeout: float = 60) -> str:
        """``ldapsearch -LLL -x`` output (anonymous) under ``base``."""
        result = _run([_tool("ldapsearch") or "ldapsearch", "-LLL", "-x", "-o", "ldif-wrap=no", "-H", self.url,
                       "-b", base, *args], timeout=timeout)
        if result.returncode not in (0, 32):  # 32: no such object
            raise SlapdError(f"ldapsearch {base} failed: {result.stderr.decode(errors='replace').strip()}")
        return result.stdout.decode("utf-8")

    def connection(self, bind_as_root: bool = False):  # type: ignore[no-untyped-def]
        """An open ldap3 ``Connection`` (anonymous, or root of the first suffix)."""
        import ldap3

        server = ldap3.Server(self.host if self.host != "localhost" else "127.0.0.1", port=self.port,
                              get_info=ldap3.NONE, connect_timeout=5)
        if bind_as_root:
            return ldap3.Connection(server, user=self.rootdn(), password=self.password, auto_bind=True,
                                    receive_timeout=30)
        return ldap3.Connection(server, auto_bind=True, receive_timeout=30)

    def delete_subtree(self, base: str) -> None:
        """Remove ``base`` and everything below it (children first)."""
        result = _run([_tool("ldapdelete") or "ldapdelete", "-x", "-r", "-H", self.url, "-D",
                       self._suffix_of(base), "-y", str(self.password_file()), base])
        if result.returncode not in (0, 32):
            raise SlapdError(f"ldapdelete {base} failed: {result.stderr.decode(errors='replace').strip()}")

    def _suffix_of(self, dn: str) -> str:
        for suffix in sorted(self.suffixes, key=len, reverse=True):
            if dn.lower().endswith(suffix.lower()):
                return suffix
        raise ValueError(f"{dn} is not below any suffix of this slapd")


#: the packaged ``-h``/``-p`` translator (``libexec/ldap-legacy-options``): the checkout's, else the installed one
LEGACY_OPTIONS_SCRIPTS: Sequence[Path] = (Path(__file__).resolve().parents[3] / "libexec" / "ldap-legacy-options",
                                          Path("/usr/libexec/fedcloud-site/ldap-legacy-options"))
#: the tools bdii-update runs, each a link to the translator in a ``bdii-ldap-tools`` directory
LEGACY_TOOL_NAMES: Sequence[str] = ("ldapsearch", "ldapadd", "ldapmodify", "ldapdelete")


def legacy_options_script() -> Path:
    """The packaged POSIX sh script that turns ``-h HOST -p PORT`` into ``-H ldap://HOST:PORT``."""
    for candidate in LEGACY_OPTIONS_SCRIPTS:
        if candidate.is_file():
            return candidate
    raise SlapdError(f"ldap-legacy-options is not installed (looked at {', '.join(map(str, LEGACY_OPTIONS_SCRIPTS))})")


def legacy_ldap_tools(directory: Path) -> Optional[Path]:
    """A directory of ``ldapadd``/``ldapmodify``/``ldapdelete``/``ldapsearch`` that accept ``-h``/``-p``.

    ``bdii-update`` (Debian ``bdii`` 6.0) still calls the tools with ``-h HOST -p PORT``, which
    OpenLDAP 2.5 removed; put the returned directory first in ``PATH`` of such a program.  The
    directory is laid out as the packages install ``/usr/libexec/fedcloud-site/bdii-ldap-tools``: a
    copy of the packaged ``ldap-legacy-options`` script (mode 0755, no interpreter but ``/bin/sh``,
    so any user can run it) and one link per tool.  The translation is harmless where the tools
    still know ``-h``, so the directory is always made (the return type stays Optional for callers
    written when it was not).
    """
    if _tool("ldapsearch") is None:
        raise SlapdError("ldap-utils is not installed")
    directory.mkdir(parents=True, exist_ok=True)
    script = directory / "ldap-legacy-options"
    shutil.copyfile(legacy_options_script(), script)
    script.chmod(0o755)
    for tool in LEGACY_TOOL_NAMES:
        link = directory / tool
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(script.name)
    return directory


def root_entry_ldif(suffix: str) -> str:
    """LDIF of the entry naming a suffix: an organization for ``o=x``, a GLUE2Group for ``GLUE2GroupID=x``."""
    rdn = suffix.split(",", 1)[0]
    attribute, _, value = rdn.partition("=")
    if attribute.lower() == "o":
        return f"dn: {suffix}\nobjectClass: organization\no: {value}\n\n"
    if attribute.lower() == "glue2groupid":
        return f"dn: {suffix}\nobjectClass: GLUE2Group\nGLUE2GroupID: {value}\n\n"
    raise ValueError(f"no root entry template for {suffix}")


__all__ = ["SlapdServer", "SlapdError", "slapadd_check", "slapd_available", "find_schema", "write_slapd_conf",
           "legacy_ldap_tools", "legacy_options_script", "root_entry_ldif", "free_port", "DEFAULT_SCHEMAS"]
