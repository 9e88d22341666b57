#!/usr/bin/env bash
# Peak RSS and latency of `asearcher serve search` under the two loads of
# issues 12 and 14: a burst of 16 concurrent /retrieve requests of 512
# queries × topk 100 (return_scores true), and one Search-R1 GRPO batch of
# 2,560 queries × topk 3. Loopback only; every request is bounded, and the
# server is stopped at the end.
#
#   scripts/search_memory_bench.sh ASEARCHER_BINARY INDEX_DIR [burst|grpo] [PORT]
#   QUERY_WORDS="w1 … w24" scripts/search_memory_bench.sh …
#
# Prints one line: mode, baseline RSS, peak RSS (VmHWM), wall time of the
# load, HTTP codes and reply bytes. Needs curl and Linux /proc.
set -euo pipefail

bin=${1:?asearcher binary}
index=${2:?index directory}
mode=${3:-burst}
port=${4:-18431}
work=$(mktemp -d)
trap 'kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; rm -rf "$work"' EXIT

# Queries: three of 24 words each, varied so they do not repeat. QUERY_WORDS
# (24 space-separated words) suits another corpus, e.g. a synthetic one.
words=(history city river music film war school king church team season water
	island station player album village band party book family game state army)
if [[ -n ${QUERY_WORDS:-} ]]; then
	read -r -a words <<<"$QUERY_WORDS"
	((${#words[@]} == 24)) || { echo "QUERY_WORDS needs 24 words" >&2; exit 2; }
fi
body() { # body NQUERIES TOPK
	local n=$1 k=$2 i
	printf '{"queries": ['
	for ((i = 0; i < n; i++)); do
		((i > 0)) && printf ','
		printf '"the %s of %s %s %d"' "${words[i % 24]}" "${words[(i * 7 + 3) % 24]}" "${words[(i * 13 + 5) % 24]}" "$i"
	done
	printf '], "topk": %d, "return_scores": true}' "$k"
}

"$bin" serve search --index "$index" --addr "127.0.0.1:$port" >"$work/server.log" 2>&1 &
pid=$!
for _ in $(seq 100); do
	curl -sf "http://127.0.0.1:$port/health" >/dev/null 2>&1 && break
	sleep 0.1
done
curl -sf -o /dev/null "http://127.0.0.1:$port/retrieve" -d '{"queries": ["warm up"], "topk": 3}'
rss() { awk -v k="$1" '$1 == k":" {print $2}' "/proc/$pid/status"; }
base=$(rss VmRSS)

case $mode in
burst)
	body 512 100 >"$work/body.json"
	n=16
	;;
grpo)
	body 2560 3 >"$work/body.json"
	n=1
	;;
*)
	echo "mode must be burst or grpo" >&2
	exit 2
	;;
esac

start=$(date +%s.%N)
clients=()
for i in $(seq "$n"); do
	curl -s --max-time 300 -o "$work/reply$i" -w '%{http_code} %{size_download}\n' \
		"http://127.0.0.1:$port/retrieve" -H 'Content-Type: application/json' \
		--data-binary "@$work/body.json" >"$work/code$i" &
	clients+=($!)
done
wait "${clients[@]}"
end=$(date +%s.%N)
peak=$(rss VmHWM)
anon=$(rss RssAnon)
file=$(rss RssFile)
codes=$(cat "$work"/code* | awk '{print $1}' | sort | uniq -c | awk '{printf "%s×%s ", $1, $2}')
bytes=$(cat "$work"/code* | awk '{s += $2} END {print s}')
# VmHWM counts mapped index pages the queries touched (RssFile: page cache,
# shared and reclaimable) as well as the heap (RssAnon).
printf '%s: baseline %d MB, peak %d MB (after: anon %d MB, mapped file %d MB), load %.2f s, codes %s, reply bytes %d\n' \
	"$mode" $((base / 1024)) $((peak / 1024)) $((anon / 1024)) $((file / 1024)) "$(echo "$end - $start" | bc)" "$codes" "$bytes"
