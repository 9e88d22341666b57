package synth

import (
	"strings"
	"testing"
)

func TestParseReply(t *testing.T) {
	tests := []struct {
		name  string
		raw   string
		into  reply
		want  string // error substring; "" for success
		check func(reply) bool
	}{
		{"plain", `{"question": "Q?", "answer": "A", "statement": "S."}`, &baseQAReply{}, "", func(r reply) bool { return r.(*baseQAReply).Answer == "A" }},
		{"think and fence", "<think>maybe {\"x\":1}</think>\n```json\n{\"covered\": true}\n```", &coveredReply{}, "", func(r reply) bool { return r.(*coveredReply).Covered }},
		{"text around", `Sure! {"also_correct": false, "reason": "r"} Hope this helps.`, &uniqueReply{}, "", nil},
		{"optional missing", `{"action": "FUZZ"}`, &actionReply{}, "", func(r reply) bool { return r.(*actionReply).Action == ActionFuzz }},
		{"no object", "I cannot do that.", &coveredReply{}, "no JSON object", nil},
		{"truncated", `{"covered": tr`, &coveredReply{}, "JSON object", nil},
		{"missing key", `{"question": "Q?", "answer": "A"}`, &baseQAReply{}, `missing key "statement"`, nil},
		{"unknown key", `{"covered": true, "confidence": 0.9}`, &coveredReply{}, "unknown field", nil},
		{"wrong type", `{"covered": "yes"}`, &coveredReply{}, "reply schema", nil},
		{"object inside text brackets", `[{"covered": true}]`, &coveredReply{}, "", func(r reply) bool { return r.(*coveredReply).Covered }},
		{"empty value", `{"question": " ", "answer": "A", "statement": "S"}`, &baseQAReply{}, `"question" is empty`, nil},
		{"bad action", `{"action": "brainstorm", "entity": ""}`, &actionReply{}, "not inject, fuzz or exit", nil},
		{"inject without entity", `{"action": "inject", "entity": ""}`, &actionReply{}, "without an entity", nil},
		{"quality", `{"well_formed": true, "single": false, "answerable": true, "answer_correct": true}`, &qualityReply{}, "", func(r reply) bool { return !r.(*qualityReply).Single }},
		{"too long", strings.Repeat(" ", maxReplyBytes+1), &coveredReply{}, "too long", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := parseReply(tt.raw, tt.into)
			if tt.want == "" {
				if err != nil {
					t.Fatalf("error %v", err)
				}
				if tt.check != nil && !tt.check(tt.into) {
					t.Fatalf("decoded %+v", tt.into)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want %q", err, tt.want)
			}
		})
	}
}

// FuzzParseReply: any model output parses or fails with an error, never a
// panic, and a parsed reply satisfies its schema's checks.
func FuzzParseReply(f *testing.F) {
	for _, s := range []string{
		`{"question": "Q?", "answer": "A", "statement": "S."}`, `{"action": "inject", "entity": "X"}`,
		"<think></think>{\"covered\": false}", `{"well_formed": true}`, "{{{{", `{"fact":"f","question":"q","answer":"a"}`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		for _, r := range []reply{&baseQAReply{}, &actionReply{}, &injectReply{}, &coveredReply{}, &fuzzReply{}, &qualityReply{}, &uniqueReply{}} {
			if err := parseReply(raw, r); err == nil {
				if err := r.check(); err != nil {
					t.Fatalf("accepted a reply failing its check: %v", err)
				}
			}
		}
	})
}

func TestClip(t *testing.T) {
	for _, tt := range []struct {
		in   string
		n    int
		want string
	}{{"abc", 5, "abc"}, {"abcdef", 3, "abc…"}, {"héllo", 2, "h…"}} {
		if got := clip(tt.in, tt.n); got != tt.want {
			t.Errorf("clip(%q, %d) = %q, want %q", tt.in, tt.n, got, tt.want)
		}
	}
}
