// Package faults is storefront's fault-injection suite: the real server
// binary, a real PostgreSQL, a strict open-model client and, where the
// network is the fault, toxiproxy between server and database. It proves
// that storefront keeps "zero failed requests" through restarts, database
// faults, overload and hostile clients.
//
// The package holds tests only. `go test ./faults/` (part of `make test`)
// runs the short form; `make faults` (`-tags faults`) runs the full suite
// with the figures of README.md. Each scenario prints one line, and the
// suite writes a JSON summary to $FAULTS_OUT (default faults/results/).
package faults
