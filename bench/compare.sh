#!/usr/bin/env bash
# compare.sh (make bench-compare): the static route against the
# database-backed routes, with coalescing on and off, in one go.
#
# For each server (storefront --coalesce=true, then --coalesce=false, on the
# same seeded data) and each route (/_bench/static, /users/{id} uniform over
# 1..1M, /products/{id} and /inventory/{id} uniform over 1..100k, the
# catalog-zipf mix) and each connection count: a warm-up, a closed-model
# run for the maximum rate, then an open-model run at half of it for p99.
# Before each database-backed route's closed run, that route and the static
# answers of the same size (the user, product or stock answer, or
# catalog-zipf's mix of them, held in memory) take turns in short closed
# runs (--pairs N: N runs of the route, each between two static runs;
# --pair-seconds S long), so that each of its rates is compared with static
# rates taken seconds before and after it: this machine's speed drifts over
# minutes by up to a half, more than the difference being measured
# (--no-pairs skips these runs).
# Around every run, bench/proccpu reads utime+stime of storefront and of
# every PostgreSQL process (the postmaster and its children) from
# /proc/<pid>/stat, and the load generator's rusage: CPU µs per request =
# CPU seconds / answers other than 5xx. storefront's VmRSS is sampled
# every 100 ms. PostgreSQL's buffers are prewarmed after each start.
#
# Memory, on fresh servers: 10,000 idle keep-alive connections (bench/conns)
# -> storefront's RSS; 256 busy connections (closed model, users-uniform)
# -> RSS peak minus RSS before.
#
# Prints a markdown table with the issue's targets; writes it to
# bench/results/<timestamp>/compare.md, everything to compare.json, and
# loadgen's reports to one directory per run.
#
#   make bench-compare
#   bench/compare.sh --wrk                    # wrk's closed-model rate beside loadgen's
#   bench/compare.sh --connections "256 64"   # both connection counts
#   bench/compare.sh --profile                # CPU profile of storefront during each closed run
#   bench/compare.sh --routes "static users-uniform" --closed 5 --open 5 --no-memory
#   bench/compare.sh --server-flags ''       # storefront's defaults, admission control included
#   bench/compare.sh --rounds 3               # three open-model runs per route, the table shows the median
#
# --rounds N repeats each route's open-model run at half its maximum rate N
# times: the first right after its closed run, the others after every route
# of that server has run once, round by round, so that they meet different
# minutes of a machine whose speed drifts. The table reports the run with
# the median p99 (the higher of the two middle ones for an even N) and the
# range; the targets show the median and the worst round.
#
# storefront runs with --shed=false by default (when it has that flag): this
# compares the cost of the request path, and admission control answering
# most of a closed-model load with an instant 503 would measure something
# else. "req/s" counts answers other than 5xx; CPU is per such answer.
#
# As root it puts PostgreSQL's shared memory on huge pages for the run
# (vm.nr_hugepages, put back at exit; --no-huge-pages: not), see
# bench/README.md "Huge pages for PostgreSQL".
#
# About 9½ minutes with the defaults (+1½ with --wrk, +6 per extra
# connection count, +2½ per extra round). Loopback only; every process it starts is stopped by
# pid on exit, Ctrl-C included.
set -euo pipefail

CLOSED_S=${CLOSED_S:-10}
OPEN_S=${OPEN_S:-15}
WARMUP_S=${WARMUP_S:-3}
CONNS_LIST=${CONNS_LIST:-256}
ROUTES=${ROUTES:-"static users-uniform products-uniform inventory-uniform catalog-zipf"}
IDLE_CONNS=${IDLE_CONNS:-10000}
BUSY_CONNS=${BUSY_CONNS:-256}
BUSY_S=${BUSY_S:-10}
MEMORY=${MEMORY:-1}
WRK=${WRK:-0}
PROFILE=${PROFILE:-0}
PAIRS=${PAIRS:-3}
PAIR_S=${PAIR_S:-4}
ROUNDS=${ROUNDS:-1}
SERVER_FLAGS=${SERVER_FLAGS-default}

usage() {
	sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
	echo "flags: --closed SECONDS ($CLOSED_S) --open SECONDS ($OPEN_S) --warmup SECONDS ($WARMUP_S)"
	echo "       --connections 'N M' ($CONNS_LIST) --routes 'A B' ($ROUTES)"
	echo "       --idle-conns N ($IDLE_CONNS) --busy-conns N ($BUSY_CONNS) --busy SECONDS ($BUSY_S) --no-memory"
	echo "       --pairs N ($PAIRS) --pair-seconds S ($PAIR_S) --no-pairs (--pairs 0)"
	echo "       --rounds N ($ROUNDS) --wrk --profile --no-huge-pages --server-flags 'FLAGS' (default: --shed=false)"
	echo "env:   BENCH_DATA_DIR, BENCH_USERS, BENCH_PRODUCTS"
}

while [ $# -gt 0 ]; do
	case $1 in
	--closed) CLOSED_S=$2; shift ;;
	--open) OPEN_S=$2; shift ;;
	--warmup) WARMUP_S=$2; shift ;;
	--connections) CONNS_LIST=$2; shift ;;
	--routes) ROUTES=$2; shift ;;
	--idle-conns) IDLE_CONNS=$2; shift ;;
	--busy-conns) BUSY_CONNS=$2; shift ;;
	--busy) BUSY_S=$2; shift ;;
	--no-memory) MEMORY=0 ;;
	--no-pairs) PAIRS=0 ;;
	--pairs) PAIRS=$2; shift ;;
	--pair-seconds) PAIR_S=$2; shift ;;
	--rounds) ROUNDS=$2; shift ;;
	--wrk) WRK=1 ;;
	--no-huge-pages) HUGE_PAGES=0 ;;
	--profile) PROFILE=1 ;;
	--server-flags) SERVER_FLAGS=$2; shift ;;
	-h | --help) usage; exit 0 ;;
	*) usage >&2; exit 2 ;;
	esac
	shift
done

case $ROUNDS in '' | *[!0-9]* | 0) echo "compare.sh: --rounds wants a whole number of at least 1, not '$ROUNDS'" >&2; exit 2 ;; esac
case $PAIRS in '' | *[!0-9]*) echo "compare.sh: --pairs wants a whole number (0: none), not '$PAIRS'" >&2; exit 2 ;; esac
case $PAIR_S in '' | *[!0-9]* | 0) echo "compare.sh: --pair-seconds wants a whole number of at least 1, not '$PAIR_S'" >&2; exit 2 ;; esac

# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"
bench_init
bench_start
if [ "$PROFILE" = 1 ]; then ADMIN_ADDR=127.0.0.1:0; fi
if [ "$SERVER_FLAGS" = default ]; then
	SERVER_FLAGS=
	if "$BIN/storefront" serve --help 2>&1 | grep -q -- '^ *-shed$'; then SERVER_FLAGS=--shed=false; fi
fi
read -ra server_flags <<<"$SERVER_FLAGS"
max_conns=$BUSY_CONNS
for c in $CONNS_LIST; do max_conns=$((c > max_conns ? c : max_conns)); done
# conns holds IDLE_CONNS sockets, storefront as many plus its pool and files.
raise_nofile $((IDLE_CONNS + max_conns + 2048))
warn_if_busy
machine_json >"$OUT/machine.json"
echo '{}' >"$OUT/memory.json"

# memory_idle: a fresh server, IDLE_CONNS keep-alive connections that each
# made one request, then idle; storefront's RSS before and with them, and
# how many of them it still held (null when conns could not tell).
memory_idle() {
	local dir=$OUT/memory-idle pid rss0 rss i alive
	mkdir -p "$dir"
	start_server memory-idle "${server_flags[@]}"
	sleep 1
	rss0=$(server_rss_kb)
	log "memory: $IDLE_CONNS idle keep-alive connections (RSS before: $((rss0 / 1024)) MB)"
	"$TOOLS/conns" --addr "$SERVER_ADDR" --n "$IDLE_CONNS" --hold 120s >"$dir/conns.txt" 2>"$dir/conns.err" &
	pid=$!
	STARTED_PIDS+=("$pid")
	for ((i = 0; i < 1200; i++)); do
		grep -q '^open ' "$dir/conns.txt" && break
		running "$pid" || die "conns exited: $(cat "$dir/conns.err")"
		sleep 0.1
	done
	grep -q '^open ' "$dir/conns.txt" || die "conns did not open $IDLE_CONNS connections within 120 s"
	sleep 3 # let the server settle: goroutines parked, buffers released
	rss=$(server_rss_kb)
	stop_pid "$pid" 10
	alive=$(sed -n 's/^alive \([0-9]*\) of.*/\1/p' "$dir/conns.txt")
	stop_server
	jq --argjson n "$IDLE_CONNS" --argjson open "$(sed -n 's/^open //p' "$dir/conns.txt")" \
		--argjson alive "${alive:-null}" --argjson before "$rss0" --argjson with "$rss" \
		'.idle = {connections: $n, opened: $open, alive_at_end: $alive,
		  rss_before_mb: ($before / 1024), rss_mb: ($with / 1024), delta_mb: (($with - $before) / 1024)}' \
		"$OUT/memory.json" >"$OUT/memory.json.new"
	mv "$OUT/memory.json.new" "$OUT/memory.json"
	log "memory: RSS with $IDLE_CONNS idle connections: $((rss / 1024)) MB ($(sed -n 's/^alive //p' "$dir/conns.txt") still open)"
}

# memory_busy: on the fresh coalescing server, BUSY_CONNS busy connections
# (closed model, users-uniform); RSS peak minus RSS before.
memory_busy() {
	local dir=$OUT/memory-busy
	log "memory: $BUSY_CONNS busy connections, users-uniform, ${BUSY_S}s"
	measure_loadgen "$dir" users-uniform "$BUSY_CONNS" "$BUSY_S"
	jq --slurpfile cpu "$dir/cpu.json" --slurpfile sum "$dir/summary.json" --argjson n "$BUSY_CONNS" \
		'.busy = {connections: $n, route: "users-uniform",
		  rate: (($sum[0].responses - ($sum[0].status_5xx // 0)) / $sum[0].duration_s),
		  rss_before_mb: ($cpu[0].server.rss_start_kb / 1024), rss_max_mb: ($cpu[0].server.rss_max_kb / 1024),
		  delta_mb: (($cpu[0].server.rss_max_kb - $cpu[0].server.rss_start_kb) / 1024)}' \
		"$OUT/memory.json" >"$OUT/memory.json.new"
	mv "$OUT/memory.json.new" "$OUT/memory.json"
	log "memory: RSS delta with $BUSY_CONNS busy connections: $(jq '.busy.delta_mb | round' "$OUT/memory.json") MB"
}

# profile_during DIR SECONDS: a CPU profile of storefront in the background.
profile_pid=
profile_during() {
	profile_pid=
	[ "$PROFILE" = 1 ] && [ -n "$SERVER_ADMIN" ] || return 0
	curl -s -o "$1/storefront.cpu.pprof" "http://$SERVER_ADMIN/debug/pprof/profile?seconds=$2" &
	profile_pid=$!
	STARTED_PIDS+=("$profile_pid")
}

profile_wait() {
	local i
	[ -n "$profile_pid" ] || return 0
	for ((i = 0; i < 100; i++)); do # the profile is shorter than the run: done, or nearly
		running "$profile_pid" || break
		sleep 0.1
	done
	stop_pid "$profile_pid" 1
	profile_pid=
}

# open_run SERVER ROUTE CONNS RATE ROUND: one open-model run, its row
# tagged with the round.
open_run() {
	local server=$1 route=$2 conns=$3 rate=$4 round=$5
	local name=$server-$route-c$conns
	local dir=$OUT/$name-open
	[ "$round" -gt 1 ] && dir=$OUT/$name-open-r$round
	log "$name: open ${OPEN_S}s at $rate req/s (round $round of $ROUNDS)"
	measure_loadgen "$dir" "$route" "$conns" "$OPEN_S" "$rate"
	rows+=("$(row "$server" "$route" "$conns" open "$dir" | jq -c --argjson r "$round" '.round = $r')")
}

# static_for ROUTE: the static scenario whose answers have the size of
# ROUTE's (bench/scenarios/static*.yaml; the API's /_bench/static/*).
static_for() {
	case $1 in
	products-uniform) echo static-product ;;
	inventory-uniform) echo static-inventory ;;
	catalog-zipf) echo static-catalog ;;
	*) echo static ;;
	esac
}

# interleave SERVER ROUTE CONNS: after a warm-up of the route, PAIRS
# closed runs of it, each between two closed runs of the static answers of
# the same size (static_for), all PAIR_S long: static, route, static,
# route, ..., static. Rows "pair-static" and "pair-route", numbered from 0
# in .pair; the table compares route run i with the mean of static runs i
# and i+1.
interleave() {
	local server=$1 route=$2 conns=$3 i dir static
	local name=$server-$route-c$conns
	static=$(static_for "$route")
	log "$name: warm-up ${WARMUP_S}s, then $PAIRS closed runs of ${PAIR_S}s, each between two of $static"
	warm_up "$route" "$conns" "$WARMUP_S"
	for ((i = 0; i <= PAIRS; i++)); do
		dir=$OUT/$name-pair$i-static
		measure_loadgen "$dir" "$static" "$conns" "$PAIR_S"
		rows+=("$(row "$server" "$route" "$conns" pair-static "$dir" | jq -c --argjson i "$i" --arg s "$static" '.pair = $i | .static_scenario = $s')")
		[ "$i" -lt "$PAIRS" ] || break
		dir=$OUT/$name-pair$i-route
		measure_loadgen "$dir" "$route" "$conns" "$PAIR_S"
		rows+=("$(row "$server" "$route" "$conns" pair-route "$dir" | jq -c --argjson i "$i" '.pair = $i')")
	done
}

rows=()
declare -A half_rate
if [ "$MEMORY" = 1 ]; then memory_idle; fi
for coalesce in on off; do
	flag=true
	[ "$coalesce" = off ] && flag=false
	server=coalesce-$coalesce
	start_server "$server" --coalesce="$flag" "${server_flags[@]}"
	if [ "$PAIRS" -gt 0 ]; then
		# 404s are answers to loadgen: a build without them would yield a ratio of nothing.
		for kind in user product inventory; do
			code=$(curl -s -o /dev/null -w '%{http_code}' "http://$SERVER_ADDR/_bench/static/$kind")
			[ "$code" = 200 ] || die "GET /_bench/static/$kind answered $code: this storefront build lacks the same-size static answers (--no-pairs to skip the interleaved runs)"
		done
	fi
	if [ "$MEMORY" = 1 ] && [ "$coalesce" = on ]; then memory_busy; fi
	for route in $ROUTES; do
		for conns in $CONNS_LIST; do
			name=$server-$route-c$conns
			if [ "$PAIRS" -gt 0 ] && [ "$route" != static ]; then
				interleave "$server" "$route" "$conns"
			fi
			log "$name: warm-up ${WARMUP_S}s, closed ${CLOSED_S}s"
			warm_up "$route" "$conns" "$WARMUP_S"
			mkdir -p "$OUT/$name-closed"
			profile_during "$OUT/$name-closed" $((CLOSED_S > 3 ? CLOSED_S - 2 : 1))
			measure_loadgen "$OUT/$name-closed" "$route" "$conns" "$CLOSED_S"
			profile_wait
			rows+=("$(row "$server" "$route" "$conns" closed "$OUT/$name-closed")")
			max_rate=$(jq '(.responses - (.status_5xx // 0)) / .duration_s' "$OUT/$name-closed/summary.json")

			if [ "$WRK" = 1 ]; then
				log "$name: wrk closed ${CLOSED_S}s"
				measure_wrk "$OUT/$name-closed-wrk" "$route" "$conns" "$CLOSED_S"
				rows+=("$(row "$server" "$route" "$conns" closed "$OUT/$name-closed-wrk")")
			fi

			half=$(jq -n --argjson r "$max_rate" '$r / 2 | floor')
			[ "$half" -ge 1 ] || die "$name: the closed run achieved $max_rate ok req/s; nothing to halve"
			half_rate[$name]=$half
			open_run "$server" "$route" "$conns" "$half" 1
		done
	done
	for ((round = 2; round <= ROUNDS; round++)); do
		for route in $ROUTES; do
			for conns in $CONNS_LIST; do
				open_run "$server" "$route" "$conns" "${half_rate[$server-$route-c$conns]}" "$round"
			done
		done
	done
	stop_server
done
restore_huge_pages
machine_json_finish "$OUT/machine.json"

printf '%s\n' "${rows[@]}" | jq -s \
	--slurpfile machine "$OUT/machine.json" --slurpfile memory "$OUT/memory.json" \
	--argjson users "$BENCH_USERS" --argjson products "$BENCH_PRODUCTS" \
	--arg conns "$CONNS_LIST" --arg routes "$ROUTES" --arg flags "$SERVER_FLAGS" \
	--argjson closed "$CLOSED_S" --argjson open "$OPEN_S" --argjson warmup "$WARMUP_S" --argjson rounds "$ROUNDS" \
	--argjson pairs "$PAIRS" --argjson pair_s "$PAIR_S" \
	--argjson elapsed $(($(date +%s) - started)) \
	'{machine: $machine[0],
	  config: {users: $users, products: $products, connections: ($conns | split(" ") | map(select(. != "") | tonumber)),
	    routes: ($routes | split(" ") | map(select(. != ""))), closed_s: $closed, open_s: $open, open_rounds: $rounds, warmup_s: $warmup, server_flags: $flags,
	    pairs: $pairs, pair_s: $pair_s},
	  elapsed_s: $elapsed, memory: $memory[0], rows: .}' >"$OUT/compare.json"
jq -r -L bench/jq -f bench/jq/compare-table.jq "$OUT/compare.json" >"$OUT/compare.md"
echo
cat "$OUT/compare.md"
echo
log "done in $(($(date +%s) - started)) s; results under $OUT/"
