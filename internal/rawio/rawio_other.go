//go:build !unix

package rawio

import "net"

// Wrap returns c: raw system calls are made on Unix systems only.
func Wrap(c net.Conn) net.Conn { return c }
