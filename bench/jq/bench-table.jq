# bench-table.jq: the make bench table from bench.json (jq -r -L bench/jq).
include "format";
"storefront \(.machine.commit) · \(.machine.nproc) CPUs (\(.machine.cpu)) · \(.config.users | int) users, \(.config.products | int) products · \(.config.conns) connections",
"server: storefront serve \(.config.server_flags // "" | if . == "" then "(defaults)" else . end); PostgreSQL's shared memory on huge pages: \(.machine.postgres_huge_pages // "not recorded")",
"closed: \(.config.closed_s) s at most rate after a \(.config.warmup_s) s warm-up; open: \(.config.open_s) s at half of it; latency in ms, corrected for coordinated omission",
"ok req/s: answers other than 5xx per second; CPU µs per ok answer: server+PG = storefront + PostgreSQL, gen = load generator; other cores: the rest of the machine",
"",
(["scenario", "model", "generator", "req/s target", "ok req/s", "p50", "p90", "p99", "p99.9", "errors", "late sends", "srv+PG µs/req", "gen µs/req", "other cores"] | mdrow),
mdsep(14),
(.rows[] | [
  .route, .model, .generator,
  (if .target_rate > 0 then (.target_rate | int) else dash end),
  (.ok_rate | int), (.p50 | fmt(2)), (.p90 | fmt(2)), (.p99 | fmt(2)), (.p999 | fmt(2)),
  (if .errors > 0 then "\(.errors | int) (\(.errors / (.ok + .errors) | pct))" else "0" end), (.late_sends | int), (.total_us | fmt(1)), (.gen_us | fmt(1)), (.other_cores | fmt(2))
  ] | mdrow)
