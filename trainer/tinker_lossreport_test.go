package trainer_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/asearcher/asearcher/trainer"
)

// SkyRL's forward_backward returns empty metrics: the client must say the
// loss was not reported instead of reporting 0.
func TestTinkerLossNotReported(t *testing.T) {
	env := startTinkerServer(t)
	h := env.srv.Handler()
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/api/v1/retrieve_future" {
			h.ServeHTTP(w, r)
			return
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r)
		body := rec.Body.Bytes()
		var m map[string]any
		if rec.Code == http.StatusOK && json.Unmarshal(body, &m) == nil {
			if _, ok := m["loss_fn_outputs"]; ok {
				m["metrics"] = map[string]any{}
				body, _ = json.Marshal(m)
			}
		}
		for k, v := range rec.Header() {
			if k != "Content-Length" {
				w.Header()[k] = v
			}
		}
		w.WriteHeader(rec.Code)
		_, _ = w.Write(body)
	}))
	defer proxy.Close()
	s := loadScenario(t)
	ctx := context.Background()
	for _, c := range []struct {
		url  string
		want bool
	}{{env.url, true}, {proxy.URL, false}} {
		tr, err := trainer.NewTinker(ctx, trainer.TinkerOptions{TinkerConfig: tinkerConfig(c.url), BaseModel: "tiny"})
		if err != nil {
			t.Fatal(err)
		}
		out, err := tr.ForwardBackward(ctx, s.data(trainer.PPO), trainer.PPO, trainer.LossConfig{})
		if err != nil {
			t.Fatal(err)
		}
		if out.LossReported != c.want {
			t.Errorf("%s: LossReported %v, want %v (loss %v)", c.url, out.LossReported, c.want, out.Loss)
		}
		tr.Close()
	}
}

// The Tinker API has no temperature: a loss at T ≠ 1 is refused before
// anything is sent, with an error that names the setting to change.
func TestTinkerRefusesTemperature(t *testing.T) {
	for _, temp := range []float64{0, 1} {
		if err := trainer.CheckTinkerTemperature(temp); err != nil {
			t.Fatalf("temperature %g refused: %v", temp, err)
		}
	}
	err := trainer.CheckTinkerTemperature(0.7)
	if err == nil || !strings.Contains(err.Error(), "cluster.temperature") {
		t.Fatalf("temperature 0.7: %v", err)
	}
	env := startTinkerServer(t)
	tr, err := trainer.NewTinker(context.Background(), trainer.TinkerOptions{TinkerConfig: tinkerConfig(env.url), BaseModel: "tiny"})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	s := loadScenario(t)
	if _, err := tr.Forward(context.Background(), s.data(trainer.PPO), trainer.PPO, trainer.LossConfig{Temperature: 0.7}); err == nil || !strings.Contains(err.Error(), "temperature") {
		t.Fatalf("forward at T=0.7: %v", err)
	}
}
