#!/usr/bin/env bash
# Conformance with the official Tinker Python SDK: installs pinned SDK
# versions from PyPI into venvs, then runs trainer's TestTinkerSDKConformance
# for each, which serves the embedded model on loopback, runs
# scripts/tinker_conformance.py (the SDK) and the Go client through the same
# scenario and compares their numbers.
#
#   0.24.1  sends forward_backward as JSON (the server's client config says
#           proto_write_fwdbwd=false) and reads results as protobuf or JSON
#   0.38.0  always sends forward_backward as protobuf and reads forward_backward
#           and sample results only as protobuf
#
# Skips (exit 0, with a message) when python3, venv or PyPI is unavailable.
# TINKER_VENV_DIR holds the venvs [/tmp/asearcher-tinker]; TINKER_SDK_VERSIONS
# overrides the list.
set -u
cd "$(dirname "$0")/.."
versions=${TINKER_SDK_VERSIONS:-"0.24.1 0.38.0"}
root=${TINKER_VENV_DIR:-/tmp/asearcher-tinker}

skip() {
	echo "tinker conformance: SKIPPED: $*"
	exit 0
}

command -v python3 >/dev/null 2>&1 || skip "python3 is not installed"
status=0
for v in $versions; do
	venv="$root/venv-$v"
	if ! "$venv/bin/python" -c "import tinker, sys; sys.exit(tinker.__version__ != '$v')" >/dev/null 2>&1; then
		python3 -m venv "$venv" >/dev/null 2>&1 || skip "python3 -m venv failed (install python3-venv)"
		"$venv/bin/python" -m pip install --quiet --disable-pip-version-check "tinker==$v" ||
			skip "pip could not install tinker==$v from PyPI"
	fi
	echo "tinker conformance: SDK $v"
	TINKER_CONFORMANCE_PYTHON="$venv/bin/python" go test -count=1 -run 'TestTinkerSDKConformance' -v ./trainer/ || status=1
done
exit $status
