package progress

import (
	"bytes"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestLogMode(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, nil))
	b := New(Log, Options{Desc: "eval", Unit: "samples", Total: 10, Done: 2, Logger: log, LogEvery: time.Hour})
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() { defer wg.Done(); b.Add(1, "", "avg@1", "0.500") }()
	}
	wg.Wait()
	b.Finish()
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	// Only the last unit is logged within LogEvery.
	if len(lines) != 1 {
		t.Fatalf("%d lines, want 1:\n%s", len(lines), buf.String())
	}
	for _, want := range []string{"msg=eval", "samples=10/10", "percent=100.0", "avg@1=0.500", "elapsed="} {
		if !strings.Contains(lines[0], want) {
			t.Errorf("line %q lacks %q", lines[0], want)
		}
	}
	if strings.Contains(lines[0], "eta=") {
		t.Errorf("a finished line has an ETA: %q", lines[0])
	}
}

func TestLogEveryAndETA(t *testing.T) {
	var buf bytes.Buffer
	b := New(Log, Options{Desc: "build", Unit: "rows", Total: 100, Logger: slog.New(slog.NewTextHandler(&buf, nil)), LogEvery: time.Nanosecond})
	time.Sleep(time.Millisecond)
	b.Set(50, "terms 7")
	line := buf.String()
	for _, want := range []string{"rows=50/100", "percent=50.0", "eta=", "metric=\"terms 7\""} {
		if !strings.Contains(line, want) {
			t.Errorf("line %q lacks %q", line, want)
		}
	}
}

func TestOffAndNoTotal(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, nil))
	off := New(Off, Options{Desc: "x", Total: 1, Logger: log})
	off.Add(1, "m")
	off.Finish()
	if buf.Len() != 0 {
		t.Fatalf("off mode wrote %q", buf.String())
	}
	// Auto without a terminal (tests) logs; with no total it never claims a
	// percentage.
	open := New(Auto, Options{Desc: "scan", Logger: log, LogEvery: time.Nanosecond})
	time.Sleep(time.Millisecond)
	open.Add(3, "")
	if s := buf.String(); !strings.Contains(s, "done=3") || strings.Contains(s, "percent") {
		t.Fatalf("line %q", s)
	}
}
