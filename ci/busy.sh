#!/usr/bin/env bash
# The chaos, load and e2e levels while a CPU hog takes one of the two cores (stress-ng), as a busy shared CI
# runner would: a healthy system must still hold, and conclusively (an inconclusive run fails its test).
# Each run appends one line to ci-reports/flake-rate.tsv (date, mode, level, passed, failed, seconds), the
# figures docs/testing.md reports as the flake rate. Expects the project's virtual environment first on
# PATH, as ci/pipeline.sh does.
#
#   bash ci/busy.sh            the three levels, hogged, once
#   bash ci/busy.sh quiet 5    the same without the hog, five times (for the quiet side of the rate)
#   bash ci/busy.sh hogged 3   three hogged rounds in a row; exit 1 if any round failed
set -uo pipefail
cd "$(dirname "$0")/.."
MODE=${1:-hogged}
ROUNDS=${2:-1}
LEVELS=(${HARNESS_BUSY_LEVELS:-chaos load e2e})
OUT=${HARNESS_CI_REPORTS:-ci-reports}
export PACT_DO_NOT_TRACK=true PYTHONDONTWRITEBYTECODE=1
case "$MODE" in hogged|quiet) ;; *) echo "usage: ci/busy.sh [hogged|quiet] [rounds]" >&2; exit 2 ;; esac
if [ "$MODE" = hogged ] && ! command -v stress-ng >/dev/null 2>&1; then
  echo "ci/busy.sh: stress-ng is needed to take a core (apt-get install stress-ng)" >&2
  exit 3
fi
mkdir -p "$OUT/busy"
hog=""
stop_hog() { [ -n "$hog" ] && kill -TERM -- "-$hog" 2>/dev/null; [ -n "$hog" ] && wait "$hog" 2>/dev/null; hog=""; }
trap 'stop_hog' EXIT
trap 'stop_hog; exit 130' INT
trap 'stop_hog; exit 143' TERM
status=0
for round in $(seq 1 "$ROUNDS"); do
  if [ "$MODE" = hogged ]; then
    setsid stress-ng --cpu 1 --timeout 3600s --quiet &  # its own group, so it is stopped whole
    hog=$!
  fi
  for level in "${LEVELS[@]}"; do
    began=$SECONDS
    xml="$OUT/busy/${MODE}-${round}-${level}.xml"
    python -m pytest "tests/${level}" -q -p no:cacheprovider --junitxml="$xml" >"$OUT/busy/${MODE}-${round}-${level}.log" 2>&1
    rc=$?
    took=$((SECONDS - began))
    counts=$(python - "$xml" <<'PY'
import sys, xml.etree.ElementTree as ET
try:
    root = ET.parse(sys.argv[1]).getroot()
except (OSError, ET.ParseError):
    print("0\t0"); raise SystemExit
suites = [root] if root.tag == "testsuite" else list(root)
tests = sum(int(s.get("tests", 0)) for s in suites)
bad = sum(int(s.get("failures", 0)) + int(s.get("errors", 0)) for s in suites)
print(f"{tests - bad}\t{bad}")
PY
)
    printf '%s\t%s\t%s\t%s\t%s\n' "$(date -u +%FT%TZ)" "$MODE" "$level" "$counts" "$took" >>"$OUT/flake-rate.tsv"
    echo "::: round ${round} ${MODE} ${level}: exit ${rc}, $(echo "$counts" | tr '\t' ' ' | awk '{print $1" passed, "$2" failed"}'), ${took}s"
    [ "$rc" -eq 0 ] || status=1
  done
  stop_hog
done
exit "$status"
