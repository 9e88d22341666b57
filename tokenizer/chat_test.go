package tokenizer

import (
	"encoding/json"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

type chatRow struct {
	Format              ChatFormat        `json:"format"`
	Name                string            `json:"name"`
	Messages            []Message         `json:"messages"`
	AddGenerationPrompt bool              `json:"add_generation_prompt"`
	DisableThinking     bool              `json:"disable_thinking"`
	Tools               []json.RawMessage `json:"tools"`
	Text                string            `json:"text"`
	IDs                 []int             `json:"ids"`
}

// TestChatTemplateMatchesTransformers renders every fixture conversation and
// compares with transformers' apply_chat_template on the real templates.
func TestChatTemplateMatchesTransformers(t *testing.T) {
	tok := qwen(t)
	rows := readJSONL[chatRow](t, filepath.Join("testdata", "chat.jsonl.zst"))
	if len(rows) == 0 {
		t.Fatal("no chat fixtures")
	}
	for _, row := range rows {
		name := string(row.Format) + "/" + row.Name
		if row.AddGenerationPrompt {
			name += "/gen"
		}
		if row.DisableThinking {
			name += "/nothink"
		}
		if row.Tools != nil {
			name += "/tools"
		}
		t.Run(name, func(t *testing.T) {
			got, err := tok.ApplyChatTemplate(row.Messages, ChatOptions{
				Format:              row.Format,
				AddGenerationPrompt: row.AddGenerationPrompt,
				DisableThinking:     row.DisableThinking,
				Tools:               row.Tools,
			})
			if err != nil {
				t.Fatal(err)
			}
			if got != row.Text {
				t.Fatalf("rendered:\n%s\nwant:\n%s", got, row.Text)
			}
			if ids := tok.Encode(got); !equalIDs(ids, row.IDs) {
				t.Errorf("ids differ from HF:\n got  %v\n want %v", ids, row.IDs)
			}
		})
	}
}

func TestChatFormatDetectedFromConfig(t *testing.T) {
	tests := []struct {
		template string
		want     ChatFormat
	}{
		{`"{%- if enable_thinking is defined %}"`, ChatQwen3},
		{`"You are Qwen, created by Alibaba Cloud. You are a helpful assistant."`, ChatQwen25},
		{`"{{ messages }}"`, ChatQwen3},
		{`"{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}"`, ChatSmolLM2},
		{``, ChatQwen3},
	}
	for _, tt := range tests {
		if got := detectChatFormat(tt.template); got != tt.want {
			t.Errorf("detectChatFormat(%q) = %q, want %q", tt.template, got, tt.want)
		}
	}
}

func TestChatTemplateErrors(t *testing.T) {
	tok := qwen(t)
	tests := []struct {
		name string
		msgs []Message
		opts ChatOptions
		want string
	}{
		{"no messages", nil, ChatOptions{}, "no messages"},
		{"unknown format", []Message{{Role: "user", Content: "x"}}, ChatOptions{Format: "llama"}, "unknown format"},
		{"bad tool", []Message{{Role: "user", Content: "x"}}, ChatOptions{Tools: []json.RawMessage{json.RawMessage(`{"a":`)}}, "tool 0"},
		{"bad arguments", []Message{{Role: "assistant", ToolCalls: []ToolCall{{Name: "f", Arguments: json.RawMessage(`{x}`)}}}}, ChatOptions{}, "arguments"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := tok.ApplyChatTemplate(tt.msgs, tt.opts)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want one mentioning %q", err, tt.want)
			}
		})
	}
}

func TestPyJSON(t *testing.T) {
	tests := []struct{ in, want string }{
		{`{"b":1,"a":[1,2.5,"x"]}`, `{"b": 1, "a": [1, 2.5, "x"]}`},
		{`{"a":1,"a":2,"b":3}`, `{"a": 2, "b": 3}`},
		{`[1.0, 1e16, 1e15, 0.0001, 0.00001, -0.0, 1E400, 123456789012345678901234567890]`,
			`[1.0, 1e+16, 1000000000000000.0, 0.0001, 1e-05, -0.0, Infinity, 123456789012345678901234567890]`},
		{`"\u00e9\u4e2d<>&\/ \u0007\"\\"`, `"é中<>&/ \u0007\"\\"`},
		{`{}`, `{}`}, {`[]`, `[]`}, {`null`, `null`}, {`true`, `true`},
	}
	for _, tt := range tests {
		got, err := pyJSON([]byte(tt.in))
		if err != nil || got != tt.want {
			t.Errorf("pyJSON(%s) = %s, %v; want %s", tt.in, got, err, tt.want)
		}
	}
	for _, bad := range []string{``, `{`, `[1,]`, `1 2`, `{"a" 1}`} {
		if _, err := pyJSON([]byte(bad)); err == nil {
			t.Errorf("pyJSON(%q) accepted malformed JSON", bad)
		}
	}
}

// The SmolLM2 renderings were checked against transformers' apply_chat_template
// on the real template (gguf/testdata/smollm2.json holds more, tested in gguf).
func TestChatSmolLM2(t *testing.T) {
	tok := qwen(t)
	sys := "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n"
	tests := []struct {
		name string
		msgs []Message
		gen  bool
		want string
	}{
		{"default system", []Message{{Role: "user", Content: "Hi"}}, true,
			sys + "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"},
		{"own system", []Message{{Role: "system", Content: "Be brief."}, {Role: "user", Content: "Hi"}, {Role: "assistant", Content: "Yo"}}, false,
			"<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nYo<|im_end|>\n"},
		{"tool result", []Message{{Role: "user", Content: "Hi"}, {Role: "tool", Content: "42"}}, false,
			sys + "<|im_start|>user\nHi<|im_end|>\n<|im_start|>tool\n42<|im_end|>\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tok.ApplyChatTemplate(tt.msgs, ChatOptions{Format: ChatSmolLM2, AddGenerationPrompt: tt.gen})
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("got\n%q\nwant\n%q", got, tt.want)
			}
		})
	}
	if _, err := tok.ApplyChatTemplate([]Message{{Role: "user", Content: "x"}}, ChatOptions{Format: ChatSmolLM2,
		Tools: []json.RawMessage{json.RawMessage(`{"name":"f"}`)}}); err == nil {
		t.Error("tools were accepted by a template that cannot show them")
	}
	if _, err := tok.ApplyChatTemplate([]Message{{Role: "assistant", ToolCalls: []ToolCall{{Name: "f", Arguments: json.RawMessage(`{}`)}}}},
		ChatOptions{Format: ChatSmolLM2}); err == nil {
		t.Error("tool calls were accepted by a template that cannot show them")
	}
}

func TestDigitsSplitter(t *testing.T) {
	tests := []struct {
		in         string
		individual bool
		want       []string
	}{
		{"ab12c3", true, []string{"ab", "1", "2", "c", "3"}},
		{"ab12c3", false, []string{"ab", "12", "c", "3"}},
		{"2024 ok", true, []string{"2", "0", "2", "4", " ok"}},
		{"x\u0663\u00bd y", true, []string{"x", "\u0663", "\u00bd", " y"}}, // Arabic-Indic three, ½ (No)
		{"no digits", true, []string{"no digits"}},
		{"", true, nil},
		{"\xff1", true, []string{"\xff", "1"}},
	}
	for _, tt := range tests {
		var got []string
		digitsSplitter{individual: tt.individual}.split(tt.in, func(p string) { got = append(got, p) })
		if !slices.Equal(got, tt.want) {
			t.Errorf("split(%q, individual=%v) = %q, want %q", tt.in, tt.individual, got, tt.want)
		}
	}
}
