//go:build unix

package corpus

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// Mapped is a read-only file mapped into memory. The OS pages it in on
// demand, so files larger than RAM work and opening costs nothing.
type Mapped struct {
	Data []byte
}

// MapFile maps path read-only. An empty file maps to an empty slice.
func MapFile(path string) (*Mapped, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	size := st.Size()
	if size == 0 {
		return &Mapped{}, nil
	}
	if int64(int(size)) != size {
		return nil, fmt.Errorf("%s: %d bytes do not fit the address space", path, size)
	}
	data, err := unix.Mmap(int(f.Fd()), 0, int(size), unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("mmap %s: %w", path, err)
	}
	return &Mapped{Data: data}, nil
}

// adviseRandom turns off read-ahead: rows are fetched one at a time at
// random offsets, and read-ahead would evict useful pages.
func (m *Mapped) adviseRandom() {
	if len(m.Data) > 0 {
		_ = unix.Madvise(m.Data, unix.MADV_RANDOM)
	}
}

// Close unmaps the file; slices into Data must not be used afterwards.
func (m *Mapped) Close() error {
	if m == nil || len(m.Data) == 0 {
		return nil
	}
	err := unix.Munmap(m.Data)
	m.Data = nil
	return err
}

// SyncFS flushes the file system holding dir to disk: one call at the end
// of a build instead of an fsync per file, which costs tens of
// milliseconds each on slow disks.
func SyncFS(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	return unix.Syncfs(int(f.Fd()))
}
