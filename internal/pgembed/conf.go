package pgembed

import (
	"bytes"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
)

// confFile holds the settings pgembed manages. postgresql.conf includes it
// at its end, so it overrides initdb's defaults, while ALTER SYSTEM
// (postgresql.auto.conf, read last) still overrides it.
const confFile = "storefront.conf"

// includeLine is appended once to postgresql.conf; _if_exists so the
// cluster still starts by hand (pg_ctl) should the file be deleted.
const includeLine = "include_if_exists = '" + confFile + "'"

// setting is one postgresql.conf line and why it has that value.
type setting struct {
	name, value, why string
}

var settingName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_.]*$`)

// settings returns what pgembed writes into confFile: the tuning for a
// read-heavy API on a small machine, then cfg.Settings, which win because a
// later line overrides an earlier one.
// DefaultMaxConnections is the private server's max_connections unless
// Config.Settings says otherwise.
const DefaultMaxConnections = 200

func settings(cfg *Config, socketDir string, memBytes uint64) []setting {
	const mb = 1 << 20
	sharedBuffers := min(memBytes/4, 512*mb)
	if cfg.Ephemeral {
		sharedBuffers = min(sharedBuffers, 128*mb) // test data is small; many test binaries share the box
	}
	sharedBuffers = max(sharedBuffers, 32*mb)
	maintenance := min(max(memBytes/16, 64*mb), 512*mb)
	s := []setting{
		{"listen_addresses", cfg.ListenTCP, "Unix socket only unless a TCP listener is asked for: authentication is trust"},
		{"port", strconv.Itoa(cfg.Port), "also names the socket file, .s.PGSQL.<port>"},
		{"unix_socket_directories", quoteListItem(socketDir), "a private directory; see unix_socket_permissions"},
		{"unix_socket_permissions", "0777", "the directory's mode is the gate (0700 cluster dir by default), so local clients of any uid, root included, need no group membership"},
		{"max_connections", strconv.Itoa(DefaultMaxConnections), "the API pool plus tests, migrations and psql; an idle connection costs a few MB"},
		{"shared_buffers", fmt.Sprintf("%dMB", sharedBuffers/mb), "25% of RAM, capped: the OS page cache holds the rest of the hot set"},
		{"huge_pages", "try", "2 MB pages for shared memory when the kernel has them reserved (vm.nr_hugepages), 4 kB pages otherwise; see SharedMemory"},
		{"effective_cache_size", fmt.Sprintf("%dMB", memBytes*3/4/mb), "planner hint only (no allocation): most of RAM caches our data, so index scans are cheap"},
		{"maintenance_work_mem", fmt.Sprintf("%dMB", maintenance/mb), "faster index builds when seeding and migrating"},
		{"random_page_cost", "1.1", "SSD and page cache: a random read costs about a sequential one, so prefer index scans"},
		{"effective_io_concurrency", "200", "SSD: let bitmap heap scans prefetch"},
		{"jit", "off", "compiling a query takes milliseconds and pays off only for long analytical ones; ours are short"},
		{"max_parallel_workers_per_gather", "0", "throughput over single-query latency: under load every core is already serving a request"},
		{"track_io_timing", "off", "a clock read per block costs CPU; turn it on while investigating I/O"},
		{"max_wal_size", "2GB", "bulk seeding writes much WAL; fewer checkpoints forced by WAL volume"},
		{"timezone", "UTC", "timestamps the API returns do not depend on the host's zone"},
		{"log_timezone", "UTC", "log lines line up with the API's UTC timestamps"},
		{"log_destination", "stderr", "pgembed writes stderr to log/postgres.log and the Logger"},
		{"logging_collector", "off", "pgembed collects stderr itself"},
		{"log_line_prefix", "%m [%p] %q%u@%d ", "who ran what, for statements that fail"},
	}
	if cfg.Ephemeral {
		s = append(s,
			setting{"fsync", "off", "Ephemeral: a crash loses nothing worth keeping"},
			setting{"synchronous_commit", "off", "Ephemeral: commits do not wait for WAL flushes"},
			setting{"full_page_writes", "off", "Ephemeral: no torn-page protection needed without fsync"},
			setting{"wal_level", "minimal", "Ephemeral: no replication; COPY into new tables skips WAL"},
			setting{"max_wal_senders", "0", "Ephemeral: required by wal_level=minimal"},
		)
	} else {
		s = append(s,
			setting{"fsync", "on", "durability: this cluster may hold real data"},
			setting{"synchronous_commit", "on", "durability: a committed order survives a crash"},
			setting{"full_page_writes", "on", "durability: protects against torn pages after a crash"},
		)
	}
	for _, name := range slices.Sorted(maps.Keys(cfg.Settings)) {
		s = append(s, setting{name, cfg.Settings[name], "Config.Settings"})
	}
	return s
}

// renderConf formats settings as a postgresql.conf fragment.
func renderConf(s []setting) []byte {
	var b bytes.Buffer
	b.WriteString("# Written by storefront (internal/pgembed) on every start: edits here are lost.\n")
	b.WriteString("# Set Config.Settings instead, or ALTER SYSTEM, which overrides this file.\n")
	for _, st := range s {
		fmt.Fprintf(&b, "\n# %s\n%s = %s\n", st.why, st.name, quoteConf(st.value))
	}
	return b.Bytes()
}

// quoteConf quotes a value for postgresql.conf. Every type accepts a quoted
// value; inside quotes a backslash starts an escape and a doubled quote
// stands for one.
func quoteConf(v string) string {
	v = strings.ReplaceAll(v, `\`, `\\`)
	return "'" + strings.ReplaceAll(v, "'", "''") + "'"
}

// quoteListItem double-quotes one element of a list setting such as
// unix_socket_directories, so a path with a comma or space stays whole.
func quoteListItem(v string) string {
	return `"` + strings.ReplaceAll(v, `"`, `""`) + `"`
}

// writeConf replaces clusterDir/storefront.conf atomically and makes sure
// postgresql.conf includes it.
func writeConf(clusterDir string, s []setting, u *osUser) error {
	path := filepath.Join(clusterDir, confFile)
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, renderConf(s), 0o600); err != nil {
		return err
	}
	if err := chown(tmp, u); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	main := filepath.Join(clusterDir, "postgresql.conf")
	data, err := os.ReadFile(main)
	if err != nil {
		return err
	}
	for _, line := range strings.Split(string(data), "\n") {
		if strings.TrimSpace(line) == includeLine {
			return nil
		}
	}
	// Appending keeps the file's owner and mode.
	f, err := os.OpenFile(main, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(f, "\n# storefront: managed settings; they override the lines above.\n%s\n", includeLine)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// memoryBytes is the RAM this process may use: the machine's, or the
// cgroup's limit when a container sets a lower one.
func memoryBytes() uint64 {
	var si syscall.Sysinfo_t
	mem := uint64(1 << 30) // assume 1 GB when the kernel will not say
	if syscall.Sysinfo(&si) == nil && si.Totalram > 0 {
		mem = uint64(si.Totalram) * uint64(si.Unit) // uint32 fields on 32-bit systems
	}
	for _, f := range []string{"/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"} {
		data, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		// "max" (v2) or a huge number (v1) mean no limit; both leave mem alone.
		if limit, err := strconv.ParseUint(strings.TrimSpace(string(data)), 10, 64); err == nil && limit > 0 && limit < mem {
			mem = limit
		}
	}
	return mem
}
