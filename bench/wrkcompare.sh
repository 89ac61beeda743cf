#!/usr/bin/env bash
# wrkcompare.sh: loadgen's closed model against wrk, side by side, on a
# static local server (internal/load/testserver), with the same number of
# connections and the same duration. Prints requests/s and generator CPU
# per request (user+system, read from /proc/<pid>/stat of the process that
# waited for the generator) for both, and loadgen's share of wrk's rate.
#
#   bench/wrkcompare.sh                      # 64 connections, 10 s, 3 rounds
#   CONNECTIONS=16 DURATION=5 ROUNDS=1 bench/wrkcompare.sh
#
# wrk runs with THREADS threads (default: the number of CPUs); loadgen with
# GOMAXPROCS unset. Rounds alternate wrk and loadgen so that drift of a
# shared machine hits both. LOADGEN=path uses a prebuilt binary. Needs wrk
# (apt-get install wrk).
set -euo pipefail

CONNECTIONS=${CONNECTIONS:-64}
DURATION=${DURATION:-10}
ROUNDS=${ROUNDS:-3}
THREADS=${THREADS:-$(nproc)}
cd "$(dirname "$0")/.."

command -v wrk >/dev/null || { echo "wrkcompare: wrk is not installed (apt-get install wrk)" >&2; exit 2; }
tmp=$(mktemp -d)
server_pid=
cleanup() {
	[ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null || true
	rm -rf "$tmp"
}
trap cleanup EXIT

go build -o "$tmp/testserver" ./internal/load/testserver
if [ -n "${LOADGEN:-}" ]; then cp "$LOADGEN" "$tmp/loadgen"; else go build -o "$tmp/loadgen" ./cmd/loadgen; fi
"$tmp/testserver" >"$tmp/addr" &
server_pid=$!
for _ in $(seq 50); do [ -s "$tmp/addr" ] && break; sleep 0.1; done
addr=$(head -1 "$tmp/addr")
url="http://$addr/"
hz=$(getconf CLK_TCK)

# cpu_of CMD... runs CMD in a child shell and prints the CPU seconds of its
# children (fields 16 and 17 of /proc/<pid>/stat: cutime, cstime).
cpu_of() {
	bash -c '"$@" >/dev/null 2>&1; cut -d" " -f16,17 /proc/$$/stat' _ "$@" |
		awk -v hz="$hz" '{ printf "%.2f", ($1 + $2) / hz }'
}

printf 'server %s, %d connections, %d s, %d rounds, %d CPUs\n' "$url" "$CONNECTIONS" "$DURATION" "$ROUNDS" "$(nproc)"
printf '%-8s %5s %12s %10s %12s\n' generator round "requests/s" "cpu s" "cpu µs/req"
sum_w=0; sum_l=0; cpu_w=0; cpu_l=0; req_w=0; req_l=0
for round in $(seq "$ROUNDS"); do
	# wrk
	cpu=$(cpu_of sh -c "wrk -t$THREADS -c$CONNECTIONS -d${DURATION}s --latency '$url' >'$tmp/wrk.txt'")
	reqs=$(awk '/requests in/ {print $1}' "$tmp/wrk.txt")
	rate=$(awk '/Requests\/sec/ {print $2}' "$tmp/wrk.txt")
	printf '%-8s %5d %12.0f %10s %12.2f\n' wrk "$round" "$rate" "$cpu" "$(echo "$cpu $reqs" | awk '{print $1*1e6/$2}')"
	sum_w=$(echo "$sum_w $rate" | awk '{print $1+$2}'); cpu_w=$(echo "$cpu_w $cpu" | awk '{print $1+$2}'); req_w=$((req_w + reqs))

	# loadgen
	rm -rf "$tmp/out"
	cpu=$(cpu_of "$tmp/loadgen" run --quiet --target "$url" --connections "$CONNECTIONS" --duration "${DURATION}s" --out "$tmp/out")
	reqs=$(grep -o '"responses": [0-9]*' "$tmp/out/summary.json" | awk '{print $2}')
	rate=$(grep -o '"achieved_rate": [0-9.e+]*' "$tmp/out/summary.json" | awk '{print $2}')
	printf '%-8s %5d %12.0f %10s %12.2f\n' loadgen "$round" "$rate" "$cpu" "$(echo "$cpu $reqs" | awk '{print $1*1e6/$2}')"
	sum_l=$(echo "$sum_l $rate" | awk '{print $1+$2}'); cpu_l=$(echo "$cpu_l $cpu" | awk '{print $1+$2}'); req_l=$((req_l + reqs))
done
echo "$sum_w $sum_l $cpu_w $req_w $cpu_l $req_l $ROUNDS" | awk '{
	printf "mean     wrk %.0f req/s, %.2f cpu µs/req;  loadgen %.0f req/s, %.2f cpu µs/req\n", $1/$7, $3*1e6/$4, $2/$7, $5*1e6/$6
	printf "ratio    loadgen/wrk rate %.3f, cpu per request %.2fx\n", $2/$1, ($5/$6)/($3/$4)
}'
