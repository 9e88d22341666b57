// Package atomicfile writes files so that a reader, or a run resumed after
// kill -9 or a power loss, sees either the old content or the new one,
// never a torn file: the data goes to a temporary file in the same
// directory, which is fsynced, renamed over the target, and the directory
// is fsynced so the rename itself survives a crash.
package atomicfile

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Mode is the permission of every file written here. os.CreateTemp makes
// files private; outputs (models, reports, run files) are meant to be read
// by others.
const Mode os.FileMode = 0o644

// tempPrefix starts the name of every temporary file, so stale ones left by
// a kill can be recognised (see IsTemp).
const tempPrefix = ".atomic-"

// WriteFile replaces path with data durably: temporary file, fsync, rename,
// fsync of the directory.
func WriteFile(path string, data []byte) error {
	if err := write(path, data, true); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// WriteFileDeferSync is WriteFile without the fsyncs, for builds that write
// many files and flush the whole tree once at the end (syncfs) before the
// step that makes them visible. The rename is still atomic.
func WriteFileDeferSync(path string, data []byte) error {
	if err := write(path, data, false); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

func write(path string, data []byte, durable bool) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, tempPrefix+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	err = f.Chmod(Mode)
	if err == nil {
		_, err = f.Write(data)
	}
	if err == nil && durable {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	if durable {
		return SyncDir(dir)
	}
	return nil
}

// SyncDir fsyncs a directory so that renames and creations inside it are on
// disk. File systems that refuse to fsync directories (some network and
// Windows file systems report EINVAL or "not supported") are accepted: the
// rename is atomic there, only its durability is the file system's.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync directory %s: %w", dir, err)
	}
	serr := d.Sync()
	cerr := d.Close()
	if serr != nil && !unsupported(serr) {
		return fmt.Errorf("sync directory %s: %w", dir, serr)
	}
	if cerr != nil {
		return fmt.Errorf("sync directory %s: %w", dir, cerr)
	}
	return nil
}

// SyncFile fsyncs a file already written in place (an append-only log
// before the checkpoint that depends on it).
func SyncFile(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("sync %s: %w", path, err)
	}
	serr := f.Sync()
	cerr := f.Close()
	if err := errors.Join(serr, cerr); err != nil {
		return fmt.Errorf("sync %s: %w", path, err)
	}
	return nil
}

// IsTemp reports whether name (a base name) is a temporary file of this
// package, left behind by a process killed mid-write.
func IsTemp(name string) bool { return strings.HasPrefix(name, tempPrefix) }
