package sglang

import (
	"encoding/json"
	"strings"
	"testing"
)

// TestReplyEncoding: stock SGLang's field order, and the asearcher
// extension is left out when unset (the fake SGLang server) but sent as []
// when empty (serve model with no tokens generated).
func TestReplyEncoding(t *testing.T) {
	v := "3"
	stock, err := json.Marshal(Reply{Text: "a", OutputIDs: []int{5}, MetaInfo: Meta{ID: "r", FinishReason: map[string]any{"type": "length", "length": 1},
		PromptTokens: 2, WeightVersion: &v, CompletionTokens: 1}})
	if err != nil {
		t.Fatal(err)
	}
	want := `{"text":"a","output_ids":[5],"meta_info":{"id":"r","finish_reason":{"length":1,"type":"length"},"prompt_tokens":2,"weight_version":"3","total_retractions":0,"completion_tokens":1,"cached_tokens":0,"e2e_latency":0}}`
	if string(stock) != want {
		t.Fatalf("got  %s\nwant %s", stock, want)
	}
	ext, err := json.Marshal(Reply{OutputIDs: []int{}, MetaInfo: Meta{OutputTokenWeightVersions: []int{}}})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(ext), `"output_token_weight_versions":[]`) {
		t.Fatalf("extension: %s", ext)
	}
	if strings.Contains(string(ext), `"weight_version"`) {
		t.Fatalf("unset weight_version was sent: %s", ext)
	}
}
