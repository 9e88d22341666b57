#!/usr/bin/env bash
# The exhaustive reliability suite: kill -9 at more random points and every
# damaged-file case (docs/reliability.md). Loopback only; stops by itself.
# ASEARCHER_RELIABILITY_SEED=N replays one kill schedule.
set -euo pipefail
cd "$(dirname "$0")/.."
ASEARCHER_RELIABILITY=1 go test -count=1 -run Reliability -timeout 30m "${@:-./...}"
