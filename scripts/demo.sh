#!/usr/bin/env bash
# Demo on the embedded static backend: install fedcloud-site, run every daemon once on
# etc/fedcloud-site/demo.yaml and show what each produced. No cloud needed.
# Usage: bash scripts/demo.sh
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install -q ".[all]" >/dev/null
CONFIG=etc/fedcloud-site/demo.yaml
OUT=demo-output
rm -rf "$OUT"
# a throw-away CA with the endorser, site host and AMS server credentials, and a signed image list (offline)
python3 -m fedcloud_site.testing.demo_pki "$OUT/pki"
fedcloud-site --version
fedcloud-site --config "$CONFIG" check-config >/dev/null && echo "configuration OK: $CONFIG"
status=0
for daemon in accounting ssm cloudinfo images perun; do
  echo
  echo "===== fedcloud-site $daemon once"
  fedcloud-site --config "$CONFIG" "$daemon" once || { rc=$?; echo "($daemon exited with status $rc)"; status=1; }
done
echo
echo "===== what the daemons produced (in $OUT/)"
if [ -d "$OUT/outgoing" ]; then
  echo "--- accounting: messages in the outgoing dirq queue"
  find "$OUT/outgoing" -type f ! -name '*.lck' | sort | head -5 | while read -r f; do echo "## $f"; head -c 1500 "$f" | head -25; echo; done
fi
if [ -d "$OUT/cloudinfo/cache" ]; then
  echo "--- cloudinfo: GLUE2 LDIF (first entries)"
  find "$OUT/cloudinfo/cache" -name '*.ldif' | head -1 | xargs -r head -40
fi
echo "--- images: registered images"
fedcloud-site --config "$CONFIG" images status 2>/dev/null || true
echo "--- perun: synchronised users"
fedcloud-site --config "$CONFIG" perun status 2>/dev/null || true
exit "$status"
