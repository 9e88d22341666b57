package serve

import (
	"archive/tar"
	"compress/gzip"
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
)

// A sampler checkpoint downloads as SkyRL serves it: /archive answers 302
// to /download, a tar.gz of a model directory at the archive root.
func TestTinkerCheckpointArchive(t *testing.T) {
	for _, onDisk := range []bool{false, true} {
		ts := newTestServer(t, testModel(t, 1, nil), func(o *Options) {
			if onDisk {
				o.CheckpointDir = t.TempDir()
			}
		})
		m := newTinkerModel(t, ts.url)
		st, fut := tinkerPost(t, ts.url+"/api/v1/save_weights_for_sampler", map[string]any{"model_id": m, "path": "s1"})
		if st != 200 {
			t.Fatalf("save_weights_for_sampler: %d %s", st, fut)
		}
		st, out := tinkerResult(t, ts.url, fut)
		var saved struct{ Path string }
		if json.Unmarshal(out, &saved); st != 200 || saved.Path != "tinker://"+m+"/sampler_weights/s1" {
			t.Fatalf("saved %d %s", st, out)
		}
		noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		resp, err := noFollow.Get(ts.url + "/api/v1/training_runs/" + m + "/checkpoints/s1/archive")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if loc := resp.Header.Get("Location"); resp.StatusCode != http.StatusFound || loc != "/api/v1/training_runs/"+m+"/checkpoints/s1/download" {
			t.Fatalf("archive: %d Location %q", resp.StatusCode, loc)
		}
		resp, err = http.Get(ts.url + "/api/v1/training_runs/" + m + "/checkpoints/s1/archive")
		if err != nil {
			t.Fatal(err)
		}
		gz, err := gzip.NewReader(resp.Body)
		if err != nil {
			t.Fatalf("onDisk=%v: download is not gzip: %v", onDisk, err)
		}
		tr := tar.NewReader(gz)
		var names []string
		for {
			h, err := tr.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			if h.Typeflag != tar.TypeReg || strings.Contains(h.Name, "/") {
				t.Errorf("entry %q type %c: want plain files at the root", h.Name, h.Typeflag)
			}
			names = append(names, h.Name)
		}
		resp.Body.Close()
		// A LoRA model's checkpoint on disk is its PEFT adapter (what
		// SkyRL archives); otherwise a model directory.
		want := []string{"config.json", "model.safetensors"}
		if slices.Contains(names, "adapter_config.json") {
			want = []string{"adapter_config.json", "adapter_model.safetensors"}
		}
		for _, f := range want {
			if !slices.Contains(names, f) {
				t.Errorf("onDisk=%v: archive holds %v, no %s", onDisk, names, f)
			}
		}
		for _, bad := range []string{"/api/v1/training_runs/" + m + "/checkpoints/none/archive", "/api/v1/training_runs/" + m + "/checkpoints/none/download",
			"/api/v1/training_runs/nobody/checkpoints/s1/archive"} {
			resp, err := noFollow.Get(ts.url + bad)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusNotFound {
				t.Errorf("%s: %d, want 404", bad, resp.StatusCode)
			}
		}
	}
}
