package pgembed

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"strconv"

	"github.com/jackc/pgx/v5/pgconn"
)

// SharedMemory is what the running postmaster's main shared memory segment
// (shared_buffers and the rest) sits on.
//
// PostgreSQL asks for huge pages (huge_pages = try, see settings) and falls
// back to 4 kB pages when the kernel has too few reserved (vm.nr_hugepages).
// On 2 MB pages every backend maps the buffers with a few hundred page
// table entries instead of a hundred thousand: a backend new to the data
// takes fewer page faults, and every lookup fewer TLB misses.
type SharedMemory struct {
	// HugePages: the segment is on huge pages.
	HugePages bool
	// HugePagesNeeded is how many huge pages the segment takes
	// (shared_memory_size_in_huge_pages); 0 when the kernel offers none.
	HugePagesNeeded int
}

// SharedMemory reports what the postmaster's shared memory is on: it reads
// the postmaster's memory map, which we may (its parent, as root or as
// its user), and asks the server how many huge pages it would take.
func (s *Server) SharedMemory(ctx context.Context) (SharedMemory, error) {
	pid := s.PID()
	if pid == 0 {
		return SharedMemory{}, fmt.Errorf("pgembed: postgres is not running")
	}
	f, err := os.Open(fmt.Sprintf("/proc/%d/maps", pid))
	if err != nil {
		return SharedMemory{}, fmt.Errorf("pgembed: %w", err)
	}
	defer f.Close()
	huge, err := mapsHaveHugeSegment(f)
	if err != nil {
		return SharedMemory{}, fmt.Errorf("pgembed: reading postgres's memory map: %w", err)
	}
	needed, err := s.Socket().show(ctx, "shared_memory_size_in_huge_pages")
	if err != nil {
		return SharedMemory{}, err
	}
	n, err := strconv.Atoi(needed)
	if err != nil {
		return SharedMemory{}, fmt.Errorf("pgembed: shared_memory_size_in_huge_pages = %q", needed)
	}
	return SharedMemory{HugePages: huge, HugePagesNeeded: max(n, 0)}, nil
}

// hugeSegment names a shared mapping backed by hugetlbfs in
// /proc/PID/maps: PostgreSQL maps its segment with MAP_HUGETLB when it got
// huge pages, and from /dev/zero when it did not.
var hugeSegment = []byte("/anon_hugepage (deleted)")

// mapsHaveHugeSegment reports whether a /proc/PID/maps listing holds a
// shared (rw-s) mapping on huge pages.
func mapsHaveHugeSegment(r io.Reader) (bool, error) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		fields := bytes.Fields(sc.Bytes())
		if len(fields) >= 6 && bytes.HasSuffix(fields[1], []byte("s")) &&
			bytes.HasSuffix(sc.Bytes(), hugeSegment) {
			return true, nil
		}
	}
	return false, sc.Err()
}

// show returns a setting's value, as SHOW prints it, on a connection of
// its own to the postgres database.
func (k Socket) show(ctx context.Context, name string) (value string, err error) {
	err = k.withConn(ctx, func(conn *pgconn.PgConn) error {
		res := conn.ExecParams(ctx, "SELECT current_setting($1)", [][]byte{[]byte(name)}, nil, nil, nil).Read()
		if res.Err != nil {
			return fmt.Errorf("pgembed: SHOW %s: %w", name, res.Err)
		}
		if len(res.Rows) != 1 || len(res.Rows[0]) != 1 {
			return fmt.Errorf("pgembed: SHOW %s: no value", name)
		}
		value = string(res.Rows[0][0])
		return nil
	})
	return value, err
}
