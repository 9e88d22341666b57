#!/usr/bin/env bash
# Peak RSS of `asearcher serve model` under a burst of large request bodies
# (issue 12): 4 concurrent /generate bodies of SIZE_MB megabytes of
# input_ids ("1,1,1,..."), sent with curl on loopback. Prints the server's
# VmHWM (peak RSS) before and after, and each request's status code.
#
#   scripts/serve_memory_burst.sh [SIZE_MB [ids|text|chat [extra serve model flags...]]]
#
# ids sends {"input_ids": [1,1,...]} to /generate, text sends {"text": "hello
# hello ..."} to /generate, chat one user message of that text to
# /v1/chat/completions.
#
# With the default --max-body-bytes (16 MiB) a 98 MB body is refused by its
# Content-Length (413) before it is read; SIZE_MB=16 sends bodies just under
# the cap, which are read, decoded and rejected (the prompt is longer than
# the context), under the --max-inflight-bytes admission bound.
set -euo pipefail
cd "$(dirname "$0")/.."
size_mb=${1:-98}
kind=${2:-ids}
shift 2 || shift $# || true
work=$(mktemp -d)
trap 'kill $pid 2>/dev/null || true; wait $pid 2>/dev/null || true; rm -rf "$work"' EXIT
go build -o "$work/asearcher" ./cmd/asearcher
port=$((31000 + RANDOM % 2000))
"$work/asearcher" serve model --init tiny --addr "127.0.0.1:$port" "$@" 2>"$work/log" &
pid=$!
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/health" >/dev/null && break; sleep 0.2; done
# Just under size_mb MiB (the JSON framing adds 19 bytes).
python3 - "$work/body.json" "$size_mb" "$kind" <<'PY'
import sys
size, kind = int(sys.argv[2]) * 1024 * 1024 - 64, sys.argv[3]
with open(sys.argv[1], "w") as f:
    if kind == "ids":
        f.write('{"input_ids":[' + "1," * (size // 2) + '1]}')
    elif kind == "text":
        f.write('{"text":"' + "hello " * (size // 6) + '"}')
    else:
        f.write('{"messages":[{"role":"user","content":"' + "hello " * (size // 6) + '"}],"max_tokens":1}')
PY
path=/generate
[ "$kind" = chat ] && path=/v1/chat/completions
hwm() { awk '/VmHWM/ {print $2/1024 " MB"}' "/proc/$pid/status"; }
echo "body: $kind, $(stat -c %s "$work/body.json") bytes × 4 concurrent to $path"
echo "peak RSS before: $(hwm)"
for i in 1 2 3 4; do
  curl -s -o "$work/out$i" -w "request $i: %{http_code} in %{time_total}s\n" -H 'Content-Type: application/json' \
    --data-binary "@$work/body.json" "http://127.0.0.1:$port$path" &
done
wait $(jobs -p | grep -v "^$pid$") 2>/dev/null || true
sleep 0.5
echo "peak RSS after:  $(hwm)"
head -c 200 "$work/out1"; echo
