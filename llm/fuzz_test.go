package llm

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func addGoldens(f *testing.F, prefix string) {
	files, _ := filepath.Glob(filepath.Join("testdata", "golden", prefix+"*.json"))
	for _, p := range files {
		if strings.Contains(p, "request") {
			continue
		}
		data, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
}

// checkResponse holds every parsed reply to the Response contract.
func checkResponse(t *testing.T, r *Response) {
	if r == nil {
		t.Fatal("nil response without error")
	}
	switch r.Finish {
	case FinishStop, FinishLength, FinishAbort:
	default:
		t.Fatalf("finish %q", r.Finish)
	}
	if r.Logprobs != nil && r.OutputIDs != nil && len(r.Logprobs) != len(r.OutputIDs) {
		t.Fatalf("%d logprobs for %d tokens", len(r.Logprobs), len(r.OutputIDs))
	}
	if r.Versions != nil && len(r.Versions) != len(r.OutputIDs) {
		t.Fatalf("%d versions for %d tokens", len(r.Versions), len(r.OutputIDs))
	}
	if r.StopRestored && (r.StopMatched == "" || !strings.HasSuffix(r.Text, r.StopMatched)) {
		t.Fatalf("restored stop %q but text ends %q", r.StopMatched, r.Text[max(0, len(r.Text)-20):])
	}
	if r.StopMatched != "" && !strings.Contains(r.Text, r.StopMatched) {
		t.Fatalf("stop %q not in text %q", r.StopMatched, r.Text)
	}
}

func FuzzDecodeSGLangGenerate(f *testing.F) {
	addGoldens(f, "sglang_reply")
	f.Add([]byte(`[{"text":"a","meta_info":{"finish_reason":"stop"}}]`))
	f.Add([]byte(`{"meta_info":{"finish_reason":{"type":"stop","matched":null},"weight_version":"v3"}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := decodeSGLangGenerate(data, []string{"</search>", "\n\n"}, "")
		if err == nil {
			checkResponse(t, r)
		}
	})
}

func FuzzDecodeCompletion(f *testing.F) {
	addGoldens(f, "vllm_completion")
	addGoldens(f, "openai_completion")
	addGoldens(f, "sglang_openai")
	f.Add([]byte(`{"choices":[{"text":"x","finish_reason":"stop","logprobs":{"tokens":["token_id:1","2"],"token_logprobs":[null,-1]}}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := decodeCompletionResponse(data, []string{"</answer>"}, "<answer>")
		if err == nil {
			checkResponse(t, r)
		}
	})
}

func FuzzDecodeChat(f *testing.F) {
	addGoldens(f, "vllm_chat")
	addGoldens(f, "openai_chat")
	addGoldens(f, "chat_")
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := decodeChatResponse(data, []string{"</answer>"}, "")
		if err == nil {
			checkResponse(t, r)
		}
	})
}

// The fast output_token_logprobs scanner agrees with encoding/json on
// every input encoding/json accepts.
func FuzzTokenLogprobs(f *testing.F) {
	for _, s := range []string{`[]`, `null`, `[[-0.5,3,null],[0,4,"x"]]`, `[[1e-3,7,"\"]"]]`, `[[null,1]]`, `[[-1,2,[1]]]`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var generic [][]json.RawMessage
		gerr := json.Unmarshal(data, &generic)
		var tl tokenLogprobs
		err := json.Unmarshal(data, &tl)
		if gerr != nil {
			return
		}
		if err != nil {
			return // a valid list whose entries are not [number|null, int, ...]
		}
		if len(tl.IDs) != len(generic) || len(tl.Logprobs) != len(generic) {
			t.Fatalf("%d/%d entries, want %d", len(tl.IDs), len(tl.Logprobs), len(generic))
		}
		for i, e := range generic {
			var id int
			if json.Unmarshal(e[1], &id) != nil || id != tl.IDs[i] {
				t.Fatalf("entry %d id %d (raw %s)", i, tl.IDs[i], e[1])
			}
		}
	})
}

// intList agrees with encoding/json's []int on every input.
func FuzzIntList(f *testing.F) {
	for _, s := range []string{`[]`, `null`, `[1, 2 ,3]`, `[1.0]`, `[-0,7e2]`, `[99999999999999999999]`, ` [ 4 ] `} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var want []int
		werr := json.Unmarshal(data, &want)
		var got intList
		gerr := json.Unmarshal(data, &got)
		if (werr == nil) != (gerr == nil) {
			t.Fatalf("%q: encoding/json err %v, intList err %v", data, werr, gerr)
		}
		if werr == nil && (len(want) != len(got) || !equalInts(want, got)) {
			t.Fatalf("%q: got %v want %v", data, got, want)
		}
	})
}
