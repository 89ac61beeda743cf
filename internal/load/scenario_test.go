package load

import (
	"math"
	"math/rand/v2"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

func TestParseScenario(t *testing.T) {
	yamlText := `
name: mix
headers:
  X-Request-ID: "{uuid}"
requests:
  - weight: 70
    path: /products/{id}
    params:
      id: {dist: zipf, exponent: 1.1, min: 1, max: 100000}
  - weight: 30
    method: POST
    path: /orders
    headers: {Content-Type: application/json}
    body: '{"user": {user}, "note": "{not a placeholder}"}'
    params:
      user: {dist: uniform, min: 1, max: 10}
`
	jsonText := `{"name": "mix", "requests": [
	  {"weight": 1, "path": "/users/{id}", "params": {"id": {"dist": "hotset", "min": 1, "max": 1000, "hot_fraction": 0.1, "hot_weight": 0.9}}}
	]}`
	for name, text := range map[string]string{"yaml": yamlText, "json": jsonText} {
		s, err := ParseScenario([]byte(text))
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if s.Name != "mix" || len(s.Requests) == 0 {
			t.Errorf("%s: parsed %+v", name, s)
		}
	}
}

func TestParseScenarioErrors(t *testing.T) {
	cases := map[string]string{
		"empty":                        ``,
		"not yaml":                     "requests: [",
		"unknown field":                "requests:\n  - path: /a\n    weight: 1\n    wieght: 2\n",
		"no requests":                  "name: x\n",
		"zero weights":                 "requests:\n  - path: /a\n    weight: 0\n",
		"infinite weight":              "requests:\n  - path: /a\n    weight: .inf\n  - path: /b\n    weight: 1\n",
		"weights overflow":             "requests:\n  - path: /a\n    weight: 1e308\n  - path: /b\n    weight: 1e308\n",
		"relative path":                "requests:\n  - path: a\n    weight: 1\n",
		"unknown param":                "requests:\n  - path: /a/{id}\n    weight: 1\n",
		"bad dist":                     "requests:\n  - path: /a/{id}\n    weight: 1\n    params: {id: {dist: pareto, min: 1, max: 2}}\n",
		"zipf exponent":                "requests:\n  - path: /a/{id}\n    weight: 1\n    params: {id: {dist: zipf, min: 1, max: 2}}\n",
		"max below min":                "requests:\n  - path: /a/{id}\n    weight: 1\n    params: {id: {min: 5, max: 2}}\n",
		"hotset fraction":              "requests:\n  - path: /a/{id}\n    weight: 1\n    params: {id: {dist: hotset, min: 1, max: 9, hot_fraction: 2}}\n",
		"bad header":                   "headers: {\"X Bad\": v}\nrequests:\n  - path: /a\n    weight: 1\n",
		"json trailing":                `{"requests": [{"path": "/a", "weight": 1}]} {}`,
		"json unknown":                 `{"requests": [{"path": "/a", "weight": 1, "x": 1}]}`,
		"json repeated":                `{"requests": [{"path": "/a", "weight": 1}], "requests": [{"path": "/b", "weight": 1}]}`,
		"json repeated inner":          `{"requests": [{"path": "/a", "weight": 1, "path": "/b"}]}`,
		"yaml second doc":              "requests:\n  - path: /a\n    weight: 1\n---\nrequests:\n  - path: /b\n    weight: 1\n",
		"yaml second doc, unknown key": "requests:\n  - path: /a\n    weight: 1\n---\nnope: 1\n",
	}
	for name, text := range cases {
		_, err := ParseScenario([]byte(text))
		if err == nil {
			t.Errorf("%s: accepted", name)
			continue
		}
		if strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: error spans lines: %q", name, err)
		}
	}
}

func TestLoadScenario(t *testing.T) {
	for _, name := range []string{"users-uniform", "catalog-zipf"} {
		s, err := LoadScenario(name)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if s.Name != name {
			t.Errorf("%s: name %q", name, s.Name)
		}
		// The copy under bench/scenarios is the same file.
		b, err := os.ReadFile(filepath.Join("..", "..", "bench", "scenarios", name+".yaml"))
		if err != nil {
			t.Fatal(err)
		}
		e, _ := builtinScenarios.ReadFile("scenarios/" + name + ".yaml")
		if string(b) != string(e) {
			t.Errorf("bench/scenarios/%s.yaml differs from the shipped copy", name)
		}
	}
	// Every scenario the bench scripts use loads, under its own name.
	files, err := filepath.Glob(filepath.Join("..", "..", "bench", "scenarios", "*.yaml"))
	if err != nil || len(files) < 6 {
		t.Fatalf("bench/scenarios: %d files, %v", len(files), err)
	}
	for _, f := range files {
		s, err := LoadScenario(f)
		if err != nil {
			t.Errorf("%s: %v", f, err)
			continue
		}
		if want := strings.TrimSuffix(filepath.Base(f), ".yaml"); s.Name != want {
			t.Errorf("%s: name %q, want %q", f, s.Name, want)
		}
	}
	if _, err := LoadScenario("no-such-scenario"); err == nil || !strings.Contains(err.Error(), "users-uniform") {
		t.Errorf("unknown name: %v", err)
	}
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte("requests: [{path: nope, weight: 1}]"), 0o644)
	if _, err := LoadScenario(bad); err == nil || !strings.Contains(err.Error(), "bad.yaml") {
		t.Errorf("malformed file: %v", err)
	}
}

func TestRequestBuild(t *testing.T) {
	target, _ := url.Parse("http://example.com:8080/api/")
	sc, err := ParseScenario([]byte(`
headers: {Accept: application/json, X-Request-ID: "{uuid}"}
requests:
  - weight: 1
    method: POST
    path: /users/{id}/orders?n={seq}
    body: '{"id": {id}}'
    params: {id: {min: 7, max: 7}}
`))
	if err != nil {
		t.Fatal(err)
	}
	set, err := compileRequests(target, sc, []header{{"Accept", "text/plain"}, {"X-Trace", "t-{seq}"}})
	if err != nil {
		t.Fatal(err)
	}
	g := newGenerator(1)
	g.seq = 42
	got := string(set.pick(g.rng).build(nil, g))
	want := regexp.MustCompile(`^POST /api/users/7/orders\?n=42 HTTP/1\.1\r\n` +
		`Host: example\.com:8080\r\n` +
		`Accept: text/plain\r\n` +
		`X-Request-ID: [0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}\r\n` +
		`X-Trace: t-42\r\n` +
		`Content-Length: 9\r\n\r\n\{"id": 7\}$`)
	if !want.MatchString(got) {
		t.Errorf("request:\n%q", got)
	}

	// Without a scenario: a GET of the target, built once.
	set, _ = compileRequests(target, nil, nil)
	if tm := set.tmpls[0]; string(tm.static) != "GET /api/ HTTP/1.1\r\nHost: example.com:8080\r\n\r\n" {
		t.Errorf("plain GET: %q", tm.static)
	}
	// The target's query string goes with every scenario request, after
	// the path's own.
	keyed, _ := url.Parse("http://example.com/api?key=k1")
	set, _ = compileRequests(keyed, sc, nil)
	if got := string(set.pick(g.rng).build(nil, g)); !strings.HasPrefix(got, "POST /api/users/7/orders?n=42&key=k1 HTTP/1.1\r\n") {
		t.Errorf("with the target's query: %q", got)
	}
	plain, _ := ParseScenario([]byte("requests: [{weight: 1, path: /users/1}]"))
	set, _ = compileRequests(keyed, plain, nil)
	if got := string(set.pick(g.rng).build(nil, g)); !strings.HasPrefix(got, "GET /api/users/1?key=k1 HTTP/1.1\r\n") {
		t.Errorf("with the target's query, a path without one: %q", got)
	}
	// Building a request with placeholders into a reused buffer allocates nothing.
	set, _ = compileRequests(target, sc, []header{{"X-Trace", "t-{seq}"}})
	buf := make([]byte, 0, 1024)
	if a := testing.AllocsPerRun(100, func() {
		g.seq++
		buf = set.tmpls[0].build(buf[:0], g)
	}); a > 0 {
		t.Errorf("build allocates %v times per request", a)
	}
}

// A request whose only placeholder is its whole body, or that declares a
// parameter it does not use, compiles: the first is built afresh for every
// request, the second once.
func TestRequestBodyPlaceholderOnly(t *testing.T) {
	target, _ := url.Parse("http://example.com/")
	for _, tc := range []struct {
		name, scenario string
		static         bool
	}{
		{"seq", `requests: [{weight: 1, method: POST, path: /x, body: "{seq}"}]`, false},
		{"uuid", `requests: [{weight: 1, method: POST, path: /x, body: "{uuid}"}]`, false},
		{"param", `requests: [{weight: 1, method: POST, path: /x, body: "{id}", params: {id: {min: 1, max: 1000000}}}]`, false},
		{"unused param", `requests: [{weight: 1, path: /x, params: {id: {min: 1, max: 1000}}}]`, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sc, err := ParseScenario([]byte(tc.scenario))
			if err != nil {
				t.Fatal(err)
			}
			set, err := compileRequests(target, sc, nil)
			if err != nil {
				t.Fatal(err)
			}
			tm := set.tmpls[0]
			if (tm.static != nil) != tc.static {
				t.Fatalf("built once: %v, want %v", tm.static != nil, tc.static)
			}
			g := newGenerator(3)
			bodies := map[string]bool{}
			for i := range 20 {
				g.seq = uint64(i)
				req := string(tm.build(nil, g))
				bodies[req[strings.Index(req, "\r\n\r\n")+4:]] = true
			}
			if want := map[bool]int{true: 1, false: 20}[tc.static]; len(bodies) < want-1 || (tc.static && len(bodies) != 1) {
				t.Errorf("%d distinct bodies in 20 requests: %v", len(bodies), bodies)
			}
		})
	}
}

func TestRequestWeights(t *testing.T) {
	target, _ := url.Parse("http://h/")
	sc := &Scenario{Requests: []RequestSpec{{Weight: 70, Path: "/a"}, {Weight: 20, Path: "/b"}, {Weight: 10, Path: "/c"}}}
	set, err := compileRequests(target, sc, nil)
	if err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(1, 2))
	counts := map[string]int{}
	const n = 100_000
	for range n {
		counts[set.pick(r).name]++
	}
	for name, want := range map[string]float64{"GET /a": 0.7, "GET /b": 0.2, "GET /c": 0.1} {
		if got := float64(counts[name]) / n; math.Abs(got-want) > 0.01 {
			t.Errorf("%s drawn %.3f of the time, want %.2f", name, got, want)
		}
	}
}

func TestUniform(t *testing.T) {
	s, err := newSampler(Dist{Kind: "uniform", Min: 5, Max: 14})
	if err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(3, 4))
	seen := map[int64]int{}
	for range 100_000 {
		v := s.sample(r)
		if v < 5 || v > 14 {
			t.Fatalf("drew %d outside 5..14", v)
		}
		seen[v]++
	}
	for v := int64(5); v <= 14; v++ {
		if f := float64(seen[v]) / 100_000; math.Abs(f-0.1) > 0.01 {
			t.Errorf("value %d drawn %.3f of the time, want 0.1", v, f)
		}
	}
}

func TestZipf(t *testing.T) {
	const n = 1000
	r := rand.New(rand.NewPCG(5, 6))
	for _, exp := range []float64{0.8, 1.0, 1.2} {
		s, err := newSampler(Dist{Kind: "zipf", Exponent: exp, Min: 1, Max: n})
		if err != nil {
			t.Fatal(err)
		}
		counts := make([]int, n+1)
		const draws = 400_000
		for range draws {
			v := s.sample(r)
			if v < 1 || v > n {
				t.Fatalf("drew %d outside 1..%d", v, n)
			}
			counts[v]++
		}
		// P(rank k) = k^-s / H(n, s).
		var h float64
		for k := 1; k <= n; k++ {
			h += math.Pow(float64(k), -exp)
		}
		for _, k := range []int{1, 2, 10, 100} {
			want := math.Pow(float64(k), -exp) / h
			got := float64(counts[k]) / draws
			// 5 standard deviations of a binomial count, at least 3% relative.
			tol := math.Max(5*math.Sqrt(want*(1-want)/draws), 0.03*want)
			if math.Abs(got-want) > tol {
				t.Errorf("exponent %v: rank %d drawn %.5f of the time, want %.5f ± %.5f", exp, k, got, want, tol)
			}
		}
	}
}

func TestHotset(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	for _, scatter := range []bool{false, true} {
		s, err := newSampler(Dist{Kind: "hotset", Min: 1, Max: 1000, HotFraction: 0.1, HotWeight: 0.9, Scatter: scatter})
		if err != nil {
			t.Fatal(err)
		}
		counts := map[int64]int{}
		const draws = 200_000
		for range draws {
			v := s.sample(r)
			if v < 1 || v > 1000 {
				t.Fatalf("drew %d outside 1..1000", v)
			}
			counts[v]++
		}
		// The hot 100 values each get 0.9/100 of the draws, the other 900
		// each 0.1/900: the 100 most drawn values hold 90%.
		var freq []int
		for _, c := range counts {
			freq = append(freq, c)
		}
		top := sumTop(freq, 100)
		if f := float64(top) / draws; math.Abs(f-0.9) > 0.01 {
			t.Errorf("scatter %v: hot set drew %.3f, want 0.9", scatter, f)
		}
		if !scatter {
			var low int
			for v := int64(1); v <= 100; v++ {
				low += counts[v]
			}
			if f := float64(low) / draws; math.Abs(f-0.9) > 0.01 {
				t.Errorf("values 1..100 drew %.3f, want 0.9", f)
			}
		}
	}
}

func TestPermutationIsBijection(t *testing.T) {
	for _, n := range []uint64{3, 10, 1000, 100_000} {
		p := newPermutation(n, true)
		seen := make([]bool, n)
		for x := uint64(0); x < n; x++ {
			y := p.apply(x)
			if y >= n || seen[y] {
				t.Fatalf("n=%d: %d maps to %d twice or out of range", n, x, y)
			}
			seen[y] = true
		}
	}
}

func sumTop(v []int, k int) int {
	// Partial selection sort is enough for a test.
	sum := 0
	for i := 0; i < k && i < len(v); i++ {
		m := i
		for j := i + 1; j < len(v); j++ {
			if v[j] > v[m] {
				m = j
			}
		}
		v[i], v[m] = v[m], v[i]
		sum += v[i]
	}
	return sum
}
