# compare-table.jq: the make bench-compare tables from compare.json
# (jq -r -L bench/jq).
include "format";

def verdict($ok): if $ok == null then "" elif $ok then "met" else "MISSED" end;
# The rate ratio the CPU cost per request predicts when server, PostgreSQL
# and generator share the machine's cores and nothing else runs: robust to
# other programs taking a varying share of a shared machine.
def cpu_ratio($static; $run): ($static.total_us + $static.gen_us) / ($run.total_us + $run.gen_us);
# The interleaved runs' ratios: route run i against the mean of the
# static runs just before and just after it.
def pair_ratios:
  . as $l
  | [range(0; $l.pairs | length) as $i
     | ($l.pstatic[$i].ok_rate // 0) as $a | ($l.pstatic[$i + 1].ok_rate // 0) as $b
     | select($a > 0 and $b > 0)
     | $l.pairs[$i].ok_rate / (($a + $b) / 2)];
# per_pair_cpu(f): f of every interleaved pair whose runs were all
# measured, given {s: the mean srv+PG+gen µs/req of the static runs just
# before and after, run: the route's run}.
def per_pair_cpu(f):
  . as $l
  | [range(0; $l.pairs | length) as $i
     | $l.pstatic[$i] as $a | $l.pstatic[$i + 1] as $b
     | select($a.total_us != null and $b.total_us != null and $l.pairs[$i].total_us != null)
     | {s: (($a.total_us + $a.gen_us + $b.total_us + $b.gen_us) / 2), run: $l.pairs[$i]}
     | f];
# The same pairs' ratios from CPU per request (cpu_ratio).
def pair_cpu_ratios: per_pair_cpu(.s / (.run.total_us + .run.gen_us));
# The ratio PostgreSQL's own CPU alone allows: the static runs' CPU per
# request against the same plus the route's PostgreSQL CPU per request, as
# if storefront and the generator spent on the route exactly what they
# spend on the static answer. No server code can bring the rate ratio
# above it; what separates it from the CPU ratio is storefront's and the
# generator's extra work for a database answer.
def pg_ceiling($static; $run): ($static.total_us + $static.gen_us) / ($static.total_us + $static.gen_us + $run.pg_us);
# The same for each interleaved pair.
def pair_pg_ceilings: per_pair_cpu(.s / (.s + .run.pg_us));
def median: sort | if length == 0 then null elif length % 2 == 1 then .[length / 2 | floor] else (.[length / 2 - 1] + .[length / 2]) / 2 end;
def coalesce_label: if . == "coalesce-on" then "on" else "off" end;

.rows as $rows
| .config.connections as $conns
| ([$rows[] | .generator] | index("wrk") != null) as $wrk
| (.config.open_rounds // 1) as $rounds
# closed, open and wrk rows of one server, route and connection count. With
# several open-model rounds, open is the one with the median p99 (the
# higher middle one for an even count) and opens holds them all.
| def median_run: sort_by(.p99) | if length == 0 then null else .[length / 2 | floor] end;
  def runs($s; $r; $c):
    [$rows[] | select(.server == $s and .route == $r and .conns == $c and .model == "open")] as $opens
    | {
    closed: ([$rows[] | select(.server == $s and .route == $r and .conns == $c and .model == "closed" and .generator == "loadgen")] | first),
    open: ($opens | median_run),
    opens: $opens,
    pairs: ([$rows[] | select(.server == $s and .route == $r and .conns == $c and .model == "pair-route")] | sort_by(.pair)),
    pstatic: ([$rows[] | select(.server == $s and .route == $r and .conns == $c and .model == "pair-static")] | sort_by(.pair)),
    wrk: ([$rows[] | select(.server == $s and .route == $r and .conns == $c and .generator == "wrk")] | first)
  };
  ([$rows[] | .server] | unique | sort | reverse) as $servers
| [ $servers[] as $s | $conns[] as $c | .config.routes[] as $r
    | runs($s; $r; $c) + {server: $s, route: $r, conns: $c, static: runs($s; "static"; $c)}
    | select(.closed != null) ] as $lines
| "storefront \(.machine.commit) · \(.machine.nproc) CPUs (\(.machine.cpu)), \(.machine.memory) · \(.config.users | int) users, \(.config.products | int) products",
  "server: storefront serve \(.config.server_flags | if . == "" then "(defaults)" else . end) --coalesce=on|off; PostgreSQL's shared memory on huge pages: \(.machine.postgres_huge_pages // "not recorded")",
  "max: closed model, \(.config.closed_s) s after a \(.config.warmup_s) s warm-up; half: open model, \(.config.open_s) s at half the max rate\(if $rounds > 1 then ", \($rounds) rounds: the run with the median p99\(if $rounds % 2 == 0 then " (the higher of the two middle ones)" else "" end), the rounds' p99 range in brackets" else "" end); ms corrected for coordinated omission",
  (if (.config.pairs // 0) > 0 then "rate / static, interleaved: \(.config.pairs) closed runs of \(.config.pair_s) s of the route, each between two of the static answers of the same size (users: the static user, products: a product, inventory: a stock answer, catalog-zipf: its mix of them); each run's rate against the mean of the two around it: the median, the range in brackets (the machine's speed drifts over minutes). The column rate / static compares with the static route's first run (a user)" else empty end),
  "rate / static from CPU: (static's srv+PG+gen µs/req) / (the route's), the ratio expected on a machine running nothing else\(if (.config.pairs // 0) > 0 then "; from the interleaved runs (the median over the pairs, each route run against the mean of the static runs around it)" else "" end)",
  "ceiling from PG's CPU: (static's srv+PG+gen µs/req) / (the same + the route's PG µs/req), the rate / static that PostgreSQL's CPU alone allows, were storefront and the generator to spend on the route what they spend on the static answer\(if (.config.pairs // 0) > 0 then "; from the interleaved runs, like the CPU ratio" else "" end)",
  "half: srv+PG+gen µs/req of the open-model run, and how many times the closed run's; cores busy: the whole machine's CPU during it (of \(.machine.nproc))",
  "req/s: answers other than 5xx per second; CPU µs per request = CPU seconds of the run / those answers (server: storefront; PG: postmaster and all its children; gen: the load generator; other: the rest of the machine, in cores)",
  "",
  ((["route", "coalesce", "conns", "req/s max", "p50 / p99 max", "p50 / p99 half", "srv+PG+gen µs/req half (× max)", "cores busy half", "late half", "errors", "server µs/req", "PG µs/req", "srv+PG µs/req", "gen µs/req", "other cores", "RSS MB", "rate / static", "rate / static, interleaved", "rate / static from CPU", "ceiling from PG's CPU"]
    + (if $wrk then ["wrk req/s", "wrk gen µs/req", "wrk srv+PG µs/req", "wrk rate / static"] else [] end)) as $h
   | ($h | mdrow), mdsep($h | length)),
  ($lines[] |
    ([ .route, (.server | coalesce_label), (.conns | tostring), (.closed.ok_rate | int),
      "\(.closed.p50 | fmt(2)) / \(.closed.p99 | fmt(2))",
      (if .open then "\(.open.p50 | fmt(2)) / \(.open.p99 | fmt(2))"
         + (if (.opens | length) > 1 then " (\(.opens | map(.p99) | min | fmt(2))-\(.opens | map(.p99) | max | fmt(2)))" else "" end)
       else dash end),
      (if .open then "\(.open.total_us + .open.gen_us | fmt(1)) (\((.open.total_us + .open.gen_us) / (.closed.total_us + .closed.gen_us) | fmt(1))×)" else dash end),
      (if .open then (.open.machine_cores | fmt(2)) else dash end),
      (.open.late_sends | int),
      ((.closed.errors + (.opens | map(.errors) | add // 0)) | int),
      (.closed.server_us | fmt(1)), (.closed.pg_us | fmt(1)), (.closed.total_us | fmt(1)), (.closed.gen_us | fmt(1)),
      (.closed.other_cores | fmt(2)), (.closed.rss_max_mb | fmt(0)),
      (if .static.closed.ok_rate > 0 then (.closed.ok_rate / .static.closed.ok_rate | pct) else dash end),
      (pair_ratios as $p | if ($p | length) > 0 then "\($p | median | pct) (\($p | min | pct)-\($p | max | pct))" elif .route == "static" then "100%" else dash end),
      (pair_cpu_ratios as $p | if ($p | length) > 0 then ($p | median | pct) elif .static.closed then (cpu_ratio(.static.closed; .closed) | pct) else dash end),
      (pair_pg_ceilings as $p | if ($p | length) > 0 then ($p | median | pct) elif .static.closed then (pg_ceiling(.static.closed; .closed) | pct) else dash end) ]
    + (if $wrk then [ (.wrk.ok_rate | int), (.wrk.gen_us | fmt(1)), (.wrk.total_us | fmt(1)),
        (if .wrk and .static.wrk then (.wrk.ok_rate / .static.wrk.ok_rate | pct) else dash end) ] else [] end))
    | mdrow),
  "",
  "Targets (database-backed routes, \($conns[0]) connections, loadgen):",
  "",
  (["target", "coalescing on", "coalescing off"] | mdrow), mdsep(3),
  ( [$lines[] | select(.conns == $conns[0] and .route != "static")] as $db
    | def worst($s; f; better):
        [$db[] | select(.server == $s) | {route, v: f} | select(.v != null)]
        | if length == 0 then null elif better == "high" then min_by(.v) else max_by(.v) end;
      def cell(w; show; $ok): if w == null then dash else "\(w | show) (\(w | .route)) \(verdict($ok))" end;
      ( ["DB rate / static rate ≥ 75% (worst route)"]
        + [ $servers[] as $s | worst($s; (if .static.closed.ok_rate > 0 then .closed.ok_rate / .static.closed.ok_rate else null end); "high")
            | cell(.; .v | pct; (if . then .v >= 0.75 else null end)) ] | mdrow ),
      ( ["the same, interleaved with the static route (median of the pairs; worst route)"]
        + [ $servers[] as $s | worst($s; (pair_ratios | median); "high")
            | cell(.; .v | pct; (if . then .v >= 0.75 else null end)) ] | mdrow ),
      ( ["the same from CPU per request (worst route)"]
        + [ $servers[] as $s | worst($s; (pair_cpu_ratios as $p | if ($p | length) > 0 then ($p | median) elif .static.closed then cpu_ratio(.static.closed; .closed) else null end); "high")
            | cell(.; .v | pct; (if . then .v >= 0.75 else null end)) ] | mdrow ),
      ( ["(not a target: the ratio PostgreSQL's CPU alone allows, lowest route)"]
        + [ $servers[] as $s | worst($s; (pair_pg_ceilings as $p | if ($p | length) > 0 then ($p | median) elif .static.closed then pg_ceiling(.static.closed; .closed) else null end); "high")
            | if . == null then dash else "\(.v | pct) (\(.route))" end ] | mdrow ),
      ( ["server+PG CPU ≤ 25 µs/req at max (worst route)"]
        + [ $servers[] as $s | worst($s; .closed.total_us; "low")
            | cell(.; .v | fmt(1) + " µs"; (if . then .v <= 25 else null end)) ] | mdrow ),
      ( ["p99 at half the max rate ≤ 5 ms (worst route\(if $rounds > 1 then "; median of \($rounds) rounds" else "" end))"]
        + [ $servers[] as $s | worst($s; .open.p99; "low")
            | cell(.; .v | fmt(2) + " ms"; (if . then .v <= 5 else null end)) ] | mdrow ),
      ( if $rounds > 1 then
          ["the same, worst round (worst route)"]
          + [ $servers[] as $s | worst($s; (.opens | map(.p99) | max); "low")
              | cell(.; .v | fmt(2) + " ms"; (if . then .v <= 5 else null end)) ] | mdrow
        else empty end )
  ),
  ( .memory as $m
    | (["RSS with \($m.idle.connections // 10000 | int) idle keep-alive connections ≤ 150 MB",
        (if $m.idle then "\($m.idle.rss_mb | fmt(0)) MB (\($m.idle.rss_before_mb | fmt(0)) MB before, \($m.idle.alive_at_end | int) of \($m.idle.opened | int) still open) \(verdict($m.idle.rss_mb <= 150))" else "not measured" end),
        dash] | mdrow),
      (["RSS delta with \($m.busy.connections // 256) busy connections ≤ 50 MB",
        (if $m.busy then "+\($m.busy.delta_mb | fmt(0)) MB (\($m.busy.rss_before_mb | fmt(0)) → \($m.busy.rss_max_mb | fmt(0)) MB at \($m.busy.rate | int) req/s) \(verdict($m.busy.delta_mb <= 50))" else "not measured" end),
        dash] | mdrow) )
