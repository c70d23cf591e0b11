#!/usr/bin/env bash
# The whole test suite on a bare Debian 12 / Python >= 3.9 machine, as root:
# installs the real services the tests start (slapd, bdii, activemq, ...), the Python
# dependencies into the project's virtual environment (.venv, scripts/venv.sh: PEP 668 keeps pip
# out of the distribution's python3), then runs ruff, mypy, pytest and the packaging checks there.
# Usage: bash scripts/run-tests.sh [pytest args...]
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(
  openssl ca-certificates
  slapd ldap-utils bdii glue-schema          # real OpenLDAP + BDII + GLUE 2.0 schema
  activemq default-jre-headless             # real STOMP broker
  qemu-utils                                # image format conversion
  procps psmisc
  python3-venv                              # the project's virtual environment (Debian's python3)
)
if [ "${SKIP_APT:-0}" != "1" ]; then
  export DEBIAN_FRONTEND=noninteractive
  missing=()
  for pkg in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
  if [ "${#missing[@]}" -gt 0 ]; then
    apt-get update -q
    # slapd asks questions on install; answer none and keep its default database out of the way
    echo "slapd slapd/no_configuration boolean true" | debconf-set-selections
    apt-get install -y -q --no-install-recommends "${missing[@]}"
  fi
  # the tests start their own slapd/activemq on loopback ports; stop the distribution's ones if running
  (service slapd stop || true) >/dev/null 2>&1
  (service activemq stop || true) >/dev/null 2>&1
fi

. scripts/venv.sh
use_project_venv
python3 -m pip install -q --disable-pip-version-check --upgrade pip >/dev/null 2>&1 || true
python3 -m pip install -q --disable-pip-version-check -e ".[test]"

echo "== ruff"
python3 -m ruff check fedcloud_site tests benchmarks
echo "== mypy"
python3 -m mypy
echo "== pytest"
set +e
python3 -m pytest -q -ra -p no:cacheprovider "$@"
status=$?
set -e
if [ "$status" -eq 5 ]; then
  echo "pytest collected no tests: that is a failure" >&2
  exit 1
fi
[ "$status" -eq 0 ] || exit "$status"

if [ "${SKIP_PACKAGING:-0}" != "1" ] && [ -x packaging/ci-check.sh ]; then
  echo "== packaging"
  bash packaging/ci-check.sh
fi
echo "== all checks passed"
