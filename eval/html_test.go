package eval

import (
	"bytes"
	"context"
	"encoding/json"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/asearcher/asearcher/internal/fakellm"
	"github.com/asearcher/asearcher/internal/testindex"
)

// htmlRun makes a finished run directory with trajectories.
func htmlRun(t *testing.T) string {
	t.Helper()
	// The model searches once, then answers, so trajectories have both
	// model turns and tool calls.
	model := fakellm.New(fakellm.Options{Handler: func(c fakellm.Call) fakellm.Reply {
		if strings.Count(c.Prompt, "<information>") >= 2 {
			return fakellm.Reply{Text: "<think>found</think>\n<answer> Paris </answer>"}
		}
		return fakellm.Reply{Text: "<think>look</think>\n<search> capital city </search>"}
	}})
	t.Cleanup(model.Close)
	cfg := smallConfig(t, model.OpenAIURL())
	cfg.Search = testindex.Serve(t)
	if _, err := Run(context.Background(), cfg, Options{Progress: ProgressOff}); err != nil {
		t.Fatal(err)
	}
	return cfg.Out
}

var dataScript = regexp.MustCompile(`(?s)<script id="data" type="application/json">(.*?)</script>`)

// TestReportHTMLSelfContained: the report loads nothing from outside and
// carries the report and the trajectories as data.
func TestReportHTMLSelfContained(t *testing.T) {
	out := htmlRun(t)
	page, err := os.ReadFile(filepath.Join(out, ReportHTMLFile))
	if err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{"<link", " src=", "@import", "url(", "fetch(", "XMLHttpRequest"} {
		if bytes.Contains(page, []byte(bad)) {
			t.Errorf("report.html contains %q: it must not load anything", bad)
		}
	}
	m := dataScript.FindSubmatch(page)
	if m == nil {
		t.Fatal("no data script")
	}
	var data struct {
		Report       Report           `json:"report"`
		Trajectories []htmlTrajectory `json:"trajectories"`
	}
	if err := json.Unmarshal(m[1], &data); err != nil {
		t.Fatalf("inline data: %v", err)
	}
	if data.Report.Overall.Samples != 6 || len(data.Trajectories) != 6 {
		t.Fatalf("inline data: %d samples, %d trajectories", data.Report.Overall.Samples, len(data.Trajectories))
	}
	tr := data.Trajectories[0]
	if len(tr.Steps) != 3 || tr.Steps[0].Kind != "act" || tr.Steps[1].Kind != "search" || tr.Steps[2].Kind != "act" || tr.Golds == nil {
		t.Fatalf("trajectory steps or golds: %+v", tr)
	}
	if tr.Steps[1].Text == "" {
		t.Errorf("search step without results: %+v", tr.Steps[1])
	}
}

// chromium finds a headless Chromium: $ASEARCHER_CHROMIUM or the usual
// binary names.
func chromium() string {
	if p := os.Getenv("ASEARCHER_CHROMIUM"); p != "" {
		return p
	}
	for _, n := range []string{"chromium-headless-shell", "chromium", "chromium-browser", "google-chrome", "headless_shell"} {
		if p, err := exec.LookPath(n); err == nil {
			return p
		}
	}
	for _, p := range []string{"/usr/lib/chromium/chromium-headless-shell", "/usr/lib/chromium/headless_shell"} {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	return ""
}

// TestReportHTMLChromium opens report.html in headless Chromium with
// #open=1, which makes the trajectory browser expand the first trajectory
// and its first turn: the rendered DOM must show both open, the script
// must finish without errors (nothing on the console), and a screenshot
// is taken. Skipped when no Chromium is installed.
func TestReportHTMLChromium(t *testing.T) {
	bin := chromium()
	if bin == "" {
		t.Skip("no headless Chromium (set ASEARCHER_CHROMIUM or install chromium-headless-shell)")
	}
	out := htmlRun(t)
	abs, _ := filepath.Abs(filepath.Join(out, ReportHTMLFile))
	url := "file://" + abs + "#open=1"
	profile := t.TempDir()
	run := func(extra ...string) (stdout, stderr string) {
		args := append([]string{"--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
			"--user-data-dir=" + profile, "--enable-logging=stderr", "--v=0", "--virtual-time-budget=3000"}, extra...)
		args = append(args, url)
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, bin, args...)
		var o, e bytes.Buffer
		cmd.Stdout, cmd.Stderr = &o, &e
		if err := cmd.Run(); err != nil {
			t.Fatalf("%s: %v\n%s", bin, err, e.String())
		}
		return o.String(), e.String()
	}
	dom, logs := run("--dump-dom")
	if !strings.Contains(dom, `data-ready="1"`) {
		t.Fatalf("the report script did not finish:\n%s", logs)
	}
	if m := regexp.MustCompile(`<body[^>]*data-error="[^"]*"`).FindString(dom); m != "" {
		t.Fatalf("script error in the page: %s", m)
	}
	for _, line := range strings.Split(logs, "\n") {
		if strings.Contains(line, "CONSOLE") || strings.Contains(line, "Uncaught") {
			t.Errorf("console message: %s", line)
		}
	}
	if !regexp.MustCompile(`<details class="trajectory" id="t1" open="">`).MatchString(dom) {
		t.Error("the first trajectory is not expanded")
	}
	if !regexp.MustCompile(`<details class="step step-[a-z]+" open="">`).MatchString(dom) {
		t.Error("no turn of the trajectory is expanded")
	}
	if n := strings.Count(dom, `class="trajectory"`); n != 6 {
		t.Errorf("%d trajectories listed, want 6", n)
	}
	shot := filepath.Join(t.TempDir(), "report.png")
	run("--screenshot="+shot, "--window-size=1200,1600", "--hide-scrollbars")
	f, err := os.Open(shot)
	if err != nil {
		t.Fatalf("no screenshot: %v", err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	if b := img.Bounds(); b.Dx() != 1200 || b.Dy() != 1600 {
		t.Errorf("screenshot is %v", b)
	}
	if dir := os.Getenv("ASEARCHER_SCREENSHOT_DIR"); dir != "" {
		data, _ := os.ReadFile(shot)
		_ = os.WriteFile(filepath.Join(dir, "eval-report.png"), data, 0o644)
	}
}
