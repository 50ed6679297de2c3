#!/usr/bin/env bash
# Screenshot of a self-contained HTML report in headless Chromium (Debian: apt-get install chromium).
#
#   scripts/screenshot_report.sh REPORT.html [OUT.png] [WIDTH,HEIGHT]
#
# OUT defaults to docs/report-screenshot.png, the size to 1280,2400 (the top of the report).
# Every host name resolves to nothing, so the shot also proves the page needs no network.
set -euo pipefail

report=${1:?usage: scripts/screenshot_report.sh REPORT.html [OUT.png] [WIDTH,HEIGHT]}
out=${2:-docs/report-screenshot.png}
size=${3:-1280,2400}

browser=$(command -v chromium || command -v chromium-browser || command -v google-chrome || true)
if [[ -z "$browser" ]]; then
  echo "error: no chromium found; install it with: apt-get install -y chromium" >&2
  exit 1
fi
if [[ ! -f "$report" ]]; then
  echo "error: report $report does not exist; make one with: recsys report --run RUN_ID" >&2
  exit 1
fi

profile=$(mktemp -d)
log=$(mktemp)
trap 'rm -rf "$profile" "$log"' EXIT
mkdir -p "$(dirname "$out")"
target=$(realpath "$out")
rm -f "$target"

"$browser" --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
  --disable-background-networking --disable-component-update --disable-sync \
  --hide-scrollbars --host-resolver-rules="MAP * ~NOTFOUND" \
  --user-data-dir="$profile" --screenshot="$target" --window-size="$size" \
  "file://$(realpath "$report")" >"$log" 2>&1 || true

if [[ ! -s "$target" ]]; then
  echo "error: chromium wrote no screenshot; its output:" >&2
  cat "$log" >&2
  exit 1
fi
echo "screenshot written to $out"
