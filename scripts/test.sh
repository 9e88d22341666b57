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
go test -race -timeout 30m ./...

step "tinker SDK conformance"
bash scripts/tinker_conformance.sh
