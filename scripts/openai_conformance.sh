#!/usr/bin/env bash
# Conformance with the official openai Python SDK: installs the pinned SDK
# from PyPI into a venv outside the clone, builds asearcher, makes a tiny
# random model (`asearcher model init`), serves it (`asearcher serve model`
# with --api-key-file) on loopback and runs scripts/openai_conformance.py:
# models.list/retrieve, chat and completions with logprobs (bytes as
# list[int], top_logprobs), n > 1, streaming with n > 1 and several prompts,
# echo loglikelihood as lm-eval-harness asks for it, stop strings and errors.
#
# Skips (exit 0, with a message) when python3, venv or PyPI is unavailable.
# OPENAI_VENV_DIR holds the venv [~/.cache/asearcher/openai-venv];
# OPENAI_SDK_VERSION overrides the pinned version.
set -u
cd "$(dirname "$0")/.."
version=${OPENAI_SDK_VERSION:-3.63.0}
venv=${OPENAI_VENV_DIR:-$HOME/.cache/asearcher/openai-venv}

skip() {
	echo "openai conformance: SKIPPED: $*"
	exit 0
}

command -v python3 >/dev/null 2>&1 || skip "python3 is not installed"
if ! "$venv/bin/python" -c "import openai, sys; sys.exit(openai.__version__ != '$version')" >/dev/null 2>&1; then
	python3 -m venv "$venv" >/dev/null 2>&1 || skip "python3 -m venv failed (install python3-venv)"
	"$venv/bin/python" -m pip install --quiet --disable-pip-version-check "openai==$version" ||
		skip "pip could not install openai==$version from PyPI"
fi

work=$(mktemp -d)
pid=""
cleanup() {
	if [ -n "$pid" ]; then kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; fi
	rm -rf "$work"
}
trap cleanup EXIT
go build -o "$work/asearcher" ./cmd/asearcher || exit 1
"$work/asearcher" model init --config tiny --out "$work/model" >/dev/null || exit 1
printf 'conformance-key\n' >"$work/key"
chmod 600 "$work/key"
# A port below Linux's ephemeral range (32768-60999), so outgoing
# connections of other programs cannot hold it; a port that is taken anyway
# is retried with another.
start_server() {
	port=$((20000 + RANDOM % 10000))
	"$work/asearcher" serve model --model "$work/model" --name tiny --addr "127.0.0.1:$port" \
		--api-key-file "$work/key" 2>"$work/server.log" &
	pid=$!
	for _ in $(seq 150); do
		curl -sf --max-time 2 "http://127.0.0.1:$port/health" >/dev/null 2>&1 && return 0
		if ! kill -0 "$pid" 2>/dev/null; then
			wait "$pid" 2>/dev/null
			pid=""
			grep -q 'address already in use' "$work/server.log" && return 2
			return 1
		fi
		sleep 0.2
	done
	return 1
}
started=""
for _ in 1 2 3 4 5; do
	start_server
	case $? in
	0) started=1; break ;;
	2) continue ;;
	*) break ;;
	esac
done
if [ -z "$started" ]; then
	cat "$work/server.log"
	echo "openai conformance: the server did not start"
	exit 1
fi
echo "openai conformance: SDK $version against serve model on 127.0.0.1:$port"
if ! "$venv/bin/python" scripts/openai_conformance.py "http://127.0.0.1:$port/v1" conformance-key tiny; then
	echo "--- server log"; tail -20 "$work/server.log"
	exit 1
fi
