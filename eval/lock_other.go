//go:build !unix

package eval

// lockRunDir is a no-op where flock is not available.
func lockRunDir(dir string) (func(), error) { return func() {}, nil }
