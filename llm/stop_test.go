package llm

import "testing"

func TestRestoreTrimmedStop(t *testing.T) {
	stops := []string{"</search>", "</access>", "</answer>", "<|end_of_query|>"}
	cases := []struct {
		name       string
		text       string
		finish     Finish
		matched    string
		promptTail string
		stops      []string
		wantText   string
		wantStop   string
	}{
		{"open search", "I should look.\n<search> capital of France ", FinishStop, "", "", stops,
			"I should look.\n<search> capital of France </search>", "</search>"},
		{"open answer after a closed search", "<search>a</search> then <answer> Paris", FinishStop, "", "", stops,
			"<search>a</search> then <answer> Paris</answer>", "</answer>"},
		{"open access", "<access> https://example.org/a", FinishStop, "", "", stops,
			"<access> https://example.org/a</access>", "</access>"},
		{"search-r1 markers", "<|begin_of_query|> who", FinishStop, "", "", stops,
			"<|begin_of_query|> who<|end_of_query|>", "<|end_of_query|>"},
		{"last opened wins", "<answer> x <search> y", FinishStop, "", "", stops,
			"<answer> x <search> y</search>", "</search>"},
		{"opener at the end of the prompt", "Paris is the capital.", FinishStop, "", "results ...\n\n<think>\n", []string{"</think>"},
			"Paris is the capital.</think>", "</think>"},
		{"opener earlier in the prompt does not count", "Paris.", FinishStop, "", "<think>\nresults", []string{"</think>"},
			"Paris.", ""},
		{"everything closed: EOS", "<search>a</search> done", FinishStop, "", "", stops, "<search>a</search> done", ""},
		{"no tag at all", "I give up.", FinishStop, "", "", stops, "I give up.", ""},
		{"ends with the stop already", "<search>a</search>", FinishStop, "", "", stops, "<search>a</search>", ""},
		{"server named the stop", "<search>a", FinishStop, "</search>", "", stops, "<search>a", "</search>"},
		{"length is not a stop", "<search> a", FinishLength, "", "", stops, "<search> a", ""},
		{"abort is not a stop", "<search> a", FinishAbort, "", "", stops, "<search> a", ""},
		{"stop that is no closing tag", "<search> a", FinishStop, "", "", []string{"\n\n", "</", "</ x>"}, "<search> a", ""},
		{"no stops", "<search> a", FinishStop, "", "", nil, "<search> a", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := &Response{Text: c.text, Finish: c.finish, StopMatched: c.matched}
			got := RestoreTrimmedStop(r, c.promptTail, c.stops)
			if r.Text != c.wantText || r.StopMatched != c.wantStop {
				t.Fatalf("got %q stop %q, want %q stop %q", r.Text, r.StopMatched, c.wantText, c.wantStop)
			}
			restored := c.wantText != c.text
			if got != restored || r.StopRestored != restored {
				t.Fatalf("restored %v flag %v, want %v", got, r.StopRestored, restored)
			}
		})
	}
}

// A hosted-API reply (no stop_reason, no matched_stop, text trimmed) to an
// act call decodes with its closing tag back, on both endpoints.
func TestDecodeTrimmedUnreportedStop(t *testing.T) {
	stops := []string{"</search>", "</answer>"}
	comp := `{"choices":[{"index":0,"text":"Let me look.\n<search> capital of France ","logprobs":null,"finish_reason":"stop"}],"usage":{"prompt_tokens":3}}`
	r, err := decodeCompletionResponse([]byte(comp), stops, "")
	if err != nil {
		t.Fatal(err)
	}
	if r.Text != "Let me look.\n<search> capital of France </search>" || r.StopMatched != "</search>" || !r.StopRestored {
		t.Fatalf("completion: %+v", r)
	}
	chat := `{"choices":[{"index":0,"message":{"role":"assistant","content":"<answer> Paris"},"finish_reason":"stop"}]}`
	r, err = decodeChatResponse([]byte(chat), stops, "")
	if err != nil {
		t.Fatal(err)
	}
	if r.Text != "<answer> Paris</answer>" || r.StopMatched != "</answer>" || !r.StopRestored {
		t.Fatalf("chat: %+v", r)
	}
	// vLLM says stop_reason null for EOS: nothing is guessed.
	eos := `{"choices":[{"index":0,"text":"<answer> Paris","finish_reason":"stop","stop_reason":null}]}`
	if r, err = decodeCompletionResponse([]byte(eos), stops, ""); err != nil || r.StopMatched != "" || r.Text != "<answer> Paris" {
		t.Fatalf("explicit EOS: %+v %v", r, err)
	}
	// An SGLang-compatible /generate that omits "matched".
	gen := `{"text":"<search> x","meta_info":{"finish_reason":{"type":"stop"}}}`
	if r, err = decodeSGLangGenerate([]byte(gen), stops, ""); err != nil || r.Text != "<search> x</search>" || !r.StopRestored {
		t.Fatalf("generate: %+v %v", r, err)
	}
}
