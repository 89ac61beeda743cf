# bench-table.jq: the make bench table from bench.json (jq -r -L bench/jq).
include "format";
"storefront \(.machine.commit) · \(.machine.nproc) CPUs (\(.machine.cpu)) · \(.config.users | int) users, \(.config.products | int) products · \(.config.conns) connections",
"closed: \(.config.closed_s) s at most rate after a \(.config.warmup_s) s warm-up; open: \(.config.open_s) s at half of it; latency in ms, corrected for coordinated omission",
"",
(["scenario", "model", "generator", "req/s target", "req/s", "p50", "p90", "p99", "p99.9", "errors", "late sends", "srv+PG µs/req", "gen µs/req", "other cores"] | mdrow),
mdsep(14),
(.rows[] | [
  .route, .model, .generator,
  (if .target_rate > 0 then (.target_rate | int) else dash end),
  (.rate | int), (.p50 | fmt(2)), (.p90 | fmt(2)), (.p99 | fmt(2)), (.p999 | fmt(2)),
  (.errors | int), (.late_sends | int), (.total_us | fmt(1)), (.gen_us | fmt(1)), (.other_cores | fmt(2))
  ] | mdrow)
