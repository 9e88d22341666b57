package main

import (
	"strings"
	"testing"
)

// TestTrainRealFlags: --preset and --model go together, name the one
// preset, and stay off --resume; each refusal says what to do.
func TestTrainRealFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"train", "--preset", "smollm2"}, "go together"},
		{[]string{"train", "--model", "m"}, "go together"},
		{[]string{"train", "--preset", "llama3", "--model", "m"}, "or smollm2 (a real model"},
		{[]string{"train", "--resume", "r", "--preset", "smollm2", "--model", "m"}, "drop --out, --config, --preset and --model"},
		{[]string{"train", "--preset", "smollm2", "--model", t.TempDir() + "/no-model", "--out", t.TempDir() + "/run"}, "no-model"},
	} {
		out, err := runCLI(t, tc.args...)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: err %v, want one saying %q\n%s", tc.args, err, tc.want, out)
		}
	}
}

func TestRealGCPercent(t *testing.T) {
	for _, tc := range []struct {
		env  map[string]string
		want int
		set  bool
	}{
		{map[string]string{}, realGCPercentDefault, true},
		{map[string]string{"GOGC": "200"}, 0, false},
		{map[string]string{"GOMEMLIMIT": "4GiB"}, 0, false},
		{map[string]string{"GOGC": "off", "GOMEMLIMIT": "4GiB"}, 0, false},
	} {
		got, set := realGCPercent(func(k string) string { return tc.env[k] })
		if got != tc.want || set != tc.set {
			t.Errorf("env %v: (%d, %v), want (%d, %v)", tc.env, got, set, tc.want, tc.set)
		}
	}
}
