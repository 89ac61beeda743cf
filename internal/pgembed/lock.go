package pgembed

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// lockFile sits beside the cluster, not in it, so that taking it needs no
// access to the cluster directory and it never travels with a copy of it.
const lockFile = "storefront.lock"

// inUseError is the message for every way a data directory can be taken.
func inUseError(dataDir string, pid int, hint string) error {
	return fmt.Errorf("pgembed: data directory %s is in use by another storefront/postgres (pid %d)%s", dataDir, pid, hint)
}

// lockDataDir takes an exclusive flock on dataDir/storefront.lock and writes
// our pid into it for the message another process gets. The kernel drops
// the lock when the file is closed or the process dies, so it never goes
// stale.
func lockDataDir(dataDir string) (*os.File, error) {
	path := filepath.Join(dataDir, lockFile)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("pgembed: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			data, _ := os.ReadFile(path)
			pid, _ := strconv.Atoi(strings.TrimSpace(string(data)))
			return nil, inUseError(dataDir, pid, "")
		}
		return nil, fmt.Errorf("pgembed: lock %s: %w", path, err)
	}
	if err := f.Truncate(0); err == nil {
		f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return f, nil
}

// pidFile is what postgres writes to postmaster.pid: line 1 is the
// postmaster's pid, line 8 its state ("starting", "ready", "stopping").
type pidFile struct {
	pid    int
	status string
}

func readPidFile(clusterDir string) (pidFile, bool) {
	data, err := os.ReadFile(filepath.Join(clusterDir, "postmaster.pid"))
	if err != nil {
		return pidFile{}, false
	}
	lines := strings.Split(string(data), "\n")
	var pf pidFile
	pf.pid, _ = strconv.Atoi(strings.TrimSpace(lines[0]))
	if len(lines) > 7 {
		pf.status = strings.TrimSpace(lines[7])
	}
	return pf, true
}

// alive reports whether a process with pid exists (EPERM: under another
// user) and is not a zombie: a postmaster whose parent died is reparented
// to an init that may take its time to reap it.
func alive(pid int) bool {
	if pid <= 0 {
		return false
	}
	if err := syscall.Kill(pid, 0); err != nil && !errors.Is(err, syscall.EPERM) {
		return false
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true // no /proc: kill's word must do
	}
	// "pid (comm) S ...": the state follows the last ')'.
	rest := string(stat[strings.LastIndexByte(string(stat), ')')+1:])
	return !strings.HasPrefix(strings.TrimSpace(rest), "Z")
}

// clusterProcess returns the pid of a live process serving clusterDir, or
// 0. Every postgres process, postmaster and backends alike, has the data
// directory as its working directory, which also catches backends that
// outlived a killed postmaster and survives pid reuse, unlike postmaster.pid
// alone.
func clusterProcess(clusterDir string, pf pidFile) int {
	real, err := filepath.EvalSymlinks(clusterDir)
	if err != nil {
		return 0
	}
	if _, err := os.Readlink("/proc/self/cwd"); err != nil {
		// No /proc to look in: trust the pid file, as postgres does.
		if alive(pf.pid) {
			return pf.pid
		}
		return 0
	}
	if alive(pf.pid) {
		cwd, err := os.Readlink(fmt.Sprintf("/proc/%d/cwd", pf.pid))
		// A process we may not inspect could be the postmaster only if it
		// runs as the cluster's owner, as postgres must.
		if cwd == real || errors.Is(err, fs.ErrPermission) && ownedBySameUser(pf.pid, real) {
			return pf.pid
		}
	}
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return 0
	}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		// A shell cd'ed into the cluster is no server.
		comm, _ := os.ReadFile("/proc/" + e.Name() + "/comm")
		if strings.TrimSpace(string(comm)) != "postgres" {
			continue
		}
		if cwd, err := os.Readlink("/proc/" + e.Name() + "/cwd"); err == nil && cwd == real {
			return pid
		}
	}
	return 0
}

// removeSocketLocks removes the socket lock files (.s.PGSQL.<port>.lock) in
// dir that name pid, the postmaster of a crashed run.
func removeSocketLocks(dir string, pid int) error {
	locks, _ := filepath.Glob(filepath.Join(dir, ".s.PGSQL.*.lock"))
	for _, path := range locks {
		data, err := os.ReadFile(path)
		if err != nil {
			continue
		}
		first, _, _ := strings.Cut(string(data), "\n")
		if p, err := strconv.Atoi(strings.TrimSpace(first)); err != nil || p != pid {
			continue
		}
		if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("pgembed: %w", err)
		}
	}
	return nil
}

// ownedBySameUser reports whether process pid runs as the owner of dir, or
// cannot tell.
func ownedBySameUser(pid int, dir string) bool {
	proc, err1 := os.Stat(fmt.Sprintf("/proc/%d", pid))
	d, err2 := os.Stat(dir)
	if err1 != nil || err2 != nil {
		return true
	}
	ps, ok1 := proc.Sys().(*syscall.Stat_t)
	ds, ok2 := d.Sys().(*syscall.Stat_t)
	return !ok1 || !ok2 || ps.Uid == ds.Uid
}
