#!/usr/bin/env bash
# Conformance with the official Tinker Python SDK: installs the pinned SDK
# from PyPI into a venv, then runs trainer's TestTinkerSDKConformance, which
# serves the embedded model on loopback, runs scripts/tinker_conformance.py
# (the SDK) and the Go client through the same scenario and compares them.
#
# Skips (exit 0, with a message) when python3, venv or PyPI is unavailable.
# TINKER_VENV picks the venv directory [/tmp/asearcher-tinker-venv].
set -u
TINKER_SDK_VERSION=0.24.1 # sends forward_backward as JSON when the server says proto_write_fwdbwd=false
cd "$(dirname "$0")/.."
venv=${TINKER_VENV:-/tmp/asearcher-tinker-venv}

skip() {
	echo "tinker conformance: SKIPPED: $*"
	exit 0
}

command -v python3 >/dev/null 2>&1 || skip "python3 is not installed"
if ! "$venv/bin/python" -c "import tinker, sys; sys.exit(tinker.__version__ != '$TINKER_SDK_VERSION')" >/dev/null 2>&1; then
	python3 -m venv "$venv" >/dev/null 2>&1 || skip "python3 -m venv failed (install python3-venv)"
	"$venv/bin/python" -m pip install --quiet --disable-pip-version-check "tinker==$TINKER_SDK_VERSION" ||
		skip "pip could not install tinker==$TINKER_SDK_VERSION from PyPI"
fi
echo "tinker conformance: SDK $("$venv/bin/python" -c 'import tinker; print(tinker.__version__)') in $venv"
TINKER_CONFORMANCE_PYTHON="$venv/bin/python" go test -count=1 -run 'TestTinkerSDKConformance' -v ./trainer/
