#!/usr/bin/env bash
# run.sh (make bench): the system benchmark. Starts storefront on its
# private PostgreSQL seeded with 1M users and 100k products (seeded once
# into BENCH_DATA_DIR, default bench/results/data, and reused), then for
# each scenario (users-uniform, catalog-zipf): a warm-up, a closed-model
# run for the maximum throughput, and an open-model run at half of that
# rate. Reports go to bench/results/<timestamp>/<scenario>-<model>/
# (summary.json, run.hlog, report.html, cpu.json); the table to bench.md,
# all rows to bench.json.
#
#   make bench
#   bench/run.sh --wrk                 # also wrk's closed-model rate, as a cross-check
#   bench/run.sh --closed 10 --open 15 --connections 64 --scenarios users-uniform
#   bench/run.sh --server-flags '--shed=false'   # extra flags for storefront serve
#
# storefront runs with its defaults (admission control included) unless
# --server-flags says otherwise. "ok req/s" counts answers other than 5xx,
# and the open-model rate is half of the closed model's ok rate.
#
# As root it puts PostgreSQL's shared memory on huge pages for the run
# (vm.nr_hugepages, put back at exit; --no-huge-pages: not), see
# bench/README.md "Huge pages for PostgreSQL".
#
# About 2 minutes with the defaults (2¾ with --wrk). Loopback only; every
# process it starts is stopped by pid on exit, Ctrl-C included.
set -euo pipefail

CLOSED_S=${CLOSED_S:-20}
OPEN_S=${OPEN_S:-30}
WARMUP_S=${WARMUP_S:-5}
CONNS=${CONNS:-256}
SCENARIOS=${SCENARIOS:-"users-uniform catalog-zipf"}
WRK=${WRK:-0}
SERVER_FLAGS=${SERVER_FLAGS:-}

usage() {
	sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
	echo "flags: --closed SECONDS ($CLOSED_S) --open SECONDS ($OPEN_S) --warmup SECONDS ($WARMUP_S)"
	echo "       --connections N ($CONNS) --scenarios 'A B' ($SCENARIOS) --wrk --no-huge-pages --server-flags 'FLAGS'"
	echo "env:   BENCH_DATA_DIR, BENCH_USERS, BENCH_PRODUCTS"
}

while [ $# -gt 0 ]; do
	case $1 in
	--closed) CLOSED_S=$2; shift ;;
	--open) OPEN_S=$2; shift ;;
	--warmup) WARMUP_S=$2; shift ;;
	--connections) CONNS=$2; shift ;;
	--scenarios) SCENARIOS=$2; shift ;;
	--wrk) WRK=1 ;;
	--no-huge-pages) HUGE_PAGES=0 ;;
	--server-flags) SERVER_FLAGS=$2; shift ;;
	-h | --help) usage; exit 0 ;;
	*) usage >&2; exit 2 ;;
	esac
	shift
done

# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"
bench_init
bench_start
raise_nofile $((CONNS * 2 + 1024))
warn_if_busy
machine_json >"$OUT/machine.json"

read -ra server_flags <<<"$SERVER_FLAGS"
start_server bench "${server_flags[@]}"

rows=()
for scenario in $SCENARIOS; do
	log "$scenario: warm-up ${WARMUP_S}s, $CONNS connections"
	warm_up "$scenario" "$CONNS" "$WARMUP_S"

	log "$scenario: closed model ${CLOSED_S}s, $CONNS connections"
	measure_loadgen "$OUT/$scenario-closed" "$scenario" "$CONNS" "$CLOSED_S"
	rows+=("$(row bench "$scenario" "$CONNS" closed "$OUT/$scenario-closed")")
	max_rate=$(jq '(.responses - (.status_5xx // 0)) / .duration_s' "$OUT/$scenario-closed/summary.json")

	if [ "$WRK" = 1 ]; then
		log "$scenario: wrk, closed model ${CLOSED_S}s, $CONNS connections"
		measure_wrk "$OUT/$scenario-closed-wrk" "$scenario" "$CONNS" "$CLOSED_S"
		rows+=("$(row bench "$scenario" "$CONNS" closed "$OUT/$scenario-closed-wrk")")
	fi

	half=$(jq -n --argjson r "$max_rate" '$r / 2 | floor')
	[ "$half" -ge 1 ] || die "$scenario: the closed run achieved $max_rate ok req/s; nothing to halve"
	log "$scenario: open model ${OPEN_S}s at $half req/s (half of the ok rate, $max_rate)"
	measure_loadgen "$OUT/$scenario-open" "$scenario" "$CONNS" "$OPEN_S" "$half"
	rows+=("$(row bench "$scenario" "$CONNS" open "$OUT/$scenario-open")")
done
stop_server
restore_huge_pages
machine_json_finish "$OUT/machine.json"

printf '%s\n' "${rows[@]}" | jq -s \
	--slurpfile machine "$OUT/machine.json" \
	--argjson users "$BENCH_USERS" --argjson products "$BENCH_PRODUCTS" --argjson conns "$CONNS" --arg flags "$SERVER_FLAGS" \
	--argjson closed "$CLOSED_S" --argjson open "$OPEN_S" --argjson warmup "$WARMUP_S" \
	--argjson elapsed $(($(date +%s) - started)) \
	'{machine: $machine[0], config: {users: $users, products: $products, conns: $conns,
	  closed_s: $closed, open_s: $open, warmup_s: $warmup, server_flags: $flags}, elapsed_s: $elapsed, rows: .}' >"$OUT/bench.json"
jq -r -L bench/jq -f bench/jq/bench-table.jq "$OUT/bench.json" >"$OUT/bench.md"
echo
cat "$OUT/bench.md"
echo
log "done in $(($(date +%s) - started)) s; reports under $OUT/"
