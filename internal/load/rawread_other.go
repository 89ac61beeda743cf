//go:build !unix

package load

import (
	"errors"
	"net"
)

// rawConnIO needs a Unix file descriptor; elsewhere connections are read
// the ordinary way (newRawConnIO fails and the client keeps the net.Conn).
type rawConnIO struct{}

func newRawConnIO(*net.TCPConn) (*rawConnIO, error) {
	return nil, errors.New("raw reads need a Unix system")
}

func (r *rawConnIO) writeOnRead([]byte) {}

func (r *rawConnIO) Read([]byte) (int, error) { return 0, errors.New("raw reads need a Unix system") }
