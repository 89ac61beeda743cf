// Command conns opens many idle keep-alive connections to a server, to
// measure what they cost it in memory.
//
//	conns --addr 127.0.0.1:8080 --n 10000 --hold 60s
//
// Each connection sends one request (GET /users/<k>, k = 1, 2, ...; --path
// for another) and reads the whole response, so the server has accepted it,
// served it and keeps it as an idle keep-alive connection. When all are open
// conns prints "open N" on stdout, then holds them until --hold has passed or
// SIGINT/SIGTERM arrives. Before exiting it counts the connections the
// server has closed meanwhile and prints "alive N of M".
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

func main() {
	addr := flag.String("addr", "", "host:port of the server (required)")
	n := flag.Int("n", 10000, "connections to open")
	path := flag.String("path", "/users/{k}", "request path; {k} is replaced by the connection's number, from 1")
	dialers := flag.Int("parallel", 64, "connections being opened at once")
	hold := flag.Duration("hold", time.Minute, "how long to hold the connections open")
	timeout := flag.Duration("timeout", 5*time.Second, "timeout for dialling and for each response")
	flag.Parse()
	if *addr == "" || *n < 1 || *dialers < 1 {
		flag.Usage()
		os.Exit(2)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	conns := make([]net.Conn, *n)
	var next, failed atomic.Int64
	var firstErr error
	var errOnce sync.Once
	var wg sync.WaitGroup
	for range min(*dialers, *n) {
		wg.Go(func() {
			for ctx.Err() == nil {
				i := int(next.Add(1)) - 1
				if i >= *n {
					return
				}
				c, err := open(*addr, strings.ReplaceAll(*path, "{k}", fmt.Sprint(i+1)), *timeout)
				if err != nil {
					failed.Add(1)
					errOnce.Do(func() { firstErr = err })
					continue
				}
				conns[i] = c
			}
		})
	}
	wg.Wait()
	if f := failed.Load(); f > 0 {
		fmt.Fprintf(os.Stderr, "conns: %d of %d connections failed; first error: %v\n", f, *n, firstErr)
	}
	if ctx.Err() != nil {
		closeAll(conns)
		os.Exit(1)
	}
	fmt.Printf("open %d\n", int64(*n)-failed.Load())

	select {
	case <-ctx.Done():
	case <-time.After(*hold):
	}
	alive, total := countAlive(conns)
	fmt.Printf("alive %d of %d\n", alive, total)
	closeAll(conns)
}

// open dials addr, sends one GET for path and reads the response to its end.
func open(addr, path string, timeout time.Duration) (net.Conn, error) {
	c, err := net.DialTimeout("tcp", addr, timeout)
	if err != nil {
		return nil, err
	}
	_ = c.SetDeadline(time.Now().Add(timeout))
	if _, err := fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: %s\r\nAccept: application/json\r\n\r\n", path, addr); err != nil {
		c.Close()
		return nil, err
	}
	// A bufio.Reader may read ahead, but the server sends nothing after the
	// response, so dropping the reader loses nothing.
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		c.Close()
		return nil, err
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err == nil && resp.Close {
		err = errors.New("server asked to close the connection")
	}
	if err != nil {
		c.Close()
		return nil, err
	}
	_ = c.SetDeadline(time.Time{})
	return c, nil
}

// countAlive reports how many open connections the server has not closed.
func countAlive(conns []net.Conn) (alive, total int) {
	for _, c := range conns {
		if c == nil {
			continue
		}
		total++
		if isAlive(c) {
			alive++
		}
	}
	return alive, total
}

// isAlive peeks at the socket without waiting: nothing to read means the
// peer is still there; end of file, an error or bytes it should not have
// sent mean it is not. (A read with a short deadline costs about 1 ms a
// connection: 10 s for 10,000, all compare.sh waits before killing conns.)
func isAlive(c net.Conn) bool {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return false
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	alive := false
	err = raw.Read(func(fd uintptr) bool {
		var b [1]byte
		_, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		alive = err == syscall.EAGAIN || err == syscall.EWOULDBLOCK
		return true // answered: do not wait for the socket to become readable
	})
	return err == nil && alive
}

func closeAll(conns []net.Conn) {
	for _, c := range conns {
		if c != nil {
			c.Close()
		}
	}
}
