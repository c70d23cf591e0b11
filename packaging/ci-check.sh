#!/usr/bin/env bash
# Build and check the fedcloud-site packages; run as root on a Debian 12 host (CI), from a checkout.
#
#   1. source tarball of the checkout (the files git tracks, as they are in the work tree)
#   2. RPM: rpmbuild -bb, then `rpm -qlp` / `rpm -qp --requires` against packaging/rpm/expected-*.txt
#   3. DEB: dpkg-buildpackage -us -uc -b in a copy of the tree with packaging/deb/debian at its top,
#      `dpkg-deb -c` against packaging/deb/expected-files.txt, lintian (errors fail)
#   4. apt-get install ./fedcloud-site_*.deb; the installed CLI: --version, check-config of the
#      installed example configuration, `check` probes' --help; the RPM payload's CLI too
#   5. systemd-analyze verify of every installed unit; systemd-analyze security --offline exposure
#      per service (each must be <= 4.0, "OK")
#   6. apt-get purge, then nothing of the package may be left
#
# Environment: FCS_PKG_WORKDIR (default: a new /tmp directory, removed on success),
# FCS_PKG_SKIP_APT=1 (do not apt-get install the build tools), FCS_PKG_KEEP=1 (keep the work dir).
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
WORK=${FCS_PKG_WORKDIR:-$(mktemp -d /tmp/fedcloud-site-pkg.XXXXXX)}
SYSPY=/usr/bin/python3
MAX_EXPOSURE=4.0
export DEBIAN_FRONTEND=noninteractive LC_ALL=C.UTF-8
# the system Python and system tools only: no virtualenv/pyenv shims in the way
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
unset PYTHONPATH PYTHONHOME VIRTUAL_ENV

step() { printf '\n=== %s\n' "$*"; }
fail() { printf 'FAILED: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || fail "run as root (installs build tools and the .deb)"
mkdir -p "$WORK"

# ------------------------------------------------------------------------------------------- tools
if [ "${FCS_PKG_SKIP_APT:-0}" != 1 ]; then
    step "installing build and check tools"
    apt-get update -q >/dev/null
    apt-get install -y -q --no-install-recommends \
        rpm cpio debhelper dh-python pybuild-plugin-pyproject python3-all python3-setuptools \
        python3-build python3-installer python3-wheel \
        lintian devscripts fakeroot build-essential systemd logrotate git ca-certificates >/dev/null
fi

VERSION=$(cd "$REPO" && $SYSPY -c 'import re; print(re.search(r"__version__ = \"(.+?)\"", open("fedcloud_site/__init__.py").read()).group(1))')
PYVER=$($SYSPY -c 'import sys; print("{0}.{1}".format(*sys.version_info))')
echo "fedcloud-site $VERSION, system Python $PYVER, work directory $WORK"

# ------------------------------------------------------------------------------------------ source
step "source tarball"
SRCNAME=fedcloud-site-$VERSION
TARBALL=$WORK/$SRCNAME.tar.gz
(
    cd "$REPO"
    if git rev-parse --git-dir >/dev/null 2>&1; then
        git ls-files -z --cached
    else
        find . \( -path ./.git -o -path ./.venv \) -prune -o -type f -print0 | sed -z 's,^\./,,'
    fi | while IFS= read -r -d '' f; do [ -f "$f" ] && printf '%s\0' "$f"; done \
       | tar --null -T - --transform "s,^,$SRCNAME/," --owner=0 --group=0 -czf "$TARBALL"
)
rm -rf "$WORK/src" && mkdir -p "$WORK/src" && tar -xzf "$TARBALL" -C "$WORK/src"
SRC=$WORK/src/$SRCNAME
echo "$TARBALL ($(tar -tzf "$TARBALL" | wc -l) entries)"

# --------------------------------------------------------------------------------------------- RPM
step "RPM: rpmbuild"
RPMTOP=$WORK/rpmbuild
rm -rf "$RPMTOP" && mkdir -p "$RPMTOP/SOURCES"
cp "$TARBALL" "$RPMTOP/SOURCES/"
# --nodeps: BuildRequires name RPM packages, which a Debian host's rpm database does not know
rpmbuild -bb --nodeps --define "_topdir $RPMTOP" --define "__python3 $SYSPY" \
    "$SRC/packaging/rpm/fedcloud-site.spec" >"$WORK/rpmbuild.log" 2>&1 \
    || { tail -40 "$WORK/rpmbuild.log"; fail "rpmbuild"; }
RPM=$(ls "$RPMTOP"/RPMS/noarch/fedcloud-site-"$VERSION"-*.noarch.rpm)
SITELIB=$(rpm --define "__python3 $SYSPY" --eval '%{?python3_sitelib}')
[ -n "$SITELIB" ] && [ "$SITELIB" != "%{?python3_sitelib}" ] \
    || SITELIB=$($SYSPY -Ic "import sysconfig; print(sysconfig.get_path('purelib', 'posix_prefix', vars={'base': '/usr'}))")
echo "built $(basename "$RPM")"
rpm -qip "$RPM" | sed -n '1,/^Description/p'

step "RPM: file list (rpm -qlp) against packaging/rpm/expected-files.txt"
rpm -qlp "$RPM" | $SYSPY "$SRC/packaging/check-package-files.py" "$SRC/packaging/rpm/expected-files.txt" \
    --source "$SRC" --var "sitelib=$SITELIB" --var "pyver=$PYVER" --var "version=$VERSION"
step "RPM: ownership and modes"
rpm -qlvp "$RPM" | grep -E ' /(etc|var)/' | grep -v '/site-packages/'
for path in /etc/fedcloud-site/fedcloud-site.yaml /var/lib/fedcloud-site /var/log/fedcloud-site \
            /var/spool/apel/outgoing /var/spool/perun/fedcloud-site; do
    line=$(rpm -qlvp "$RPM" | awk -v p="$path" '$NF == p')
    case "$line" in
        *" fedcloud "*|*" root     fedcloud "*) ;;
        *) fail "RPM: $path is not owned by the fedcloud user/group: $line" ;;
    esac
    case "$line" in
        -rw-r-----*|drwxr-x---*) ;;
        *) fail "RPM: $path is not 0640/0750: $line" ;;
    esac
done
rpm -qp --configfiles "$RPM" | grep -x /etc/fedcloud-site/fedcloud-site.yaml >/dev/null || fail "RPM: config not %config"
step "RPM: requirements (rpm -qp --requires) against packaging/rpm/expected-requires.txt"
rpm -qp --requires "$RPM" | $SYSPY "$SRC/packaging/check-package-files.py" \
    "$SRC/packaging/rpm/expected-requires.txt" --var "pyver=$PYVER" --var "version=$VERSION"
echo "weak dependencies:"; rpm -qp --recommends --suggests "$RPM" | sed 's/^/  /'
step "RPM: scriptlets"
rpm -qp --scripts "$RPM"
rpm -qp --scripts "$RPM" | grep 'useradd -r -g fedcloud' >/dev/null || fail "RPM: %pre does not create the fedcloud user"
if rpm -qp --scripts "$RPM" | grep -E 'systemctl[^|]* (start|restart) ' >/dev/null; then
    fail "RPM: scriptlets start units on install"
fi

# --------------------------------------------------------------------------------------------- DEB
step "DEB: dpkg-buildpackage -us -uc -b"
DEBTOP=$WORK/deb
rm -rf "$DEBTOP" && mkdir -p "$DEBTOP"
cp -a "$SRC" "$DEBTOP/$SRCNAME"
cp -a "$SRC/packaging/deb/debian" "$DEBTOP/$SRCNAME/debian"
if [ "${FCS_PKG_SKIP_APT:-0}" != 1 ]; then
    apt-get build-dep -y -q --no-install-recommends "$DEBTOP/$SRCNAME" >/dev/null
fi
(cd "$DEBTOP/$SRCNAME" && dpkg-buildpackage -us -uc -b) >"$WORK/debbuild.log" 2>&1 \
    || { tail -60 "$WORK/debbuild.log"; fail "dpkg-buildpackage"; }
DEB=$(ls "$DEBTOP"/fedcloud-site_"$VERSION"-*_all.deb)
echo "built $(basename "$DEB")"
dpkg-deb --info "$DEB" | sed -n '/Package:/,$p'

step "DEB: Depends (dpkg-deb -f Depends) against packaging/deb/expected-depends.txt"
# Debian 12's own packages and nothing more: setup.cfg's install_requires floors (for the pip path)
# must never become Depends that Debian 12 cannot satisfy
dpkg-deb -f "$DEB" Depends | tr ',' '\n' | sed 's/^ *//; s/ *$//' | grep . \
    | $SYSPY "$SRC/packaging/check-package-files.py" "$SRC/packaging/deb/expected-depends.txt"
step "DEB: file list (dpkg-deb -c) against packaging/deb/expected-files.txt"
dpkg-deb -c "$DEB" | $SYSPY "$SRC/packaging/check-package-files.py" "$SRC/packaging/deb/expected-files.txt" \
    --dpkg --source "$SRC" --var "version=$VERSION"

step "DEB: lintian"
set +e
lintian --info --display-level '>=info' --fail-on error "$DEB" >"$WORK/lintian.log" 2>&1
LINTIAN_STATUS=$?
set -e
cat "$WORK/lintian.log"
echo "lintian summary: $(grep -c '^E:' "$WORK/lintian.log") errors, $(grep -c '^W:' "$WORK/lintian.log") warnings," \
     "$(grep -c '^I:' "$WORK/lintian.log") info tags"
[ "$LINTIAN_STATUS" -eq 0 ] || fail "lintian reported errors"

# --------------------------------------------------------------------------------- install and run
step "DEB: apt-get install ./$(basename "$DEB")"
if dpkg -s fedcloud-site >/dev/null 2>&1; then
    echo "removing a fedcloud-site left installed by an earlier run"
    apt-get purge -y -q fedcloud-site >/dev/null
fi
(cd "$DEBTOP" && apt-get install -y -q "./$(basename "$DEB")") >"$WORK/install.log" 2>&1 \
    || { tail -40 "$WORK/install.log"; fail "apt-get install"; }
tail -3 "$WORK/install.log"
dpkg -s fedcloud-site | grep -E '^(Status|Version)'
# the daemons the installed package registers (entry points): each must have its unit, script, probe...
DAEMONS=$(/usr/bin/fedcloud-site daemons | tr '\n' ' ')
[ -n "$DAEMONS" ] || fail "fedcloud-site daemons lists no daemon"
echo "daemons: $DAEMONS"
id fedcloud
stat -c '%A %U:%G %n' /etc/fedcloud-site /etc/fedcloud-site/fedcloud-site.yaml /var/lib/fedcloud-site \
    /var/cache/fedcloud-site /var/log/fedcloud-site /var/spool/apel/outgoing /var/spool/perun/fedcloud-site
[ "$(stat -c '%U:%G %a' /var/lib/fedcloud-site)" = "fedcloud:fedcloud 750" ] || fail "state dir ownership"
[ "$(stat -c '%U:%G %a' /etc/fedcloud-site/fedcloud-site.yaml)" = "root:fedcloud 640" ] || fail "config mode"
for unit in $DAEMONS; do
    state=$(systemctl is-enabled "fedcloud-site-$unit.service" 2>/dev/null || true)
    case "$state" in enabled*) fail "fedcloud-site-$unit.service was enabled on install" ;; esac
done

step "installed CLI: /usr/bin/fedcloud-site"
/usr/bin/fedcloud-site --version
/usr/bin/fedcloud-site version
/usr/bin/fedcloud-site check-config >"$WORK/check-config.out"
head -3 "$WORK/check-config.out"
echo "... ($(wc -l <"$WORK/check-config.out") lines)"
# as the daemons run it: the fedcloud user must be able to read its configuration
runuser -u fedcloud -- /usr/bin/fedcloud-site --config /etc/fedcloud-site/fedcloud-site.yaml check-config >/dev/null
for daemon in $DAEMONS; do
    "/usr/bin/fedcloud-site-$daemon" --help >/dev/null
done
/usr/bin/fedcloud-site check --help >/dev/null
# a probe on a site where no daemon ran yet: one plugin line, CRITICAL (exit 2)
set +e
probe_line=$(/usr/bin/fedcloud-site check accounting)
probe_status=$?
set -e
echo "check accounting -> $probe_status: $probe_line"
[ "$probe_status" -eq 2 ] && [[ "$probe_line" == "CRITICAL - accounting: "* ]] || fail "installed probe output"
# the BDII provider hook: nothing rendered yet, so it prints nothing and says why (exit 1)
set +e
provider_out=$(/var/lib/bdii/gip/provider/fedcloud-site-cloudinfo-provider 2>&1)
provider_status=$?
set -e
echo "BDII provider hook -> $provider_status: $provider_out"
[ "$provider_status" -eq 1 ] || fail "BDII provider hook"
# the BDII's LDAP tool wrapper, as an unprivileged user: -h/-p must reach the OpenLDAP 2.5 tools as -H
# (a refused connection to a closed loopback port, not "invalid option")
LEGACY_TOOLS=/usr/libexec/fedcloud-site/bdii-ldap-tools
for tool in ldapsearch ldapadd ldapmodify ldapdelete; do
    [ "$(readlink -f "$LEGACY_TOOLS/$tool")" = /usr/libexec/fedcloud-site/ldap-legacy-options ] \
        || fail "$LEGACY_TOOLS/$tool is not a link to ldap-legacy-options"
done
set +e
legacy_out=$(setpriv --reuid=nobody --regid=nogroup --clear-groups -- env PATH="$LEGACY_TOOLS:$PATH" \
             sh -c 'ldapsearch -LLL -x -h 127.0.0.1 -p 9 -b o=grid -o nettimeout=5' 2>&1)
set -e
echo "ldapsearch -h 127.0.0.1 -p 9 through $LEGACY_TOOLS as nobody: $legacy_out"
case $legacy_out in
    *"Can't contact LDAP server"*) ;;
    *) fail "the installed ldap-legacy-options wrapper did not pass -h/-p on as -H" ;;
esac
if /usr/bin/fedcloud-site --config /nonexistent.yaml check-config >/dev/null 2>&1; then
    fail "check-config accepted a missing file"
fi

step "installed daemons on the distribution's libraries: every daemon once on the demo site"
DEMO=$WORK/demo
rm -rf "$DEMO" && mkdir -p "$DEMO"
cp "$SRC"/etc/fedcloud-site/demo* "$DEMO/"
sed -i "s#\.\./\.\./demo-output#$DEMO/out#g" "$DEMO/demo.yaml"
# the demo image subscription reads a signed list that scripts/demo.sh makes the same way
$SYSPY -m fedcloud_site.demo.pki "$DEMO/out/pki"
# ssm delivers to the demo's AMS simulator (the installed fedcloud_testing, on /usr/bin/python3), on a free port
AMS_PORT=$($SYSPY -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
sed -i "s#18443#$AMS_PORT#g" "$DEMO/demo.yaml"
PKI_OUT=$DEMO/out/pki
$SYSPY -m fedcloud_site.demo.ams --port "$AMS_PORT" --cert "$PKI_OUT/ams/servercert.pem" \
    --key "$PKI_OUT/ams/serverkey.pem" --token "$(cat "$PKI_OUT/ams/token")" --project accounting \
    --topic eu-egi-cloud-accounting --topic eu-egi-storage-accounting --topic demo-ip-records \
    --topic demo-accelerator-records --store "$DEMO/ams-received" --client-ca "$PKI_OUT/ca.pem" \
    --bind-cert "$PKI_OUT/host/hostcert.pem" >"$DEMO/ams-sim.log" 2>&1 &
AMS_PID=$!
for _ in $(seq 100); do
    grep -q '^ams_sim: serving' "$DEMO/ams-sim.log" 2>/dev/null && break
    kill -0 "$AMS_PID" 2>/dev/null || break
    sleep 0.2
done
grep -q '^ams_sim: serving' "$DEMO/ams-sim.log" || { cat "$DEMO/ams-sim.log"; fail "the demo AMS simulator did not start"; }
for daemon in $DAEMONS; do
    set +e
    /usr/bin/fedcloud-site --config "$DEMO/demo.yaml" "$daemon" once >"$DEMO/$daemon.log" 2>&1
    status=$?
    set -e
    echo "$daemon once -> $status: $(grep -o "event='run summary'.*" "$DEMO/$daemon.log" | tail -1 | cut -c1-150)"
    [ "$status" -eq 0 ] || { tail -20 "$DEMO/$daemon.log"; kill "$AMS_PID"; fail "installed $daemon daemon on the demo site"; }
done
kill "$AMS_PID" && wait "$AMS_PID" 2>/dev/null || true
delivered=$(find "$DEMO/ams-received" -name '*.msg' | wc -l)
echo "AMS simulator received $delivered signed accounting messages"
[ "$delivered" -gt 0 ] || fail "the installed ssm delivered nothing"
for probe in accounting infosys; do
    set +e
    line=$(/usr/bin/fedcloud-site --config "$DEMO/demo.yaml" check "$probe")
    status=$?
    set -e
    echo "check $probe -> $status: ${line:0:160}"
    [ "$status" -eq 0 ] || fail "installed '$probe' probe on the demo site"
done

step "installed probe on the distribution's libraries: check certs with an openssl-made CA"
PKI=$WORK/pki
rm -rf "$PKI" && mkdir -p "$PKI/certificates"
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$PKI/ca.key" -out "$PKI/ca.pem" -days 30 \
    -subj "/DC=org/DC=example/CN=CI Test CA" -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
openssl req -newkey rsa:2048 -nodes -keyout "$PKI/hostkey.pem" -out "$PKI/host.csr" \
    -subj "/DC=org/DC=example/CN=ci.example.org" 2>/dev/null
openssl x509 -req -in "$PKI/host.csr" -CA "$PKI/ca.pem" -CAkey "$PKI/ca.key" -CAcreateserial \
    -out "$PKI/hostcert.pem" -days 20 2>/dev/null
cp "$PKI/ca.pem" "$PKI/certificates/" && openssl rehash "$PKI/certificates"
set +e
certs_line=$(/usr/bin/fedcloud-site check certs --certificate "$PKI/hostcert.pem" --key "$PKI/hostkey.pem" \
             --capath "$PKI/certificates" --warning 10d --critical 5d)
certs_status=$?
set -e
echo "check certs -> $certs_status: $certs_line"
[ "$certs_status" -eq 0 ] || fail "installed 'check certs' on a valid certificate"

step "RPM payload: its CLI on this host's Python (dependencies from the .deb install)"
rm -rf "$WORK/rpmroot" && mkdir -p "$WORK/rpmroot"
(cd "$WORK/rpmroot" && rpm2cpio "$RPM" | cpio -idm --quiet)
PYTHONPATH="$WORK/rpmroot$SITELIB" $SYSPY "$WORK/rpmroot/usr/bin/fedcloud-site" --version
PYTHONPATH="$WORK/rpmroot$SITELIB" $SYSPY "$WORK/rpmroot/usr/bin/fedcloud-site" \
    --config "$WORK/rpmroot/etc/fedcloud-site/fedcloud-site.yaml" check-config >/dev/null
echo "RPM payload check-config: OK"

step "logrotate -d /etc/logrotate.d/fedcloud-site"
mkdir -p /var/log/fedcloud-site && touch /var/log/fedcloud-site/check.log
logrotate -d /etc/logrotate.d/fedcloud-site 2>&1 | grep -E 'error|rotating pattern|considering' || true
if logrotate -d /etc/logrotate.d/fedcloud-site 2>&1 | grep -i '^error' >/dev/null; then
    fail "logrotate configuration"
fi
rm -f /var/log/fedcloud-site/check.log

# ----------------------------------------------------------------------------------------- systemd
step "systemd-analyze verify (installed units)"
UNITDIR=/lib/systemd/system
for unit in $DAEMONS; do
    systemd-analyze verify "$UNITDIR/fedcloud-site-$unit.service"
    echo "fedcloud-site-$unit.service: verify OK"
done
systemd-analyze verify "$UNITDIR/fedcloud-site.target" && echo "fedcloud-site.target: verify OK"
for unit in "$SRC"/systemd/*; do
    cmp -s "$unit" "$UNITDIR/$(basename "$unit")" || fail "installed $(basename "$unit") differs from systemd/"
done

step "systemd-analyze security --offline=true (exposure must be <= $MAX_EXPOSURE)"
worst=0
for unit in $DAEMONS; do
    line=$(systemd-analyze security --offline=true "$UNITDIR/fedcloud-site-$unit.service" 2>&1 \
           | grep 'Overall exposure level')
    score=$(echo "$line" | sed -E 's/.*: ([0-9.]+) .*/\1/')
    echo "fedcloud-site-$unit.service: exposure $score ($(echo "$line" | awk '{print $(NF-1)}'))"
    awk -v s="$score" -v m="$MAX_EXPOSURE" 'BEGIN { exit !(s <= m) }' \
        || fail "fedcloud-site-$unit.service exposure $score > $MAX_EXPOSURE"
    worst=$(awk -v s="$score" -v w="$worst" 'BEGIN { print (s > w ? s : w) }')
done
echo "worst exposure: $worst"

# ------------------------------------------------------------------------------------------- purge
step "DEB: apt-get purge fedcloud-site"
apt-get purge -y -q fedcloud-site >"$WORK/purge.log" 2>&1 || { cat "$WORK/purge.log"; fail "purge"; }
grep -E "^(Removing|Purging)" "$WORK/purge.log" || true
if dpkg -s fedcloud-site >/dev/null 2>&1 && ! dpkg -s fedcloud-site | grep 'Status: deinstall ok config-files' >/dev/null; then
    fail "fedcloud-site still installed after purge"
fi
dpkg -l fedcloud-site 2>/dev/null | grep '^[pr][ic]' >/dev/null && fail "fedcloud-site not purged: $(dpkg -l fedcloud-site | tail -1)"
for path in /usr/bin/fedcloud-site /etc/fedcloud-site /var/lib/fedcloud-site /var/cache/fedcloud-site \
            /var/log/fedcloud-site /usr/lib/python3/dist-packages/fedcloud_site "$UNITDIR/fedcloud-site.target" \
            /usr/libexec/fedcloud-site \
            "$UNITDIR/fedcloud-site-accounting.service"; do
    [ ! -e "$path" ] || fail "$path left behind after purge"
done
echo "purged cleanly (the fedcloud system user is kept, as Debian policy recommends)"

step "packaging checks passed"
echo "RPM: $(basename "$RPM")  DEB: $(basename "$DEB")  worst systemd exposure: $worst"
if [ "${FCS_PKG_KEEP:-0}" != 1 ] && [ -z "${FCS_PKG_WORKDIR:-}" ]; then
    rm -rf "$WORK"
fi
