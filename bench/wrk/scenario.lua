-- scenario.lua: the benchmark scenarios for wrk, so that wrk can stand in
-- for loadgen's closed model as a cross-check of the load generator.
--
--   wrk -t2 -c256 -d10s -s bench/wrk/scenario.lua http://127.0.0.1:8080 -- NAME
--
-- NAME is one of static, users-uniform, products-uniform, inventory-uniform,
-- catalog-zipf. The distributions are those of bench/scenarios/*.yaml and
-- loadgen's shipped scenarios (internal/load/distribution.go): uniform;
-- Zipf by rejection-inversion; hot set; "scatter" with the same permutation
-- x -> (a*x + b) mod n. Only the random streams differ. Every request
-- carries Accept and a random X-Request-ID, as the scenario files ask.

local function permutation(n, scatter)
  if not scatter or n < 3 then
    return function(x) return x end
  end
  local function gcd(a, b)
    while b ~= 0 do a, b = b, a % b end
    return a
  end
  -- 64-bit constant reduced in LuaJIT's integer arithmetic, then a double:
  -- a < n <= 1e6 and x < n keep a*x + b exact in a double.
  local a = tonumber(0x9E3779B97F4A7C15ULL % n)
  while a < 2 or gcd(a, n) ~= 1 do
    a = a + 1
    if a >= n then a = 2 end
  end
  local b = math.floor(n / 3)
  return function(x) return (a * x + b) % n end
end

local function uniform(min, max)
  local n = max - min + 1
  return function() return min + math.floor(math.random() * n) end
end

local function hotset(min, max, fraction, weight, scatter)
  local n = max - min + 1
  local hot = math.ceil(n * fraction)
  if hot >= n then hot = n - 1 end
  if hot < 1 then hot = 1 end
  local perm = permutation(n, scatter)
  return function()
    local x
    if math.random() < weight then
      x = math.floor(math.random() * hot)
    else
      x = hot + math.floor(math.random() * (n - hot))
    end
    return min + perm(x)
  end
end

-- Zipf over ranks 1..n, P(r) ~ r^-s (Hoermann and Derflinger, 1996).
local function zipf(min, max, s, scatter)
  local n = max - min + 1
  local perm = permutation(n, scatter)
  local function helper1(x)
    if math.abs(x) > 1e-8 then return math.log(1 + x) / x end
    return 1 - x * (0.5 - x * (1 / 3 - 0.25 * x))
  end
  local function helper2(x)
    if math.abs(x) > 1e-8 then return (math.exp(x) - 1) / x end
    return 1 + x * 0.5 * (1 + x * (1 / 3) * (1 + 0.25 * x))
  end
  local function h(x) return math.exp(-s * math.log(x)) end
  local function hIntegral(x)
    local logX = math.log(x)
    return helper2((1 - s) * logX) * logX
  end
  local function hIntegralInverse(x)
    local t = x * (1 - s)
    if t < -1 then t = -1 end
    return math.exp(helper1(t) * x)
  end
  local hX1 = hIntegral(1.5) - 1
  local hN = hIntegral(n + 0.5)
  local thr = 2 - hIntegralInverse(hIntegral(2.5) - h(2))
  return function()
    while true do
      local u = hN + math.random() * (hX1 - hN)
      local x = hIntegralInverse(u)
      local k = math.floor(x + 0.5)
      if k < 1 then k = 1 elseif k > n then k = n end
      if k - x <= thr or u >= hIntegral(k + 0.5) - h(k) then
        return min + perm(k - 1)
      end
    end
  end
end

local scenarios = {
  ["static"] = { { 1, "/_bench/static", nil } },
  ["users-uniform"] = { { 1, "/users/", uniform(1, 1000000) } },
  ["products-uniform"] = { { 1, "/products/", uniform(1, 100000) } },
  ["inventory-uniform"] = { { 1, "/inventory/", uniform(1, 100000) } },
  ["catalog-zipf"] = {
    { 70, "/products/", zipf(1, 100000, 1.0, true) },
    { 20, "/users/", hotset(1, 1000000, 0.05, 0.8, true) },
    { 10, "/inventory/", zipf(1, 100000, 1.0, true) },
  },
}

local mix, total

function setup(thread)
  thread:set("seed", math.random(1, 2147483647))
end

function init(args)
  math.randomseed(os.time() + (seed or 0))
  local name = args[1] or "static"
  mix = scenarios[name]
  if mix == nil then
    error("scenario.lua: unknown scenario " .. name)
  end
  total = 0
  for _, r in ipairs(mix) do total = total + r[1] end
end

local function uuid()
  return string.format("%08x-%04x-4%03x-%04x-%06x%06x",
    math.random(0, 0x7fffffff), math.random(0, 0xffff), math.random(0, 0xfff),
    0x8000 + math.random(0, 0x3fff), math.random(0, 0xffffff), math.random(0, 0xffffff))
end

function request()
  local pick = math.random() * total
  local r = mix[#mix]
  for _, c in ipairs(mix) do
    if pick < c[1] then r = c break end
    pick = pick - c[1]
  end
  local path = r[2]
  if r[3] ~= nil then path = path .. r[3]() end
  return wrk.format("GET", path, { ["Accept"] = "application/json", ["X-Request-ID"] = uuid() })
end

-- done prints one JSON line after wrk's own report, for the bench scripts.
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests": %d, "duration_s": %.6f, "rate": %.1f, '
    .. '"errors": {"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d}, '
    .. '"p50_ms": %.3f, "p90_ms": %.3f, "p99_ms": %.3f, "p999_ms": %.3f, "max_ms": %.3f}\n',
    summary.requests, summary.duration / 1e6, summary.requests / (summary.duration / 1e6),
    e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50) / 1e3, latency:percentile(90) / 1e3, latency:percentile(99) / 1e3,
    latency:percentile(99.9) / 1e3, latency.max / 1e3))
end
