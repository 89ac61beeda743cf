package pgtest

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"testing"
)

// inherited takes FuzzClusterEnv only in a fuzz worker whose parent set it.
func TestInherited(t *testing.T) {
	worker := flag.Lookup("test.fuzzworker")
	was := worker.Value.String()
	t.Cleanup(func() { worker.Value.Set(was) })

	parent := fmt.Sprintf("%d:5432:/tmp/storefront-test-1/data/pg", os.Getppid())
	for _, c := range []struct {
		name, value string
		set, worker bool
		ok          bool
	}{
		{name: "unset", worker: true},
		{name: "parent's, in a fuzz worker", value: parent, set: true, worker: true, ok: true},
		{name: "parent's, not a fuzz worker", value: parent, set: true},
		{name: "another process's", value: fmt.Sprintf("%d:5432:/tmp/pg", os.Getpid()), set: true, worker: true},
		{name: "socket dir with colons", value: fmt.Sprintf("%d:5433:/tmp/a:b", os.Getppid()), set: true, worker: true, ok: true},
		{name: "relative socket dir", value: fmt.Sprintf("%d:5432:pg", os.Getppid()), set: true, worker: true},
		{name: "no port", value: fmt.Sprintf("%d:/tmp/pg", os.Getppid()), set: true, worker: true},
		{name: "garbage", value: "x:y:/z", set: true, worker: true},
		{name: "empty", value: "", set: true, worker: true},
	} {
		t.Run(c.name, func(t *testing.T) {
			if c.set {
				t.Setenv(FuzzClusterEnv, c.value)
			} else {
				t.Setenv(FuzzClusterEnv, "")
				os.Unsetenv(FuzzClusterEnv)
			}
			worker.Value.Set(fmt.Sprint(c.worker))
			socket, err := inherited()
			switch {
			case c.ok && err != nil:
				t.Fatalf("inherited() with %q: %v", c.value, err)
			case !c.ok && err == nil:
				t.Fatalf("inherited() with %q = %+v, want an error", c.value, socket)
			case !c.set && !errors.Is(err, errNotInherited):
				t.Fatalf("inherited() unset: %v, want errNotInherited", err)
			case c.set && errors.Is(err, errNotInherited):
				t.Fatalf("inherited() with %q: errNotInherited", c.value)
			}
			if c.ok && socket.DSN("x") == "" {
				t.Fatal("no DSN")
			}
		})
	}
}
