# row.jq: one result row from loadgen's summary.json (input) and proccpu's
# cpu.json ($cpu[0]); arguments name the run. "ok" responses are those that
# are not 5xx (404s of soft-deleted rows are answers too); ok_rate is what
# the tables call req/s, and CPU per request divides the CPU seconds of the
# whole measured run by the ok responses, so that a server answering most
# requests with a cheap 503 does not look efficient.
(.responses - (.status_5xx // 0)) as $ok
| def per_req($s): if $ok > 0 then $s * 1e6 / $ok else null end;
$cpu[0] as $c
| {
    ok: $ok, ok_rate: ($ok / .duration_s),
    server: $server, route: $route, conns: $conns, model: $model, generator: "loadgen", dir: $dir,
    target_rate: .target_rate, rate: .achieved_rate, responses: .responses, duration_s: .duration_s,
    p50: .corrected.p50_ms, p90: .corrected.p90_ms, p99: .corrected.p99_ms,
    p999: .corrected.p999_ms, max: .corrected.max_ms,
    p99_uncorrected: .uncorrected.p99_ms,
    errors: .failures, transport_errors: .transport_errors, status_5xx: .status_5xx,
    status_4xx: .status_4xx, late_sends: .late_sends, statuses: .statuses,
    wall_s: $c.wall_s,
    server_us: per_req($c.server.cpu_s), pg_us: per_req($c.postgres.cpu_s),
    total_us: per_req($c.server.cpu_s + $c.postgres.cpu_s), gen_us: per_req($c.command.cpu_s),
    server_cores: ($c.server.cpu_s / $c.wall_s), pg_cores: ($c.postgres.cpu_s / $c.wall_s),
    gen_cores: ($c.command.cpu_s / $c.wall_s), other_cores: ($c.others.cpu_s / $c.wall_s),
    machine_cores: ($c.machine.cpu_s / $c.wall_s),
    rss_start_mb: ($c.server.rss_start_kb / 1024), rss_max_mb: ($c.server.rss_max_kb / 1024),
    rss_end_mb: ($c.server.rss_end_kb / 1024)
  }
