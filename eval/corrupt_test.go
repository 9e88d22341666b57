package eval

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/asearcher/asearcher/agent"
)

// frameStarts returns the byte offset of every record of a trajectory file
// written one zstd frame per record.
func frameStarts(t *testing.T, path string) []int64 {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var starts []int64
	for i := 0; i+4 <= len(data); i++ {
		if data[i] == 0x28 && data[i+1] == 0xb5 && data[i+2] == 0x2f && data[i+3] == 0xfd {
			starts = append(starts, int64(i))
		}
	}
	return starts
}

// TestDamagedTrajectoryRefusedThenRepaired: two bytes flipped inside one
// trajectory record. Before, the rerun exited 0 and rewrote the file with
// only the records before the damage. Now the rerun stops with the file
// and offset and changes nothing; with --repair it keeps a backup, keeps
// every intact trajectory and runs only the lost sample again.
func TestDamagedTrajectoryRefusedThenRepaired(t *testing.T) {
	model := answerModel(t)
	cfg := smallConfig(t, model.OpenAIURL())
	if _, err := Run(context.Background(), cfg, Options{Progress: ProgressOff}); err != nil {
		t.Fatal(err)
	}
	tp := filepath.Join(cfg.Out, TrajectoriesFile)
	rp := filepath.Join(cfg.Out, ResultsFile)
	starts := frameStarts(t, tp)
	if len(starts) != 6 {
		t.Fatalf("%d frames, want one per sample (6)", len(starts))
	}
	data, _ := os.ReadFile(tp)
	mid := (starts[2] + starts[3]) / 2
	data[mid] ^= 0xff
	data[mid+1] ^= 0xff
	writeFile(t, tp, string(data))
	resBefore, _ := os.ReadFile(rp)

	_, err := Run(context.Background(), cfg, Options{Progress: ProgressOff})
	if err == nil || !strings.Contains(err.Error(), tp) || !strings.Contains(err.Error(), "byte offset") || !strings.Contains(err.Error(), "--repair") {
		t.Fatalf("rerun over a damaged trajectory: %v", err)
	}
	after, _ := os.ReadFile(tp)
	resAfter, _ := os.ReadFile(rp)
	if string(after) != string(data) || string(resAfter) != string(resBefore) {
		t.Fatal("a refused rerun changed the files")
	}

	calls := len(model.Calls())
	if _, err := Run(context.Background(), cfg, Options{Progress: ProgressOff, Repair: true}); err != nil {
		t.Fatal(err)
	}
	if n := len(model.Calls()) - calls; n != 1 {
		t.Errorf("repair ran %d model calls, want 1 (only the lost sample)", n)
	}
	if n := countTrajectories(t, tp); n != 6 {
		t.Errorf("%d trajectories after repair, want 6", n)
	}
	if n := countLines(t, rp); n != 6 {
		t.Errorf("%d results after repair, want 6", n)
	}
	for _, f := range []string{TrajectoriesFile, ResultsFile} {
		if b, _ := filepath.Glob(filepath.Join(cfg.Out, f+".bak-*")); len(b) != 1 {
			t.Errorf("backups of %s: %q, want one", f, b)
		}
	}
	// The backup is the damaged original.
	b, _ := filepath.Glob(filepath.Join(cfg.Out, TrajectoriesFile+".bak-*"))
	if got, _ := os.ReadFile(b[0]); string(got) != string(data) {
		t.Error("the trajectory backup is not the damaged original")
	}
	if _, err := agent.ReadFile(tp); err != nil {
		t.Errorf("repaired file: %v", err)
	}
}

// TestDamagedResultsLineRefusedThenRepaired: a damaged results line before
// the last stops the rerun with its offset; --repair drops it (backup
// kept) and runs that sample again.
func TestDamagedResultsLineRefusedThenRepaired(t *testing.T) {
	model := answerModel(t)
	cfg := smallConfig(t, model.OpenAIURL())
	if _, err := Run(context.Background(), cfg, Options{Progress: ProgressOff}); err != nil {
		t.Fatal(err)
	}
	rp := filepath.Join(cfg.Out, ResultsFile)
	res, _ := os.ReadFile(rp)
	lines := strings.SplitAfter(string(res), "\n")
	off := len(lines[0]) + len(lines[1])
	lines[2] = "#" + lines[2][1:]
	damaged := strings.Join(lines, "")
	writeFile(t, rp, damaged)
	_, err := Run(context.Background(), cfg, Options{Progress: ProgressOff})
	want := "line 3 (byte offset " + strconv.Itoa(off) + ")"
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("err = %v, want %q", err, want)
	}
	if got, _ := os.ReadFile(rp); string(got) != damaged {
		t.Fatal("a refused rerun changed results.jsonl")
	}
	if _, err := Run(context.Background(), cfg, Options{Progress: ProgressOff, Repair: true}); err != nil {
		t.Fatal(err)
	}
	if n := countLines(t, rp); n != 6 {
		t.Errorf("%d results after repair, want 6", n)
	}
	if n := countTrajectories(t, filepath.Join(cfg.Out, TrajectoriesFile)); n != 6 {
		t.Errorf("%d trajectories after repair, want 6 (the dropped sample's old one removed)", n)
	}
	if b, _ := filepath.Glob(rp + ".bak-*"); len(b) != 1 {
		t.Errorf("backups %q, want one", b)
	}
}
