#!/usr/bin/env bash
# Runs page_test.mjs against fake_server.py twice: the page at / with the default stream
# path, and under a sub-path (/logs/, as behind a reverse proxy) with stream path
# /events/live. Needs python3, node and Debian's chromium. Screenshots go to $SHOTS if set.
set -euo pipefail
cd "$(dirname "$0")"
command -v chromium >/dev/null || { echo "needs chromium (apt-get install -y chromium)" >&2; exit 1; }
[ -d node_modules/playwright-core ] || npm install --no-audit --no-fund >/dev/null
tmp=$(mktemp -d)
pid=
trap '[ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$tmp"' EXIT
status=0
run() { # PREFIX STREAM_PATH
  python3 fake_server.py --port 0 --prefix "$1" --stream-path "$2" >"$tmp/out" 2>&1 &
  pid=$!
  for _ in $(seq 50); do grep -q listening "$tmp/out" && break; sleep 0.1; done
  local port
  port=$(awk '/listening/ {print $2}' "$tmp/out")
  echo "== page at $1/ stream $1$2"
  node page_test.mjs --base "http://127.0.0.1:$port$1/" --stream-path "$2" ${SHOTS:+--shots "$SHOTS"} || status=1
  kill "$pid"; wait "$pid" 2>/dev/null || true; pid=
}
run "" /stream
run /logs /events/live
exit $status
