#!/usr/bin/env bash
# The signal sweep: SIGINT or SIGTERM at HARNESS_SIGNAL_OFFSETS seeded moments (default 20) of each command's
# phases (`harness run`, `up`, `chaos run`, `load run --processes 2`, `check saga`, `pyramid`); each must stop
# within 10 s with 130 or 143 and leave nothing running. Two offsets per command run in the e2e level;
# this runs the rest, on demand and nightly. A failure prints its seed and delay, to replay it with
# HARNESS_SIGNAL_SEED. Expects the project's virtual environment first on PATH.
set -uo pipefail
cd "$(dirname "$0")/.."
export HARNESS_SIGNAL_OFFSETS=${HARNESS_SIGNAL_OFFSETS:-20}
export HARNESS_SIGNAL_SEED=${HARNESS_SIGNAL_SEED:-$RANDOM}
export PACT_DO_NOT_TRACK=true
echo "::: signal sweep: ${HARNESS_SIGNAL_OFFSETS} offsets per command, seed ${HARNESS_SIGNAL_SEED}"
python -m pytest tests/e2e/test_signals.py -q -p no:cacheprovider "$@"
