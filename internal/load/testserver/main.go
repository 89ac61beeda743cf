// Command testserver is a static HTTP server for measuring load generators
// against each other (bench/wrkcompare.sh): every request gets the same
// small JSON body from fasthttp. It is a benchmark fixture, not part of
// loadgen's interface.
package main

import (
	"flag"
	"fmt"
	"log"
	"net"
	"os"

	"github.com/valyala/fasthttp"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:0", "listen address")
	flag.Parse()
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatal(err)
	}
	// The chosen address is the first line on stdout, for scripts.
	fmt.Fprintln(os.Stdout, ln.Addr().String())
	body := []byte(`{"id":42,"name":"Ada Lovelace","email":"ada@example.com"}`)
	srv := &fasthttp.Server{
		Handler: func(ctx *fasthttp.RequestCtx) {
			ctx.SetContentType("application/json")
			ctx.SetBody(body)
		},
		Name: "testserver",
	}
	log.Fatal(srv.Serve(ln))
}
