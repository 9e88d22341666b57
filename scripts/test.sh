#!/usr/bin/env bash
# The test command from README.md, and what CI runs (.ci/run calls this).
# It installs what it needs from the package registries: Go modules, the
# pinned staticcheck, and Python packages for the conformance tests.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

step "gofmt"
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
if [ -n "$unformatted" ]; then
  echo "gofmt would change these files (run gofmt -w):"; echo "$unformatted"; exit 1
fi

step "go vet"
go vet ./...

step "staticcheck"
go run honnef.co/go/tools/cmd/staticcheck@v0.8.2 ./...

step "go test -race"
# Without ASEARCHER_SMOLLM2_GGUF the real-model test skips here; it runs
# once, without the race detector, in the next step.
ASEARCHER_SMOLLM2_GGUF= go test -race -timeout 30m ./...

step "SmolLM2-135M fidelity against transformers (real GGUF)"
if gguf_file=$(bash scripts/fetch_smollm2.sh); then
  ASEARCHER_SMOLLM2_GGUF=$gguf_file go test -count=1 -timeout 10m -run 'TestSmolLM2' -v ./gguf | grep -E '^(---|ok|FAIL|PASS)|smollm2_test' 
else
  echo "SmolLM2 fidelity: SKIPPED (the GGUF is not cached and could not be fetched)"
fi

step "tinker SDK conformance"
bash scripts/tinker_conformance.sh

step "openai SDK conformance"
bash scripts/openai_conformance.sh

step "SkyRL Tinker trainer conformance (cached venv; see docs/cluster.md)"
bash scripts/skyrl_conformance.sh
