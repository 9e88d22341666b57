package trainer

import (
	"regexp"
	"strings"
	"testing"
)

// A local directory handed to Tinker's SaveState becomes a plain name the
// server accepts, naming the step, and new on every call (a resumed run
// saves the same step again; Tinker refuses to overwrite).
func TestTinkerStateName(t *testing.T) {
	plain := regexp.MustCompile(`^[A-Za-z0-9._-]{1,128}$`)
	for _, tc := range []struct{ path, wantPart string }{
		{"/runs/r1/checkpoints/step_000002.tmp/trainer", "step_000002-"},
		{`C:\runs\checkpoints\step_000010.tmp\trainer`, "step_000010-"},
		{"/" + strings.Repeat("très-long/", 40) + "step_000003.tmp/trainer", "step_000003-"},
		{"relative/dir", ""},
	} {
		a, b := tinkerStateName(tc.path), tinkerStateName(tc.path)
		if !plain.MatchString(a) || a == "." || a == ".." {
			t.Errorf("%q → %q: not a Tinker checkpoint name", tc.path, a)
		}
		if !strings.Contains(a, tc.wantPart) {
			t.Errorf("%q → %q: does not name the step", tc.path, a)
		}
		if a == b {
			t.Errorf("%q → %q twice: a resumed run could not save the step again", tc.path, a)
		}
	}
}
