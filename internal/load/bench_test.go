package load

import (
	"bufio"
	"io"
	"net/url"
	"testing"
	"time"
)

// repeatReader serves the same bytes forever.
type repeatReader struct {
	data []byte
	off  int
}

func (r *repeatReader) Read(p []byte) (int, error) {
	n := copy(p, r.data[r.off:])
	r.off = (r.off + n) % len(r.data)
	return n, nil
}

func BenchmarkParseResponse(b *testing.B) {
	resp := []byte("HTTP/1.1 200 OK\r\nServer: testserver\r\nDate: Fri, 27 Nov 2026 14:00:00 GMT\r\n" +
		"Content-Type: application/json\r\nContent-Length: 57\r\n\r\n" +
		`{"id":42,"name":"Ada Lovelace","email":"ada@example.com"}`)
	c := &httpConn{br: bufio.NewReaderSize(&repeatReader{data: resp}, readBufferSize)}
	b.ReportAllocs()
	b.SetBytes(int64(len(resp)))
	for b.Loop() {
		if status, _, err := c.readResponse(false); status != 200 || err != nil {
			b.Fatal(status, err)
		}
	}
}

func BenchmarkBuildRequest(b *testing.B) {
	sc, err := LoadScenario("catalog-zipf")
	if err != nil {
		b.Fatal(err)
	}
	target, _ := url.Parse("http://127.0.0.1:8080/")
	set, err := compileRequests(target, sc, nil)
	if err != nil {
		b.Fatal(err)
	}
	g := newGenerator(1)
	buf := make([]byte, 0, 512)
	b.ReportAllocs()
	for b.Loop() {
		g.seq++
		buf = set.pick(g.rng).build(buf[:0], g)
	}
}

func BenchmarkRecord(b *testing.B) {
	rec := newRecorder(1, false)
	o := outcome{part: measured, status: 200, corrected: 1500 * time.Microsecond, uncorrected: time.Millisecond}
	b.ReportAllocs()
	for b.Loop() {
		rec.record(0, o)
	}
}

var _ io.Reader = (*repeatReader)(nil)
