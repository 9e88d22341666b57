package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// serve model --help must not print the key from the environment (it used
// to be the flag's default).
func TestServeModelHelpHidesKey(t *testing.T) {
	t.Setenv("ASEARCHER_SERVE_API_KEY", "sekrit-value-123")
	out, err := runCLI(t, "serve", "model", "--help")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(out, "sekrit-value-123") {
		t.Fatalf("--help printed the API key:\n%s", out)
	}
	if !strings.Contains(out, "--api-key-file") {
		t.Fatalf("--help does not offer --api-key-file:\n%s", out)
	}
}

func TestServeAPIKeySources(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "key")
	if err := os.WriteFile(file, []byte("  from-file \nignored\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(dir, "empty")
	if err := os.WriteFile(empty, []byte("\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("ASEARCHER_SERVE_API_KEY", "from-env")
	cases := []struct {
		flag, file, want string
		err              bool
	}{
		{"", "", "from-env", false},
		{"from-flag", "", "from-flag", false},
		{"", file, "from-file", false},
		{"x", file, "", true},
		{"", empty, "", true},
		{"", filepath.Join(dir, "missing"), "", true},
	}
	for _, tc := range cases {
		got, err := serveAPIKey(tc.flag, tc.file)
		if (err != nil) != tc.err || got != tc.want {
			t.Errorf("serveAPIKey(%q, %q) = %q, %v; want %q, err %v", tc.flag, tc.file, got, err, tc.want, tc.err)
		}
	}
}
