# row-wrk.jq: row.jq for a wrk run: the input is the line bench/wrk/scenario.lua
# prints when wrk is done. wrk counts every non-2xx/3xx answer as a "status"
# error without telling 404 from 503; they are reported as status_4xx here
# and counted as ok, so with admission control on (--shed) wrk's rate
# includes the 503s. errors counts socket errors and timeouts only.
.requests as $ok
| def per_req($s): if $ok > 0 then $s * 1e6 / $ok else null end;
$cpu[0] as $c
| {
    ok: $ok, ok_rate: .rate,
    server: $server, route: $route, conns: $conns, model: $model, generator: "wrk", dir: $dir,
    target_rate: 0, rate: .rate, responses: .requests, duration_s: .duration_s,
    p50: .p50_ms, p90: .p90_ms, p99: .p99_ms, p999: .p999_ms, max: .max_ms,
    p99_uncorrected: .p99_ms,
    errors: (.errors.connect + .errors.read + .errors.write + .errors.timeout),
    transport_errors: (.errors.connect + .errors.read + .errors.write + .errors.timeout),
    status_5xx: null, status_4xx: .errors.status, late_sends: null, statuses: null,
    wall_s: $c.wall_s,
    server_us: per_req($c.server.cpu_s), pg_us: per_req($c.postgres.cpu_s),
    total_us: per_req($c.server.cpu_s + $c.postgres.cpu_s), gen_us: per_req($c.command.cpu_s),
    server_cores: ($c.server.cpu_s / $c.wall_s), pg_cores: ($c.postgres.cpu_s / $c.wall_s),
    gen_cores: ($c.command.cpu_s / $c.wall_s), other_cores: ($c.others.cpu_s / $c.wall_s),
    machine_cores: ($c.machine.cpu_s / $c.wall_s),
    rss_start_mb: ($c.server.rss_start_kb / 1024), rss_max_mb: ($c.server.rss_max_kb / 1024),
    rss_end_mb: ($c.server.rss_end_kb / 1024)
  }
