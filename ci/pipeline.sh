#!/usr/bin/env bash
# The pipeline: lint, type check, then every level of the test pyramid in its own pytest run, bottom up.
# Expects the project's virtual environment first on PATH (README's test command arranges that).
# Each level that has a folder under tests/ must collect and pass tests: pytest's exit code 5 (nothing
# collected) fails the pipeline like any other failure. Wall time per stage is printed at the end.
set -uo pipefail
cd "$(dirname "$0")/.."

export PACT_DO_NOT_TRACK=true
export PYTHONDONTWRITEBYTECODE=1
LEVELS=(unit integration contract fuzz chaos load e2e)
declare -a SUMMARY=()
status=0

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

stage ruff ruff check .
stage format ruff format --check .
stage mypy mypy
for level in "${LEVELS[@]}"; do
  if [ -d "tests/${level}" ]; then
    stage "$level" python -m pytest "tests/${level}" -q
  fi
done

echo
echo "::: pipeline summary"
printf '%s\n' "${SUMMARY[@]}"
exit "$status"
