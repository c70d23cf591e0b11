#!/usr/bin/env bash
# Demo on the embedded static backend: install fedcloud-site, run every daemon once on
# etc/fedcloud-site/demo.yaml and show what each produced. No cloud needed: ssm delivers the accounting
# records, signed with a demo host certificate, to a local AMS simulator on https://127.0.0.1:18443.
# Installs into the project's virtual environment, .venv (scripts/venv.sh: PEP 668 keeps pip out of the
# distribution's python3), and runs everything from there.
# Usage: bash scripts/demo.sh
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/venv.sh
use_project_venv
pip_log=$(mktemp)
python3 -m pip install -q --disable-pip-version-check ".[all]" >"$pip_log" 2>&1 \
  || { cat "$pip_log" >&2; rm -f "$pip_log"; echo "installing fedcloud-site into .venv failed" >&2; exit 1; }
rm -f "$pip_log"
CONFIG=etc/fedcloud-site/demo.yaml
OUT=demo-output
rm -rf "$OUT"
# a throw-away CA with the endorser, site host and AMS server credentials, and a signed image list (offline)
python3 -m fedcloud_site.demo.pki "$OUT/pki"
# a local ARGO Messaging Service for ssm (port and project as in demo.yaml); it stores what it receives
AMS_PORT=18443
AMS_STORE=$OUT/ams-received
python3 -m fedcloud_site.demo.ams --port "$AMS_PORT" \
  --cert "$OUT/pki/ams/servercert.pem" --key "$OUT/pki/ams/serverkey.pem" \
  --token "$(cat "$OUT/pki/ams/token")" --project accounting \
  --topic eu-egi-cloud-accounting --topic eu-egi-storage-accounting \
  --topic demo-ip-records --topic demo-accelerator-records --store "$AMS_STORE" \
  --client-ca "$OUT/pki/ca.pem" --bind-cert "$OUT/pki/host/hostcert.pem" >"$OUT/ams-sim.log" 2>&1 &
AMS_PID=$!
stop_ams() { kill "$AMS_PID" 2>/dev/null && wait "$AMS_PID" 2>/dev/null; return 0; }
trap stop_ams EXIT
for _ in $(seq 50); do
  grep -q '^ams_sim: serving' "$OUT/ams-sim.log" 2>/dev/null && break
  kill -0 "$AMS_PID" 2>/dev/null || break
  sleep 0.2
done
grep '^ams_sim: serving' "$OUT/ams-sim.log" || { echo "the AMS simulator did not start:"; cat "$OUT/ams-sim.log"; }
fedcloud-site --version
fedcloud-site --config "$CONFIG" check-config >/dev/null && echo "configuration OK: $CONFIG"
status=0
# every registered daemon, in run order (accounting fills the queue the sender ships)
for daemon in $(fedcloud-site daemons); do
  echo
  echo "===== fedcloud-site $daemon once"
  fedcloud-site --config "$CONFIG" "$daemon" once || { rc=$?; echo "($daemon exited with status $rc)"; status=1; }
done
echo
echo "===== what the daemons produced (in $OUT/)"
if [ -n "$(find "$OUT/outgoing" -type f ! -name '*.lck' 2>/dev/null | head -1)" ]; then
  echo "--- accounting: messages still in the outgoing dirq queue"
  find "$OUT/outgoing" -type f ! -name '*.lck' | sort | head -5 | while read -r f; do echo "## $f"; head -c 1500 "$f" | head -25; echo; done
fi
echo "--- ssm: accounting messages signed and delivered to the AMS simulator (in $AMS_STORE/)"
for topic in "$AMS_STORE"/*/*/; do
  if [ -d "$topic" ]; then echo "$(find "$topic" -name "*.msg" | wc -l) messages on topic $(basename "$topic")"; fi
done
first=$(find "$AMS_STORE" -name '*.msg' 2>/dev/null | sort | head -1)
if [ -n "$first" ]; then
  echo "## first delivered message: $first, attributes $(tr -d ' \n' <"${first%.msg}.json")"
  head -c 1500 "$first" | head -30
  echo
fi
echo "--- ssm: outgoing queues after delivery"
fedcloud-site --config "$CONFIG" ssm status 2>/dev/null || true
if [ -d "$OUT/cloudinfo/cache" ]; then
  echo "--- cloudinfo: GLUE2 LDIF (first entries)"
  find "$OUT/cloudinfo/cache" -name '*.ldif' | head -1 | xargs -r head -40
fi
echo "--- images: registered images"
fedcloud-site --config "$CONFIG" images status 2>/dev/null || true
echo "--- perun: synchronised users"
fedcloud-site --config "$CONFIG" perun status 2>/dev/null || true
exit "$status"
