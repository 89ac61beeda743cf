package main

import (
	"net"
	"testing"
	"time"
)

// countAlive tells connections the server still holds from those it closed,
// and does not wait on each: compare.sh gives conns 10 s to report on
// 10,000 connections once it asks it to stop.
func TestCountAlive(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	const n, closed = 1000, 100
	accepted := make(chan net.Conn, n)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted <- c
		}
	}()
	conns := make([]net.Conn, n)
	for i := range conns {
		if conns[i], err = net.Dial("tcp", ln.Addr().String()); err != nil {
			t.Fatal(err)
		}
	}
	defer closeAll(conns)
	var server []net.Conn
	for range n {
		server = append(server, <-accepted)
	}
	defer closeAll(server)
	for _, c := range server[:closed] {
		c.Close()
	}
	time.Sleep(100 * time.Millisecond) // the FINs arrive

	start := time.Now()
	alive, total := countAlive(conns)
	took := time.Since(start)
	if alive != n-closed || total != n {
		t.Errorf("alive %d of %d, want %d of %d", alive, total, n-closed, n)
	}
	if limit := n * time.Millisecond / 4; took > limit {
		t.Errorf("counting %d connections took %v, more than %v", n, took, limit)
	}
}
