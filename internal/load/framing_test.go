package load

import (
	"bufio"
	"context"
	"net"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// framingServer answers GET /s/{i} with responseSamples[i] (without the
// "NEXT" that follows it in the sample) and keeps the connection while the
// response allows; with closeAfter it closes every connection after its
// first response, without saying so, as a server's idle timeout does, and
// with resetAfter it resets it 20 ms later instead.
func framingServer(t *testing.T, closeAfter, resetAfter bool, served *atomic.Int64) net.Listener {
	return serveConns(t, func(c net.Conn) {
		defer c.Close()
		br := bufio.NewReader(c)
		for {
			line, err := readRequestHead(br)
			if err != nil {
				return
			}
			path := strings.Fields(line + " x x")[1]
			i, _ := strconv.Atoi(strings.TrimPrefix(path, "/s/"))
			resp, more := strings.CutSuffix(responseSamples[i], "NEXT")
			served.Add(1) // before the write: the client may finish the run first
			c.Write([]byte(resp))
			if !more || strings.Contains(resp, "close") || strings.HasPrefix(resp, "HTTP/1.0 200 OK\r\nContent") || closeAfter {
				return
			}
			if resetAfter {
				time.Sleep(20 * time.Millisecond)
				c.(*net.TCPConn).SetLinger(0)
				return
			}
		}
	})
}

// TestResponseFraming: responses framed every way (length, chunked with
// trailers, interim 1xx, no body, to the end of the connection, HTTP/1.0)
// are each counted once with their status, none as an error, and
// connections a server closed (or reset) while idle are dialed again
// without an error.
func TestResponseFraming(t *testing.T) {
	good := map[int]int{0: 200, 1: 404, 2: 200, 3: 200, 4: 201, 5: 204, 6: 304, 7: 200, 8: 200, 9: 200, 10: 200, 11: 200}
	sc := &Scenario{}
	for i := range good {
		sc.Requests = append(sc.Requests, RequestSpec{Weight: 1, Method: "GET", Path: "/s/" + strconv.Itoa(i)})
	}
	for _, mode := range []string{"keep", "close", "reset"} {
		forEachEngine(t, func(t *testing.T, with func(Config) Config) {
			var served atomic.Int64
			ln := framingServer(t, mode == "close", mode == "reset", &served)
			rec, err := Run(context.Background(), with(Config{Target: "http://" + ln.Addr().String(), Rate: 400,
				Duration: time.Second, Connections: 4, Scenario: sc, Timeout: time.Second}))
			if err != nil {
				t.Fatal(err)
			}
			tot := sumUp(t, rec)
			if tot.sent != 400 || tot.responses != 400 || len(tot.errors) != 0 || served.Load() != 400 {
				t.Fatalf("%s after each response: sent %d, responses %d, errors %v, served %d; want 400 each, no errors",
					mode, tot.sent, tot.responses, tot.errors, served.Load())
			}
			for status := range tot.statuses {
				if status != 200 && status != 404 && status != 201 && status != 204 && status != 304 {
					t.Errorf("status %d counted", status)
				}
			}
		})
	}
}
