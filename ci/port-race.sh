#!/usr/bin/env bash
# The port race, long form: the default stack (fast timings) started and stopped HARNESS_PORT_RACE_STARTS
# times (default 30) while another process churns loopback ports (tests/integration/_churn.py: held
# outgoing connections, port-0 binds and listeners); every start must win its ports. The integration level
# runs the short form (5 starts of a small stack with a command of the user's own); this one takes a few
# minutes, so it runs on demand. It prints "N of N starts ... in S s". Expects the project's virtual
# environment first on PATH.
set -uo pipefail
cd "$(dirname "$0")/.."
export HARNESS_PORT_RACE_STARTS=${HARNESS_PORT_RACE_STARTS:-30}
export HARNESS_PORT_RACE_TOPOLOGY=default
export PACT_DO_NOT_TRACK=true
echo "::: port race: ${HARNESS_PORT_RACE_STARTS} starts of the default stack while ports churn"
python -m pytest tests/integration/test_port_race.py -k every_start -s -q -p no:cacheprovider "$@"
