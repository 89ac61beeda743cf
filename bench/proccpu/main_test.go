package main

import (
	"io/fs"
	"os"
	"slices"
	"testing"
)

// fakeProcs is a process table for postgresTicks: pid -> stat.
type fakeProcs struct {
	procs map[int]*stat
	// beforeStat, when set, runs before each read of a pid's stat: it
	// stages what happens while the table is being read.
	beforeStat func(pid int)
}

func (f *fakeProcs) install(t *testing.T) {
	t.Helper()
	oldStat, oldList := statOf, listPIDs
	t.Cleanup(func() { statOf, listPIDs = oldStat, oldList })
	statOf = func(pid int) (stat, error) {
		if f.beforeStat != nil {
			f.beforeStat(pid)
		}
		s, ok := f.procs[pid]
		if !ok {
			return stat{}, fs.ErrNotExist
		}
		return *s, nil
	}
	listPIDs = func() ([]int, error) {
		pids := make([]int, 0, len(f.procs))
		for pid := range f.procs {
			pids = append(pids, pid)
		}
		slices.Sort(pids)
		return pids, nil
	}
}

// reap is the postmaster waiting for its exited child pid: the child's
// times move to the parent's cutime and cstime, and its pid goes.
func (f *fakeProcs) reap(pid int) {
	c := f.procs[pid]
	p := f.procs[c.ppid]
	p.cutime += c.utime + c.cutime
	p.cstime += c.stime + c.cstime
	delete(f.procs, pid)
}

const pm = 100

func newTable() *fakeProcs {
	return &fakeProcs{procs: map[int]*stat{
		1:   {ppid: 0, utime: 1000, stime: 1000},
		pm:  {ppid: 1, utime: 40, stime: 10},
		101: {ppid: pm, utime: 500, stime: 300}, // a backend
		102: {ppid: pm, utime: 20, stime: 5},    // the checkpointer
		200: {ppid: 1, utime: 7000, stime: 90},  // someone else's
	}}
}

func ticks(t *testing.T, pm int) (int64, int) {
	t.Helper()
	n, procs, err := postgresTicks(pm)
	if err != nil {
		t.Fatal(err)
	}
	return n, procs
}

func TestPostgresTicksSumsPostmasterAndChildren(t *testing.T) {
	f := newTable()
	f.install(t)
	n, procs := ticks(t, pm)
	if want := int64(40 + 10 + 500 + 300 + 20 + 5); n != want || procs != 3 {
		t.Errorf("got %d ticks over %d processes, want %d over 3", n, procs, want)
	}
}

// Backends that exit during the run, or start and exit within it, keep
// their share through the postmaster's cutime and cstime.
func TestPostgresTicksKeepsExitedBackends(t *testing.T) {
	f := newTable()
	f.install(t)
	before, _ := ticks(t, pm)

	f.procs[101].utime += 30 // works, then exits
	f.reap(101)
	f.procs[103] = &stat{ppid: pm, utime: 8, stime: 4} // starts and exits
	f.reap(103)
	f.procs[104] = &stat{ppid: pm, utime: 2, stime: 1} // starts, still there
	f.procs[pm].utime++

	after, procs := ticks(t, pm)
	if got, want := after-before, int64(30+8+4+2+1+1); got != want {
		t.Errorf("delta %d ticks, want %d", got, want)
	}
	if procs != 3 {
		t.Errorf("%d processes, want 3 (postmaster, checkpointer, 104)", procs)
	}
}

// A backend the postmaster reaps after its stat has been read, but before
// the backend's own is: its time is in neither.
func TestPostgresTicksBackendReapedDuringTheScan(t *testing.T) {
	for _, tc := range []struct {
		name  string
		first bool // the first snapshot is the one disturbed
	}{{"before the run", true}, {"after the run", false}} {
		t.Run(tc.name, func(t *testing.T) {
			f := newTable()
			f.install(t)
			stage := func() {
				f.beforeStat = func(pid int) {
					if pid == 101 {
						f.beforeStat = nil
						f.reap(101)
					}
				}
			}
			if tc.first {
				stage()
			}
			before, _ := ticks(t, pm)
			if !tc.first {
				stage()
			}
			after, _ := ticks(t, pm)
			if after != before {
				t.Errorf("nothing ran, yet the delta is %d ticks", after-before)
			}
		})
	}
}

func TestReadStatOwnProcess(t *testing.T) {
	s, err := readStat(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if s.ppid != os.Getppid() {
		t.Errorf("ppid %d, want %d", s.ppid, os.Getppid())
	}
}
