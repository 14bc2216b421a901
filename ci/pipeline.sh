#!/usr/bin/env bash
# The pipeline: lint, type check, then every level of the test pyramid in its own pytest run, bottom up
# (the chaos and e2e levels, which mostly wait, two at a time), then the pyramid matrix (behaviour x level, read from the levels' JUnit XML). The same stages as the
# jobs of ci/github-workflow.yml. Expects the project's virtual environment first on PATH (README's test
# command arranges that). Every folder under tests/ is a level and must collect and pass tests: pytest's
# exit code 5 (nothing collected) fails the pipeline like any other failure. Wall time per stage at the end.
# The whole seeded-bug catalogue is its own, longer job: `harness pyramid --mutants` (docs/testing.md);
# two seeded bugs run here, as a smoke check, in the e2e level.
set -uo pipefail
cd "$(dirname "$0")/.."

export PACT_DO_NOT_TRACK=true
export PYTHONDONTWRITEBYTECODE=1
REPORTS=${HARNESS_CI_REPORTS:-ci-reports}  # JUnit XML per level, and the pyramid report
ORDER=(unit integration contract fuzz chaos load e2e)
LEVELS=()
for level in "${ORDER[@]}"; do [ -d "tests/${level}" ] && LEVELS+=("$level"); done
for folder in tests/*/; do  # a level added since runs too, after the known ones (not _support folders)
  level=$(basename "$folder")
  [[ " ${ORDER[*]} " == *" ${level} "* || "$level" == _* || "$level" == .* ]] || LEVELS+=("$level")
done
declare -a SUMMARY=()
status=0
rm -rf "$REPORTS" && mkdir -p "$REPORTS/junit"

stage() {
  local name=$1; shift
  local began=$SECONDS
  echo "::: ${name}: $*"
  "$@"
  local rc=$?
  local took=$((SECONDS - began))
  if [ "$rc" -eq 0 ]; then
    SUMMARY+=("$(printf '%-12s ok      %4ss' "$name" "$took")")
  else
    [ "$rc" -eq 5 ] && echo "::: ${name}: no tests were collected (pytest exit 5), which counts as a failure"
    SUMMARY+=("$(printf '%-12s FAILED  %4ss (exit %s)' "$name" "$took" "$rc")")
    status=1
  fi
}

# System packages two levels need (Chromium: the reports in a browser; stress-ng: a core taken in the
# busy-machine tests), installed when missing on a machine where we may (root with apt-get).
missing=()
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v stress-ng >/dev/null 2>&1 || missing+=(stress-ng)
if [ "${#missing[@]}" -gt 0 ] && [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "::: installing ${missing[*]} (Debian packages the browser and busy-machine tests use)"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

stage ruff ruff check .
stage format ruff format --check .
stage mypy mypy
# Levels that mostly wait (experiments' pauses, fault windows, subprocesses) run two at a time: each in
# its own pytest, its own temporary folder and its own stacks, its output shown when both are done.
PAIRED=(${HARNESS_CI_PAIRED:-chaos e2e})
paired() { [[ " ${PAIRED[*]} " == *" $1 "* ]]; }
for level in "${LEVELS[@]}"; do
  paired "$level" || stage "$level" python -m pytest "tests/${level}" -q --junitxml="$REPORTS/junit/${level}.xml"
done
declare -a PIDS=() NAMES=()
began_pair=$SECONDS
for level in "${LEVELS[@]}"; do
  paired "$level" || continue
  echo "::: ${level}: python -m pytest tests/${level} (alongside ${PAIRED[*]}; output when all are done)"
  ( began=$SECONDS
    python -m pytest "tests/${level}" -q --junitxml="$REPORTS/junit/${level}.xml" >"$REPORTS/${level}.log" 2>&1
    echo "$? $((SECONDS - began))" >"$REPORTS/${level}.status" ) &
  PIDS+=($!); NAMES+=("$level")
done
for index in "${!PIDS[@]}"; do
  wait "${PIDS[$index]}"
  level=${NAMES[$index]}
  echo "::: ${level} (ran alongside ${PAIRED[*]}):"
  cat "$REPORTS/${level}.log"
  read -r rc took <"$REPORTS/${level}.status"
  if [ "$rc" -eq 0 ]; then
    SUMMARY+=("$(printf '%-12s ok      %4ss (paired)' "$level" "$took")")
  else
    [ "$rc" -eq 5 ] && echo "::: ${level}: no tests were collected (pytest exit 5), which counts as a failure"
    SUMMARY+=("$(printf '%-12s FAILED  %4ss (paired, exit %s)' "$level" "$took" "$rc")")
    status=1
  fi
done
[ "${#PIDS[@]}" -gt 0 ] && SUMMARY+=("$(printf '%-12s         %4ss (%s together)' "paired" "$((SECONDS - began_pair))" "${NAMES[*]}")")
stage pyramid harness pyramid --from "$REPORTS/junit" --report "$REPORTS/pyramid"

echo
echo "::: pipeline summary"
printf '%s\n' "${SUMMARY[@]}"
exit "$status"
