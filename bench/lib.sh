# shellcheck shell=bash
# lib.sh: what bench/run.sh and bench/compare.sh share: the seeded data
# directory, starting and stopping storefront, measured loadgen and wrk runs,
# machine description. Sourced, not run.
#
# Every process started here is recorded in STARTED_PIDS and stopped by pid
# on exit, Ctrl-C included. Everything listens on 127.0.0.1 only.

BENCH_USERS=${BENCH_USERS:-1000000}
BENCH_PRODUCTS=${BENCH_PRODUCTS:-100000}

# HUGE_PAGES=1 (--no-huge-pages: 0): put PostgreSQL's shared memory on 2 MB
# pages for the run, as root; see reserve_huge_pages.
HUGE_PAGES=${HUGE_PAGES:-1}
HUGE_PAGES_TRIED=
HUGE_PAGES_RESTORE=
HUGE_PAGES_STATE="not checked"

STARTED_PIDS=()
SERVER_PID=
SERVER_ADDR=
SERVER_LOG=
SERVER_ADMIN=

# bench_start creates this run's results directory ($OUT), notes the start
# time ($started) and makes sure wrk is there when asked for (WRK=1).
# shellcheck disable=SC2034 # started and OUT are read by the scripts that source this file
bench_start() {
	started=$(date +%s)
	OUT=$RESULTS_ROOT/$(date -u +%Y%m%dT%H%M%SZ)
	mkdir -p "$OUT"
	if [ "$WRK" = 1 ]; then ensure_tool wrk wrk; fi
}

bench_init() {
	ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
	cd "$ROOT" || exit 1
	BIN=${BIN:-bin}
	RESULTS_ROOT=bench/results
	DATA_DIR=${BENCH_DATA_DIR:-$RESULTS_ROOT/data}
	TOOLS=$RESULTS_ROOT/bin
	for b in "$BIN/storefront" "$BIN/loadgen"; do
		[ -x "$b" ] || die "$b is missing: run make build (make bench builds it)"
	done
	ensure_tool jq jq
	mkdir -p "$TOOLS"
	# Standard library only: these build whatever state the server's code is in.
	go build -o "$TOOLS/" ./bench/proccpu ./bench/conns
	trap bench_cleanup EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM
}

die() {
	echo "bench: $*" >&2
	exit 1
}

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

# raise_nofile N raises the soft open-files limit to at least N (up to the
# hard limit, or beyond it when we are root).
raise_nofile() {
	local want=$1 soft hard
	soft=$(ulimit -Sn)
	hard=$(ulimit -Hn)
	[ "$soft" = unlimited ] && return 0
	[ "$soft" -ge "$want" ] && return 0
	if [ "$hard" != unlimited ] && [ "$hard" -lt "$want" ]; then
		ulimit -Hn "$want" 2>/dev/null || want=$hard
	fi
	ulimit -Sn "$want"
}

# running PID: the process exists and is not a zombie.
running() {
	local st
	st=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1) || return 1
	[ -n "$st" ] && [ "$st" != Z ] && [ "$st" != X ]
}

# stop_pid PID [SECONDS]: SIGTERM, wait, SIGKILL after SECONDS (default 60).
stop_pid() {
	local pid=$1 limit=${2:-60} i
	if running "$pid"; then
		kill -TERM "$pid" 2>/dev/null || true
		for ((i = 0; i < limit * 10; i++)); do
			running "$pid" || break
			sleep 0.1
		done
		if running "$pid"; then
			log "pid $pid ignored SIGTERM for ${limit}s; killing it"
			kill -KILL "$pid" 2>/dev/null || true
		fi
	fi
	wait "$pid" 2>/dev/null || true
	local kept=()
	for i in "${STARTED_PIDS[@]}"; do
		[ "$i" = "$pid" ] || kept+=("$i")
	done
	STARTED_PIDS=("${kept[@]}")
}

# Once it runs, further Ctrl-Cs and SIGTERMs are ignored (by it and by the
# commands it runs): a second Ctrl-C while a server drains would otherwise
# end the script with that server running and vm.nr_hugepages raised.
bench_cleanup() {
	local rc=$? pid
	trap - EXIT
	trap '' INT TERM HUP
	if [ ${#STARTED_PIDS[@]} -gt 0 ] || [ -n "$HUGE_PAGES_RESTORE" ]; then
		log "stopping what this run started${HUGE_PAGES_RESTORE:+ and putting vm.nr_hugepages back}; Ctrl-C is ignored meanwhile"
	fi
	for pid in "${STARTED_PIDS[@]}"; do
		stop_pid "$pid" 60
	done
	restore_huge_pages
	exit "$rc"
}

# seed_data loads BENCH_USERS users and BENCH_PRODUCTS products into
# DATA_DIR (no server may be running on it). Seeding is idempotent: rows that
# exist are kept; from scratch it takes about 10 s.
seed_data() {
	log "data: seeding $DATA_DIR with $BENCH_USERS users, $BENCH_PRODUCTS products"
	local seedlog=$RESULTS_ROOT/seed.log
	"$BIN/storefront" seed --data-dir "$DATA_DIR" --users "$BENCH_USERS" --products "$BENCH_PRODUCTS" \
		--quiet --log-level warn >"$seedlog" 2>&1 || die "seeding failed: $(tail -3 "$seedlog")"
	log "data: $(tail -1 "$seedlog")"
}

# server_dsn: the private PostgreSQL's connection string, from the log.
server_dsn() {
	sed -n 's/.*msg="private PostgreSQL running".* psql="\([^"]*\)".*/\1/p' "$SERVER_LOG" | head -1
}

# data_complete: the running server's database holds the full data set.
data_complete() {
	local psql dsn ok
	psql=$(command -v psql || true)
	[ -n "$psql" ] || return 1 # cannot tell: seed, which checks for itself
	dsn=$(server_dsn)
	[ -n "$dsn" ] || return 1
	ok=$("$psql" "$dsn" -XAtc "SELECT (SELECT count(*) FROM users) >= $BENCH_USERS
		AND (SELECT count(*) FROM products) >= $BENCH_PRODUCTS
		AND EXISTS (SELECT 1 FROM inventory WHERE product_id = (SELECT max(product_id) FROM products))" 2>/dev/null) || return 1
	[ "$ok" = t ]
}

# start_server NAME [FLAGS...] starts storefront serve on 127.0.0.1 (a free
# port) on DATA_DIR and waits until it listens. The first time, it checks
# the users and products counts and seeds when they fall short (stopping
# the server for that: seeding needs the data directory to itself).
# Sets SERVER_PID, SERVER_ADDR, SERVER_ADMIN (with ADMIN_ADDR=127.0.0.1:0),
# SERVER_LOG (OUT/NAME.server.log).
DATA_CHECKED=
start_server() {
	launch_server "$@"
	if [ -z "$DATA_CHECKED" ]; then
		if ! data_complete; then
			stop_server
			seed_data
			launch_server "$@"
			data_complete || die "data: $DATA_DIR lacks $BENCH_USERS users or $BENCH_PRODUCTS products after seeding"
		fi
		DATA_CHECKED=1
		log "data: $DATA_DIR holds at least $BENCH_USERS users and $BENCH_PRODUCTS products"
	fi
	if reserve_huge_pages; then
		stop_server
		launch_server "$@"
		huge_pages_state
	fi
	prewarm
	log "storefront $1: pid $SERVER_PID, http://$SERVER_ADDR ${*:2}"
}

# reserve_huge_pages, after the first server start: when storefront logged
# that PostgreSQL's shared memory is not on huge pages, raise vm.nr_hugepages by
# the huge pages it lacks and return 0, for the caller to restart the
# server; bench_cleanup puts the old value back once every server has
# stopped. On 2 MB pages lookups cost less (bench/README.md, "Huge pages
# for PostgreSQL"). Only as root, only once per run, not with HUGE_PAGES=0;
# HUGE_PAGES_STATE says what happened, for machine.json.
reserve_huge_pages() {
	local line needed total free want got
	[ -z "$HUGE_PAGES_TRIED" ] || return 1
	HUGE_PAGES_TRIED=1
	huge_pages_state
	line=$(grep -m1 "shared memory is not on huge pages" "$SERVER_LOG" || true)
	[ -n "$line" ] || return 1
	if [ "$HUGE_PAGES" != 1 ]; then
		HUGE_PAGES_STATE="off (--no-huge-pages)"
		return 1
	fi
	needed=$(sed -n 's/.*huge_pages_needed=\([0-9]*\).*/\1/p' <<<"$line")
	[ -n "$needed" ] || return 1
	if [ "$(id -u)" != 0 ] || ! [ -w /proc/sys/vm/nr_hugepages ]; then
		HUGE_PAGES_STATE="off (vm.nr_hugepages needs root)"
		log "huge pages: PostgreSQL's shared memory is not on huge pages; as root this script reserves the $needed huge pages it takes for the run"
		return 1
	fi
	total=$(cat /proc/sys/vm/nr_hugepages)
	free=$(awk '/^HugePages_Free:/ {print $2}' /proc/meminfo)
	want=$((total + needed - free))
	if [ "$want" -le "$total" ]; then
		log "huge pages: $free free now, enough for PostgreSQL's $needed; restarting the server"
		return 0
	fi
	# Set before the write: a Ctrl-C while the kernel gathers the pages
	# (which can take seconds) ends the script right after it.
	HUGE_PAGES_RESTORE=$total
	echo "$want" >/proc/sys/vm/nr_hugepages 2>/dev/null || true
	got=$(cat /proc/sys/vm/nr_hugepages)
	if [ "$got" = "$total" ]; then
		HUGE_PAGES_RESTORE=
		HUGE_PAGES_STATE="off (the kernel gave none of the $needed huge pages)"
		log "huge pages: the kernel gave none of the $needed huge pages PostgreSQL takes; the run goes on 4 kB pages"
		return 1
	fi
	log "huge pages: vm.nr_hugepages $total -> $got for PostgreSQL's $needed (put back at exit); restarting the server"
	return 0
}

# huge_pages_state sets HUGE_PAGES_STATE from the server's log.
huge_pages_state() {
	if grep -q "shared memory is on huge pages" "$SERVER_LOG"; then
		HUGE_PAGES_STATE=on
		[ -n "$HUGE_PAGES_RESTORE" ] && HUGE_PAGES_STATE="on (reserved for the run)"
	elif grep -q "shared memory is not on huge pages" "$SERVER_LOG"; then
		HUGE_PAGES_STATE=off
		[ -n "$HUGE_PAGES_RESTORE" ] && HUGE_PAGES_STATE="off (the kernel gave too few huge pages)"
	fi
	return 0
}

restore_huge_pages() {
	[ -n "$HUGE_PAGES_RESTORE" ] || return 0
	echo "$HUGE_PAGES_RESTORE" >/proc/sys/vm/nr_hugepages 2>/dev/null ||
		log "warning: could not put vm.nr_hugepages back to $HUGE_PAGES_RESTORE"
	HUGE_PAGES_RESTORE=
}

# machine_json_finish OUT/machine.json: adds what is known only after the
# servers ran (huge pages).
machine_json_finish() {
	jq --arg hp "$HUGE_PAGES_STATE" '. + {postgres_huge_pages: $hp}' "$1" >"$1.tmp" && mv "$1.tmp" "$1"
}

# prewarm loads every table and index of the storefront database into
# PostgreSQL's shared buffers (pg_prewarm; the data set, about 200 MB, fits
# in them). Each server start restarts PostgreSQL with empty buffers: without
# this, the first run after a start would pay for filling them and runs
# would depend on their order.
prewarm() {
	local psql dsn pages
	psql=$(command -v psql || true)
	dsn=$(server_dsn)
	if [ -z "$psql" ] || [ -z "$dsn" ]; then
		log "warning: cannot prewarm PostgreSQL's buffers (no psql); the first run after a start reads them in"
		return 0
	fi
	pages=$("$psql" "$dsn" -XAtq -v ON_ERROR_STOP=1 -c 'SET client_min_messages = warning' \
		-c 'CREATE EXTENSION IF NOT EXISTS pg_prewarm' \
		-c "SELECT sum(pg_prewarm(c.oid)) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
			WHERE n.nspname = 'public' AND c.relkind IN ('r', 'i')" 2>"$OUT/prewarm.err") ||
		{ log "warning: prewarming PostgreSQL's buffers failed: $(cat "$OUT/prewarm.err")"; return 0; }
	if ! [[ $pages =~ ^[0-9]+$ ]]; then
		log "warning: prewarming PostgreSQL's buffers said: $pages"
		return 0
	fi
	log "prewarmed $pages pages ($((pages * 8 / 1024)) MB) into PostgreSQL's shared buffers"
}

launch_server() {
	local name=$1 i code
	shift
	SERVER_LOG=$OUT/$name.server.log
	"$BIN/storefront" serve --data-dir "$DATA_DIR" --addr 127.0.0.1:0 --admin-addr "${ADMIN_ADDR:-}" \
		--demo-users 0 --demo-products 0 --bench-static-route --log-level info "$@" >"$SERVER_LOG" 2>&1 &
	SERVER_PID=$!
	STARTED_PIDS+=("$SERVER_PID")
	SERVER_ADDR=
	for ((i = 0; i < 1200; i++)); do
		SERVER_ADDR=$(sed -n 's/.*msg="storefront listening" addr=\(127\.0\.0\.1:[0-9]*\).*/\1/p' "$SERVER_LOG" | head -1)
		[ -n "$SERVER_ADDR" ] && break
		running "$SERVER_PID" || die "storefront exited during start: $(tail -5 "$SERVER_LOG")"
		sleep 0.1
	done
	[ -n "$SERVER_ADDR" ] || die "storefront did not listen within 120 s: $(tail -5 "$SERVER_LOG")"
	# shellcheck disable=SC2034 # read by compare.sh
	SERVER_ADMIN=$(sed -n 's/.*msg="storefront listening".* admin_addr=\(127\.0\.0\.1:[0-9]*\).*/\1/p' "$SERVER_LOG" | head -1)
	code=$(curl -s -o /dev/null -w '%{http_code}' "http://$SERVER_ADDR/_bench/static")
	[ "$code" = 200 ] || die "GET /_bench/static answered $code"
}

stop_server() {
	[ -n "$SERVER_PID" ] || return 0
	stop_pid "$SERVER_PID" 60
	SERVER_PID=
}

server_rss_kb() { "$TOOLS/proccpu" rss --pid "$SERVER_PID"; }

# scenario_arg NAME: loadgen's --scenario value (shipped name or our file).
scenario_arg() {
	case $1 in
	users-uniform | catalog-zipf) echo "$1" ;;
	*) echo "bench/scenarios/$1.yaml" ;;
	esac
}

# warm_up SCENARIO CONNECTIONS SECONDS: an unrecorded closed-model run.
warm_up() {
	"$BIN/loadgen" run --quiet --target "http://$SERVER_ADDR" --scenario "$(scenario_arg "$1")" \
		--connections "$2" --duration "${3}s" >/dev/null
}

# measure_loadgen DIR SCENARIO CONNECTIONS SECONDS [RATE]: one recorded
# loadgen run (closed model without RATE, open model at RATE) inside
# proccpu, which writes DIR/cpu.json; loadgen writes DIR/summary.json,
# run.hlog, report.html and its text summary to DIR/loadgen.txt.
measure_loadgen() {
	local dir=$1 scenario=$2 conns=$3 secs=$4 rate=${5:-}
	local args=(run --quiet --target "http://$SERVER_ADDR" --scenario "$(scenario_arg "$scenario")"
		--connections "$conns" --duration "${secs}s" --out "$dir")
	[ -n "$rate" ] && args+=(--rate "$rate")
	mkdir -p "$dir"
	"$TOOLS/proccpu" measure --pid "$SERVER_PID" --pgdata "$DATA_DIR/pg" --out "$dir/cpu.json" -- \
		"$BIN/loadgen" "${args[@]}" >"$dir/loadgen.txt" 2>&1 ||
		die "loadgen failed in $dir: $(tail -3 "$dir/loadgen.txt")"
}

# measure_wrk DIR SCENARIO CONNECTIONS SECONDS: the same closed-model run
# with wrk (bench/wrk/scenario.lua), inside proccpu. Writes DIR/wrk.txt,
# DIR/wrk.json and DIR/cpu.json.
measure_wrk() {
	local dir=$1 scenario=$2 conns=$3 secs=$4
	mkdir -p "$dir"
	"$TOOLS/proccpu" measure --pid "$SERVER_PID" --pgdata "$DATA_DIR/pg" --out "$dir/cpu.json" -- \
		wrk -t"$(nproc)" -c"$conns" -d"${secs}s" --timeout 2s -s bench/wrk/scenario.lua \
		"http://$SERVER_ADDR" -- "$scenario" >"$dir/wrk.txt" 2>&1 ||
		die "wrk failed in $dir: $(tail -3 "$dir/wrk.txt")"
	sed -n 's/^WRKJSON //p' "$dir/wrk.txt" >"$dir/wrk.json"
	[ -s "$dir/wrk.json" ] || die "wrk wrote no summary in $dir"
}

# ensure_tool COMMAND PACKAGE installs PACKAGE when COMMAND is absent (as
# root, with apt-get; elsewhere it says what to install).
ensure_tool() {
	local cmd=$1 pkg=$2
	command -v "$cmd" >/dev/null && return 0
	command -v apt-get >/dev/null || die "$cmd is needed: install $pkg with your package manager"
	[ "$(id -u)" = 0 ] || die "$cmd is needed: apt-get install -y $pkg"
	log "installing $pkg"
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$pkg" >/dev/null 2>&1 ||
		{ apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$pkg" >/dev/null; } ||
		die "could not install $pkg"
	command -v "$cmd" >/dev/null || die "$pkg was installed but $cmd was not found"
}

# row SERVER ROUTE CONNECTIONS MODEL DIR: one result row as compact JSON,
# from DIR/summary.json (loadgen) or DIR/wrk.json (wrk) and DIR/cpu.json.
row() {
	local server=$1 route=$2 conns=$3 model=$4 dir=$5
	if [ -f "$dir/summary.json" ]; then
		jq -c --arg server "$server" --arg route "$route" --argjson conns "$conns" --arg model "$model" \
			--arg dir "$dir" --slurpfile cpu "$dir/cpu.json" -f bench/jq/row.jq "$dir/summary.json"
	else
		jq -c --arg server "$server" --arg route "$route" --argjson conns "$conns" --arg model "$model" \
			--arg dir "$dir" --slurpfile cpu "$dir/cpu.json" -f bench/jq/row-wrk.jq "$dir/wrk.json"
	fi
}

postgres_version() {
	local d
	d=$(find /usr/lib/postgresql -maxdepth 3 -path '*/bin/postgres' 2>/dev/null | sort -V | tail -1)
	if [ -n "$d" ]; then "$d" --version; else echo unknown; fi
}

# machine_json: the machine and software the figures come from.
machine_json() {
	local commit
	commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
	git diff --quiet HEAD -- cmd internal 2>/dev/null || commit="$commit (with uncommitted changes in cmd/ or internal/)"
	jq -n --arg nproc "$(nproc)" \
		--arg cpu "$(lscpu | sed -n 's/^Model name: *//p' | head -1)" \
		--arg mem "$(awk '/MemTotal/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo)" \
		--arg kernel "$(uname -r)" \
		--arg go "$(go version | cut -d' ' -f3-)" \
		--arg postgres "$(postgres_version)" \
		--arg wrk "$(if command -v wrk >/dev/null; then wrk -v 2>&1 | head -1 | cut -d' ' -f1-2; else echo none; fi)" \
		--arg commit "$commit" \
		--arg load "$(cut -d' ' -f1-3 /proc/loadavg)" \
		'{nproc: ($nproc | tonumber), cpu: $cpu, memory: $mem, kernel: $kernel, go: $go,
		  postgres: $postgres, wrk: $wrk, commit: $commit, loadavg_at_start: $load}'
}

# warn_if_busy: the machine should be idle before a benchmark.
warn_if_busy() {
	local l
	l=$(cut -d' ' -f1 /proc/loadavg)
	if awk -v l="$l" -v n="$(nproc)" 'BEGIN { exit !(l > n / 4) }'; then
		log "warning: load average $l on $(nproc) CPUs before the run; other programs will skew the figures (see the 'other' CPU column)"
	fi
}
