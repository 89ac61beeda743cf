// Command proccpu accounts for the CPU time and memory a benchmark run
// costs the machine: the storefront process, every process of its private
// PostgreSQL (the postmaster and all its children) and the load generator.
//
//	proccpu measure --pid PID --pgdata DIR --out FILE -- CMD [ARGS...]
//	proccpu rss --pid PID
//	proccpu snapshot --pid PID --pgdata DIR
//
// measure reads utime+stime from /proc/<pid>/stat of the server and of all
// PostgreSQL processes before and after CMD, runs CMD (the load generator)
// as its child and takes the child's own CPU time from its rusage. While CMD
// runs it samples the server's VmRSS every 100 ms. It writes one JSON object
// to FILE and exits with CMD's exit status.
//
// PostgreSQL's share is the sum over the postmaster (its pid is the first
// line of DIR/postmaster.pid) and every process whose parent it is, plus the
// postmaster's cutime+cstime: backends that exit during the run are reaped by
// the postmaster and their CPU time moves there, so nothing is lost (the
// postmaster is read again after its children, and the reading repeated
// when it reaped one meanwhile).
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// userHZ is the unit of the time fields of /proc/<pid>/stat. The kernel
// fixes it at 100 for user space (USER_HZ) whatever its internal HZ.
const userHZ = 100

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	var err error
	code := 0
	switch os.Args[1] {
	case "measure":
		code, err = measureCmd(os.Args[2:])
	case "rss":
		err = rssCmd(os.Args[2:])
	case "snapshot":
		err = snapshotCmd(os.Args[2:])
	default:
		usage()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "proccpu:", err)
		os.Exit(2)
	}
	os.Exit(code)
}

func usage() {
	fmt.Fprintln(os.Stderr, `usage:
  proccpu measure --pid PID --pgdata DIR --out FILE -- CMD [ARGS...]
  proccpu rss --pid PID
  proccpu snapshot --pid PID --pgdata DIR`)
	os.Exit(2)
}

// stat is what one /proc/<pid>/stat line tells us.
type stat struct {
	ppid                         int
	utime, stime, cutime, cstime int64 // clock ticks
}

func readStat(pid int) (stat, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return stat{}, err
	}
	// The command name (field 2) may hold spaces and parentheses: fields
	// are counted from the last ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return stat{}, fmt.Errorf("/proc/%d/stat: no ')'", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 15 {
		return stat{}, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(f))
	}
	// f[0] is field 3 (state): ppid is field 4, utime..cstime fields 14..17.
	var s stat
	var errs []error
	num := func(k int) int64 {
		v, err := strconv.ParseInt(f[k], 10, 64)
		errs = append(errs, err)
		return v
	}
	s.ppid = int(num(1))
	s.utime, s.stime, s.cutime, s.cstime = num(11), num(12), num(13), num(14)
	return s, errors.Join(errs...)
}

// snapshot is the CPU time used so far by the server, by PostgreSQL and
// by the whole machine.
type snapshot struct {
	MachineTicks  int64 `json:"machine_busy_ticks"`
	ServerTicks   int64 `json:"server_ticks"`
	PostgresTicks int64 `json:"postgres_ticks"`
	PostgresProcs int   `json:"postgres_procs"`
	ServerRSSKB   int64 `json:"server_rss_kb"`
}

func takeSnapshot(serverPID int, pgdata string) (snapshot, error) {
	var sn snapshot
	var err error
	if sn.MachineTicks, err = machineBusyTicks(); err != nil {
		return sn, err
	}
	s, err := readStat(serverPID)
	if err != nil {
		return sn, fmt.Errorf("server: %w", err)
	}
	sn.ServerTicks = s.utime + s.stime
	if sn.ServerRSSKB, err = readRSS(serverPID); err != nil {
		return sn, err
	}
	if pgdata == "" {
		return sn, nil
	}
	pm, err := postmasterPID(pgdata)
	if err != nil {
		return sn, err
	}
	if sn.PostgresTicks, sn.PostgresProcs, err = postgresTicks(pm); err != nil {
		return sn, err
	}
	return sn, nil
}

// The process table, read through these so that tests can stage a run.
var (
	statOf   = readStat
	listPIDs = procPIDs
)

// procPIDs lists the pids under /proc.
func procPIDs() ([]int, error) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	pids := make([]int, 0, len(entries))
	for _, e := range entries {
		if pid, err := strconv.Atoi(e.Name()); err == nil {
			pids = append(pids, pid)
		}
	}
	return pids, nil
}

// postgresTicks is the CPU time of the postmaster pm and of all its
// children, living or reaped (the postmaster's cutime+cstime), and how many
// processes that is.
//
// A child reaped while the table is read would be in neither part: its
// time reaches the postmaster's cutime after that was read, and its stat
// is gone when its turn comes. The postmaster is read again after the
// children; when its cutime+cstime moved, the whole reading is repeated.
func postgresTicks(pm int) (ticks int64, procs int, err error) {
	const tries = 50
	for range tries {
		first, err := statOf(pm)
		if err != nil {
			return 0, 0, fmt.Errorf("postmaster: %w", err)
		}
		ticks, procs, err = childTicks(pm)
		if err != nil {
			return 0, 0, err
		}
		last, err := statOf(pm)
		if err != nil {
			return 0, 0, fmt.Errorf("postmaster: %w", err)
		}
		if last.cutime+last.cstime == first.cutime+first.cstime {
			return ticks + last.utime + last.stime + last.cutime + last.cstime, procs + 1, nil
		}
	}
	return 0, 0, fmt.Errorf("postmaster %d reaped children during each of %d readings of its children", pm, tries)
}

// childTicks sums utime+stime over the processes whose parent is pm.
func childTicks(pm int) (ticks int64, procs int, err error) {
	pids, err := listPIDs()
	if err != nil {
		return 0, 0, err
	}
	for _, pid := range pids {
		if pid == pm {
			continue
		}
		cs, err := statOf(pid)
		if err != nil || cs.ppid != pm {
			continue // gone meanwhile, or not ours
		}
		// A backend's own children are never waited for by it, so its
		// cutime/cstime stay zero; its utime+stime is all there is.
		ticks += cs.utime + cs.stime
		procs++
	}
	return ticks, procs, nil
}

// machineBusyTicks is the non-idle CPU time of all CPUs since boot, from
// the "cpu" line of /proc/stat: user, nice, system, irq, softirq and steal
// (guest time is already counted in user).
func machineBusyTicks() (int64, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, err
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 9 || f[0] != "cpu" {
		return 0, fmt.Errorf("/proc/stat: unexpected first line %q", line)
	}
	var busy int64
	for _, k := range []int{1, 2, 3, 6, 7, 8} { // user nice system [idle iowait] irq softirq steal
		v, err := strconv.ParseInt(f[k], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("/proc/stat: %w", err)
		}
		busy += v
	}
	return busy, nil
}

func postmasterPID(pgdata string) (int, error) {
	f, err := os.Open(filepath.Join(pgdata, "postmaster.pid"))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	if !sc.Scan() {
		return 0, fmt.Errorf("%s/postmaster.pid is empty", pgdata)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(sc.Text()))
	if err != nil {
		return 0, fmt.Errorf("%s/postmaster.pid: %w", pgdata, err)
	}
	return pid, nil
}

// readRSS returns VmRSS of pid in kB.
func readRSS(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			return strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		}
	}
	return 0, fmt.Errorf("/proc/%d/status: no VmRSS", pid)
}

type cpuSeconds struct {
	CPU  float64 `json:"cpu_s"`
	User float64 `json:"user_s,omitempty"`
	Sys  float64 `json:"sys_s,omitempty"`
}

type measurement struct {
	WallS float64 `json:"wall_s"`
	// Machine is the busy CPU time of all CPUs; Others what is left of it
	// after the server, PostgreSQL and the command: other programs on the
	// machine (and the kernel's work not charged to any of them).
	Machine  cpuSeconds `json:"machine"`
	Others   cpuSeconds `json:"others"`
	Server   server     `json:"server"`
	Postgres struct {
		cpuSeconds
		Procs int `json:"procs"`
	} `json:"postgres"`
	Command struct {
		cpuSeconds
		Args     []string `json:"args"`
		ExitCode int      `json:"exit_code"`
		MaxRSSKB int64    `json:"max_rss_kb"`
	} `json:"command"`
}

type server struct {
	PID int `json:"pid"`
	cpuSeconds
	RSSStartKB int64 `json:"rss_start_kb"`
	RSSEndKB   int64 `json:"rss_end_kb"`
	RSSMaxKB   int64 `json:"rss_max_kb"`
}

func measureCmd(args []string) (int, error) {
	fs := flag.NewFlagSet("proccpu measure", flag.ExitOnError)
	pid := fs.Int("pid", 0, "pid of the server")
	pgdata := fs.String("pgdata", "", "PostgreSQL data directory holding postmaster.pid (empty: no PostgreSQL)")
	out := fs.String("out", "", "JSON file to write")
	every := fs.Duration("sample", 100*time.Millisecond, "how often to sample the server's RSS")
	if err := fs.Parse(args); err != nil {
		return 2, err
	}
	if *pid <= 0 || *out == "" || fs.NArg() == 0 {
		return 2, errors.New("measure needs --pid, --out and a command after --")
	}

	// Ctrl-C reaches the whole foreground group, the command included; we
	// wait for it to finish and still report.
	signal.Ignore(syscall.SIGINT)

	before, err := takeSnapshot(*pid, *pgdata)
	if err != nil {
		return 2, err
	}
	maxRSS := before.ServerRSSKB
	var mu sync.Mutex
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		t := time.NewTicker(*every)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				if v, err := readRSS(*pid); err == nil {
					mu.Lock()
					maxRSS = max(maxRSS, v)
					mu.Unlock()
				}
			}
		}
	}()

	cmd := exec.Command(fs.Arg(0), fs.Args()[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	start := time.Now()
	runErr := cmd.Run()
	wall := time.Since(start)
	close(stop)
	<-sampled

	var m measurement
	m.Command.Args = fs.Args()
	if runErr != nil {
		var exitErr *exec.ExitError
		if !errors.As(runErr, &exitErr) {
			return 2, runErr
		}
	}
	m.Command.ExitCode = cmd.ProcessState.ExitCode()
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		m.Command.User = tv(ru.Utime)
		m.Command.Sys = tv(ru.Stime)
		m.Command.CPU = m.Command.User + m.Command.Sys
		m.Command.MaxRSSKB = int64(ru.Maxrss) // int32 on 32-bit systems
	}

	after, err := takeSnapshot(*pid, *pgdata)
	if err != nil {
		return 2, fmt.Errorf("after the run: %w", err)
	}
	m.WallS = wall.Seconds()
	m.Server.PID = *pid
	m.Server.CPU = float64(after.ServerTicks-before.ServerTicks) / userHZ
	m.Server.RSSStartKB, m.Server.RSSEndKB = before.ServerRSSKB, after.ServerRSSKB
	m.Server.RSSMaxKB = max(maxRSS, after.ServerRSSKB)
	m.Postgres.CPU = float64(after.PostgresTicks-before.PostgresTicks) / userHZ
	m.Postgres.Procs = after.PostgresProcs
	m.Machine.CPU = float64(after.MachineTicks-before.MachineTicks) / userHZ
	m.Others.CPU = m.Machine.CPU - m.Server.CPU - m.Postgres.CPU - m.Command.CPU

	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return 2, err
	}
	if err := os.WriteFile(*out, append(b, '\n'), 0o644); err != nil {
		return 2, err
	}
	return m.Command.ExitCode, nil
}

func tv(t syscall.Timeval) float64 { return float64(t.Sec) + float64(t.Usec)/1e6 }

func rssCmd(args []string) error {
	fs := flag.NewFlagSet("proccpu rss", flag.ExitOnError)
	pid := fs.Int("pid", 0, "pid")
	if err := fs.Parse(args); err != nil {
		return err
	}
	v, err := readRSS(*pid)
	if err != nil {
		return err
	}
	fmt.Println(v)
	return nil
}

func snapshotCmd(args []string) error {
	fs := flag.NewFlagSet("proccpu snapshot", flag.ExitOnError)
	pid := fs.Int("pid", 0, "pid of the server")
	pgdata := fs.String("pgdata", "", "PostgreSQL data directory holding postmaster.pid")
	if err := fs.Parse(args); err != nil {
		return err
	}
	sn, err := takeSnapshot(*pid, *pgdata)
	if err != nil {
		return err
	}
	b, _ := json.Marshal(sn)
	fmt.Println(string(b))
	return nil
}
