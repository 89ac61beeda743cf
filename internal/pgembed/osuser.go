package pgembed

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"syscall"
)

// Users tried, in order, when Config.OSUser is empty and we are root.
const (
	defaultOSUser  = "postgres"      // what the distribution packages create
	fallbackOSUser = "storefront-pg" // created on demand where there is none
)

// osUser is the unprivileged account postgres runs as when the process is
// root: initdb and postgres refuse to run as root.
type osUser struct {
	name     string
	uid, gid uint32
}

// credential drops every privilege of root: the user's uid and primary gid,
// and no supplementary groups (an empty Groups list clears root's).
func (u *osUser) credential() *syscall.Credential {
	return &syscall.Credential{Uid: u.uid, Gid: u.gid, Groups: []uint32{}}
}

// resolveOSUser returns the user to run postgres as, or nil when the process
// is not root and postgres simply runs as ourselves.
func resolveOSUser(ctx context.Context, name string, log *slog.Logger) (*osUser, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	if name != "" {
		u, err := lookupOSUser(name)
		if err != nil {
			return nil, fmt.Errorf("pgembed: OS user %q to run postgres as: %w", name, err)
		}
		return u, nil
	}
	if u, err := lookupOSUser(defaultOSUser); err == nil {
		return u, nil
	}
	if u, err := lookupOSUser(fallbackOSUser); err == nil {
		return u, nil
	}
	out, err := exec.CommandContext(ctx, "useradd", "--system", "--no-create-home",
		"--shell", "/usr/sbin/nologin", fallbackOSUser).CombinedOutput()
	// Another process may have created it meanwhile (useradd exits 9): the
	// lookup below is the judge, the exit status only explains a failure.
	u, lerr := lookupOSUser(fallbackOSUser)
	if lerr != nil {
		return nil, fmt.Errorf("pgembed: no user %q to run postgres as, and useradd %s failed: %v: %s",
			defaultOSUser, fallbackOSUser, err, out)
	}
	if err == nil {
		log.Info("pgembed: created system user to run postgres", "user", fallbackOSUser)
	}
	return u, nil
}

func lookupOSUser(name string) (*osUser, error) {
	u, err := user.Lookup(name)
	if err != nil {
		return nil, err
	}
	uid, err := strconv.ParseUint(u.Uid, 10, 32)
	if err != nil {
		return nil, err
	}
	gid, err := strconv.ParseUint(u.Gid, 10, 32)
	if err != nil {
		return nil, err
	}
	if uid == 0 {
		return nil, errors.New("is root; postgres refuses to run as root")
	}
	return &osUser{name: name, uid: uint32(uid), gid: uint32(gid)}, nil
}

// chown gives path to u; a no-op when postgres runs as ourselves.
func chown(path string, u *osUser) error {
	if u == nil {
		return nil
	}
	return os.Chown(path, int(u.uid), int(u.gid))
}

// checkTraversable returns an error naming the first directory from dir up
// to / that u cannot search (x permission), checked by mode bits the way the
// kernel would for a process with u's uid and primary gid only. Symbolic
// links are checked on both their path and their target's.
func checkTraversable(dir string, u *osUser) error {
	if u == nil {
		return nil
	}
	paths := []string{dir}
	if real, err := filepath.EvalSymlinks(dir); err == nil && real != dir {
		paths = append(paths, real)
	}
	for _, p := range paths {
		for d := p; ; d = filepath.Dir(d) {
			fi, err := os.Stat(d)
			if err != nil {
				return fmt.Errorf("pgembed: %w", err)
			}
			if !searchable(fi, u.uid, u.gid) {
				return fmt.Errorf("pgembed: directory %s (mode %v) is not traversable by user %q, who runs postgres; "+
					"put the data directory under a world-traversable path or chmod o+x %s",
					d, fi.Mode(), u.name, d)
			}
			if d == filepath.Dir(d) {
				break
			}
		}
	}
	return nil
}

// searchable reports whether a process with uid and gid may search the
// directory described by fi.
func searchable(fi os.FileInfo, uid, gid uint32) bool {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return true // cannot tell; let postgres report it
	}
	perm := fi.Mode().Perm()
	switch {
	case st.Uid == uid:
		return perm&0o100 != 0
	case st.Gid == gid:
		return perm&0o010 != 0
	default:
		return perm&0o001 != 0
	}
}

// MkdirTemp creates a new directory, mode 0755, under the system temporary
// directory, for use as Config.DataDir in tests. Unlike t.TempDir (mode
// 0700, owned by root when tests run as root) it is traversable by the
// unprivileged user postgres runs as. cleanup removes it and all it holds;
// call it after Server.Stop.
func MkdirTemp(pattern string) (dir string, cleanup func(), err error) {
	base := os.TempDir()
	// A private TMPDIR (mode 0700) would defeat the purpose; /tmp is 1777.
	if !worldTraversable(base) {
		base = "/tmp"
	}
	dir, err = os.MkdirTemp(base, pattern)
	if err != nil {
		return "", nil, fmt.Errorf("pgembed: %w", err)
	}
	// MkdirTemp creates 0700; the umask must not narrow 0755 either.
	if err := os.Chmod(dir, 0o755); err != nil {
		os.RemoveAll(dir)
		return "", nil, fmt.Errorf("pgembed: %w", err)
	}
	return dir, func() { os.RemoveAll(dir) }, nil
}

// worldTraversable reports whether any user may search dir and its parents.
func worldTraversable(dir string) bool {
	for d := dir; ; d = filepath.Dir(d) {
		fi, err := os.Stat(d)
		if err != nil || fi.Mode().Perm()&0o001 == 0 {
			return false
		}
		if d == filepath.Dir(d) {
			return true
		}
	}
}
