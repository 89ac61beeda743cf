package httpapi

import (
	"net/http"
	"net/http/pprof"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// AdminHandler serves the admin listener: /metrics, /debug/pprof/ and the
// same /healthz and /readyz as the public API. It is meant for loopback or
// a private network only (the default address is 127.0.0.1:9090): pprof
// exposes internals.
func (s *Server) AdminHandler(reg *prometheus.Registry) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(bodyHealthy)
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		unready := func(status string) {
			// Like every 503 of the API: come back in a second.
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte(`{"status":"` + status + `"}`))
		}
		if s.draining.Load() {
			unready("draining")
			return
		}
		if err := s.svc.Health.Ping(r.Context()); err != nil {
			unready("database unreachable")
			return
		}
		_, _ = w.Write(bodyReady)
	})
	return mux
}

// AdminSwitch is the admin listener's handler from the moment its port is
// bound: while the program starts (the database opened, migrated, perhaps
// seeded, which can take minutes), /healthz answers 200, since the process
// runs, and everything else 503 with {"status":"starting"}; a liveness
// probe then does not kill a slow start. Set hands over to the full admin
// handler.
type AdminSwitch struct {
	h atomic.Pointer[http.Handler]
}

// Set makes h answer every request from now on.
func (a *AdminSwitch) Set(h http.Handler) { a.h.Store(&h) }

// ServeHTTP implements http.Handler.
func (a *AdminSwitch) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if h := a.h.Load(); h != nil {
		(*h).ServeHTTP(w, r)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	if r.URL.Path == "/healthz" && (r.Method == http.MethodGet || r.Method == http.MethodHead) {
		_, _ = w.Write(bodyHealthy)
		return
	}
	w.Header().Set("Retry-After", "1")
	w.WriteHeader(http.StatusServiceUnavailable)
	_, _ = w.Write([]byte(`{"status":"starting"}`))
}
