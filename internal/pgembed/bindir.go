package pgembed

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// debianBinGlob is where Debian and Ubuntu install server binaries: they are
// not on PATH there, only the client wrappers are.
const debianBinGlob = "/usr/lib/postgresql/*/bin"

// errNoBinaries tells the reader what was tried and how to fix it, in one line.
var errNoBinaries = errors.New("pgembed: no PostgreSQL server binaries found (looked in PATH, pg_config --bindir, " +
	debianBinGlob + "); install them with: apt-get install postgresql")

// FindBinDir returns a directory holding both initdb and postgres. It looks,
// in order, at the directories on PATH, at `pg_config --bindir`, and at
// /usr/lib/postgresql/*/bin with the newest major version first.
func FindBinDir() (string, error) {
	for _, dir := range filepath.SplitList(os.Getenv("PATH")) {
		if dir != "" && isServerBinDir(dir) {
			return installDir(dir)
		}
	}
	if dir := pgConfigBinDir(); dir != "" && isServerBinDir(dir) {
		return installDir(dir)
	}
	dirs, _ := filepath.Glob(debianBinGlob)
	slices.SortFunc(dirs, func(a, b string) int {
		// Newest first, compared as numbers: 15 > 9.6 although "15" < "9.6".
		return compareVersions(versionOf(b), versionOf(a))
	})
	for _, dir := range dirs {
		if isServerBinDir(dir) {
			return dir, nil
		}
	}
	return "", errNoBinaries
}

// installDir follows dir/initdb when it is a symbolic link (as in
// /usr/local/bin -> /usr/lib/postgresql/15/bin) to the installation's own
// directory, where psql, pg_dump and pg_ctl of the same version live too.
func installDir(dir string) (string, error) {
	if target, err := filepath.EvalSymlinks(filepath.Join(dir, "initdb")); err == nil {
		if real := filepath.Dir(target); isServerBinDir(real) {
			return real, nil
		}
	}
	return filepath.Abs(dir)
}

// isServerBinDir reports whether dir holds the two programs Start runs. The
// client packages put psql and pg_config on PATH without a server.
func isServerBinDir(dir string) bool {
	return isExecutable(filepath.Join(dir, "initdb")) && isExecutable(filepath.Join(dir, "postgres"))
}

func isExecutable(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0
}

// pgConfigBinDir asks pg_config, if it is installed, where the binaries of
// its installation are; "" when it cannot tell.
func pgConfigBinDir() string {
	path, err := exec.LookPath("pg_config")
	if err != nil {
		return ""
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, path, "--bindir").Output()
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(out))
}

// versionOf extracts the version numbers from /usr/lib/postgresql/<v>/bin.
func versionOf(binDir string) []int {
	var v []int
	for _, part := range strings.Split(filepath.Base(filepath.Dir(binDir)), ".") {
		n, err := strconv.Atoi(part)
		if err != nil {
			return nil // not a version: sorts last
		}
		v = append(v, n)
	}
	return v
}

func compareVersions(a, b []int) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return a[i] - b[i]
		}
	}
	return len(a) - len(b)
}
