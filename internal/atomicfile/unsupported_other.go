//go:build !unix

package atomicfile

// unsupported accepts every directory fsync error where directories cannot
// be fsynced at all (Windows).
func unsupported(error) bool { return true }
