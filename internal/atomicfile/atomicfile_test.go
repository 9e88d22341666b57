package atomicfile

import (
	"os"
	"path/filepath"
	"runtime"
	"testing"
)

func TestWriteFile(t *testing.T) {
	for _, tc := range []struct {
		name  string
		write func(string, []byte) error
	}{{"durable", WriteFile}, {"defer_sync", WriteFileDeferSync}} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "f.json")
			for _, content := range []string{"first", "second, longer", ""} {
				if err := tc.write(path, []byte(content)); err != nil {
					t.Fatal(err)
				}
				got, err := os.ReadFile(path)
				if err != nil || string(got) != content {
					t.Fatalf("read back %q, %v; want %q", got, err, content)
				}
			}
			fi, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			if runtime.GOOS != "windows" && fi.Mode().Perm() != Mode {
				t.Errorf("mode %v, want %v", fi.Mode().Perm(), Mode)
			}
			entries, _ := os.ReadDir(dir)
			if len(entries) != 1 {
				t.Errorf("directory holds %d entries, want only the file (temporaries left behind?)", len(entries))
			}
		})
	}
}

func TestWriteFileErrorLeavesNoTemporary(t *testing.T) {
	dir := t.TempDir()
	// Renaming a file over a non-empty directory fails.
	target := filepath.Join(dir, "taken")
	if err := os.MkdirAll(filepath.Join(target, "x"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := WriteFile(target, []byte("data")); err == nil {
		t.Fatal("want an error writing over a directory")
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if IsTemp(e.Name()) {
			t.Errorf("temporary %s left behind", e.Name())
		}
	}
	if err := WriteFile(filepath.Join(dir, "missing", "f"), nil); err == nil {
		t.Error("want an error for a missing directory")
	}
}

func TestSyncFileAndDir(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "log.jsonl")
	if err := SyncFile(path); err != nil {
		t.Errorf("a missing file has nothing to sync: %v", err)
	}
	if err := os.WriteFile(path, []byte("{}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := SyncFile(path); err != nil {
		t.Error(err)
	}
	if err := SyncDir(dir); err != nil {
		t.Error(err)
	}
	if err := SyncDir(filepath.Join(dir, "missing")); err == nil {
		t.Error("want an error for a missing directory")
	}
}
