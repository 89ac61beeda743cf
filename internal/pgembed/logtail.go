package pgembed

import (
	"bufio"
	"errors"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
)

const (
	tailLines   = 40       // enough for a FATAL and the lines that led to it
	maxLogBytes = 16 << 20 // postgres.log is rotated once at start beyond this
)

// logTail copies postgres's output to a log file and to the Logger at
// debug level, and keeps the last lines for the error when a start fails.
type logTail struct {
	log  *slog.Logger
	file *os.File // may be nil

	mu    sync.Mutex
	lines []string // ring of the last tailLines lines
	next  int
}

// openLogFile opens path for appending, first moving a large one to
// path.1 so the log of a long-lived cluster stays bounded.
func openLogFile(path string, u *osUser) (*os.File, error) {
	if fi, err := os.Stat(path); err == nil && fi.Size() > maxLogBytes {
		os.Rename(path, path+".1")
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
	if err != nil {
		return nil, err
	}
	if err := chown(path, u); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// copy reads r to its end, one line at a time.
func (t *logTail) copy(r io.Reader) {
	br := bufio.NewReader(r)
	for {
		line, err := br.ReadString('\n')
		if line != "" {
			t.add(strings.TrimRight(line, "\r\n"))
		}
		if err != nil {
			if !errors.Is(err, io.EOF) && !errors.Is(err, os.ErrClosed) {
				t.log.Debug("pgembed: reading postgres output", "err", err)
			}
			return
		}
	}
}

func (t *logTail) add(line string) {
	t.log.Debug("postgres", "line", line)
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.file != nil {
		t.file.WriteString(line + "\n")
	}
	if len(t.lines) < tailLines {
		t.lines = append(t.lines, line)
		return
	}
	t.lines[t.next] = line
	t.next = (t.next + 1) % tailLines
}

// reset forgets the kept lines, so an error shows only the current run's.
func (t *logTail) reset() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.lines, t.next = t.lines[:0], 0
}

// last returns the kept lines, oldest first, indented for an error message.
func (t *logTail) last() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	var b strings.Builder
	for i := range t.lines {
		b.WriteString("\n\t")
		b.WriteString(t.lines[(t.next+i)%len(t.lines)])
	}
	return b.String()
}
