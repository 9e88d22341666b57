package tokenizer

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// ChatFormat names a chat template this package renders.
type ChatFormat string

const (
	// ChatQwen3 is Qwen3's template: ChatML, no default system prompt,
	// <think> blocks on the latest assistant turns, and an empty think block
	// after the generation prompt when thinking is disabled.
	ChatQwen3 ChatFormat = "qwen3"
	// ChatQwen25 is Qwen2.5-Instruct's template: ChatML with a default
	// system prompt ("You are Qwen, created by Alibaba Cloud. ...").
	ChatQwen25 ChatFormat = "qwen2.5"
	// ChatSmolLM2 is SmolLM2-Instruct's template: plain ChatML with a
	// default system prompt, no tools and no thinking.
	ChatSmolLM2 ChatFormat = "smollm2"
)

// qwen25DefaultSystem is what Qwen2.5's template says when no system message
// is given.
const qwen25DefaultSystem = "You are Qwen, created by Alibaba Cloud. You are a helpful assistant."

// smolLM2DefaultSystem is what SmolLM2-Instruct's template says when the
// first message is not a system message.
const smolLM2DefaultSystem = "You are a helpful AI assistant named SmolLM, trained by Hugging Face"

// Message is one chat turn.
type Message struct {
	Role    string `json:"role"` // system, user, assistant or tool
	Content string `json:"content"`
	// ReasoningContent is an assistant turn's thinking (Qwen3). When empty,
	// a "<think>...</think>" prefix of Content is split off instead, as the
	// template does.
	ReasoningContent string     `json:"reasoning_content,omitempty"`
	ToolCalls        []ToolCall `json:"tool_calls,omitempty"`
}

// ToolCall is one function call of an assistant turn.
type ToolCall struct {
	Name string `json:"name"`
	// Arguments is a JSON object, or a JSON string that holds the arguments
	// already serialised (the OpenAI wire form). The templates print an
	// object with Python's json.dumps; Qwen3 prints a string as is, Qwen2.5
	// prints it quoted.
	Arguments json.RawMessage `json:"arguments"`
}

// ChatOptions controls ApplyChatTemplate.
type ChatOptions struct {
	// Format picks the template; empty means the tokenizer's own (detected
	// from tokenizer_config.json by Load), or ChatQwen3 when it has none.
	Format ChatFormat
	// AddGenerationPrompt appends "<|im_start|>assistant\n" so the model
	// writes the next assistant turn.
	AddGenerationPrompt bool
	// DisableThinking is Qwen3's enable_thinking=false: the generation
	// prompt gets an empty "<think>\n\n</think>\n\n". Qwen2.5 ignores it.
	DisableThinking bool
	// Tools are function schemas (OpenAI style JSON objects) listed in the
	// system turn.
	Tools []json.RawMessage
}

// detectChatFormat recognises the family of a tokenizer_config.json
// chat_template (a JSON string, or a list of named templates).
func detectChatFormat(template string) ChatFormat {
	switch {
	case strings.Contains(template, "enable_thinking") || strings.Contains(template, "reasoning_content"):
		return ChatQwen3
	case strings.Contains(template, "You are Qwen, created by Alibaba Cloud"):
		return ChatQwen25
	case strings.Contains(template, "named SmolLM, trained by Hugging Face"):
		return ChatSmolLM2
	}
	return ChatQwen3
}

// ChatFormat returns the template family ApplyChatTemplate uses by default.
func (t *Tokenizer) ChatFormat() ChatFormat { return t.chatFormat }

// ApplyChatTemplate renders msgs into the prompt text that transformers'
// apply_chat_template produces with the real Qwen template. Encode the
// result to get prompt ids.
func (t *Tokenizer) ApplyChatTemplate(msgs []Message, opts ChatOptions) (string, error) {
	if len(msgs) == 0 {
		return "", errors.New("chat template: no messages")
	}
	format := opts.Format
	if format == "" {
		format = t.chatFormat
	}
	if format == "" {
		format = ChatQwen3
	}
	tools := make([]string, len(opts.Tools))
	for i, tool := range opts.Tools {
		s, err := pyJSON(tool)
		if err != nil {
			return "", fmt.Errorf("chat template: tool %d: %w", i, err)
		}
		tools[i] = s
	}
	var b strings.Builder
	var err error
	switch format {
	case ChatQwen3:
		err = renderQwen3(&b, msgs, tools, opts)
	case ChatQwen25:
		err = renderQwen25(&b, msgs, tools, opts)
	case ChatSmolLM2:
		err = renderSmolLM2(&b, msgs, tools, opts)
	default:
		return "", fmt.Errorf("chat template: unknown format %q (want %q, %q or %q)", format, ChatQwen3, ChatQwen25, ChatSmolLM2)
	}
	if err != nil {
		return "", fmt.Errorf("chat template: %w", err)
	}
	return b.String(), nil
}

const (
	toolsPreamble = "# Tools\n\nYou may call one or more functions to assist with the user query.\n\n" +
		"You are provided with function signatures within <tools></tools> XML tags:\n<tools>"
	toolsPostamble = "\n</tools>\n\nFor each function call, return a json object with function name and arguments " +
		"within <tool_call></tool_call> XML tags:\n<tool_call>\n{\"name\": <function-name>, \"arguments\": <args-json-object>}\n</tool_call><|im_end|>\n"
)

func writeTools(b *strings.Builder, tools []string) {
	b.WriteString(toolsPreamble)
	for _, tool := range tools {
		b.WriteString("\n")
		b.WriteString(tool)
	}
	b.WriteString(toolsPostamble)
}

// writeToolTurn renders a tool result; consecutive results share one user turn.
func writeToolTurn(b *strings.Builder, msgs []Message, i int) {
	if i == 0 || msgs[i-1].Role != "tool" {
		b.WriteString("<|im_start|>user")
	}
	b.WriteString("\n<tool_response>\n")
	b.WriteString(msgs[i].Content)
	b.WriteString("\n</tool_response>")
	if i == len(msgs)-1 || msgs[i+1].Role != "tool" {
		b.WriteString("<|im_end|>\n")
	}
}

func writeTurn(b *strings.Builder, role, content string) {
	b.WriteString("<|im_start|>")
	b.WriteString(role)
	b.WriteString("\n")
	b.WriteString(content)
	b.WriteString("<|im_end|>\n")
}

// writeCalls renders an assistant turn's tool calls, each after a newline
// except, when newlineFirst is false, the first.
func writeCalls(b *strings.Builder, calls []ToolCall, newlineFirst, quoteString bool) error {
	for j, tc := range calls {
		if j > 0 || newlineFirst {
			b.WriteString("\n")
		}
		if err := writeCall(b, tc, quoteString); err != nil {
			return err
		}
	}
	return nil
}

// writeCall renders one tool call; quoteString is Qwen2.5's "tojson" of
// pre-serialised arguments.
func writeCall(b *strings.Builder, tc ToolCall, quoteString bool) error {
	b.WriteString("<tool_call>\n{\"name\": \"")
	b.WriteString(tc.Name)
	b.WriteString("\", \"arguments\": ")
	args := tc.Arguments
	if len(strings.TrimSpace(string(args))) == 0 {
		args = json.RawMessage("{}")
	}
	var str string
	if !quoteString && json.Unmarshal(args, &str) == nil {
		b.WriteString(str)
	} else {
		s, err := pyJSON(args)
		if err != nil {
			return fmt.Errorf("tool call %q arguments: %w", tc.Name, err)
		}
		b.WriteString(s)
	}
	b.WriteString("}\n</tool_call>")
	return nil
}

func renderQwen3(b *strings.Builder, msgs []Message, tools []string, opts ChatOptions) error {
	if len(tools) > 0 {
		b.WriteString("<|im_start|>system\n")
		if msgs[0].Role == "system" {
			b.WriteString(msgs[0].Content)
			b.WriteString("\n\n")
		}
		writeTools(b, tools)
	} else if msgs[0].Role == "system" {
		writeTurn(b, "system", msgs[0].Content)
	}
	// The last user query: thinking is shown only for assistant turns after
	// it. Tool results wrapped in <tool_response> do not count as queries.
	lastQuery := len(msgs) - 1
	for i := len(msgs) - 1; i >= 0; i-- {
		m := msgs[i]
		if m.Role == "user" && !(strings.HasPrefix(m.Content, "<tool_response>") && strings.HasSuffix(m.Content, "</tool_response>")) {
			lastQuery = i
			break
		}
	}
	for i, m := range msgs {
		switch {
		case m.Role == "user" || (m.Role == "system" && i > 0):
			writeTurn(b, m.Role, m.Content)
		case m.Role == "assistant":
			content, reasoning := m.Content, m.ReasoningContent
			if reasoning == "" && strings.Contains(content, "</think>") {
				before, _, _ := strings.Cut(content, "</think>")
				before = strings.TrimRight(before, "\n")
				if k := strings.LastIndex(before, "<think>"); k >= 0 {
					before = before[k+len("<think>"):]
				}
				reasoning = strings.TrimLeft(before, "\n")
				content = strings.TrimLeft(content[strings.LastIndex(content, "</think>")+len("</think>"):], "\n")
			}
			b.WriteString("<|im_start|>assistant\n")
			if i > lastQuery && (i == len(msgs)-1 || reasoning != "") {
				b.WriteString("<think>\n")
				b.WriteString(strings.Trim(reasoning, "\n"))
				b.WriteString("\n</think>\n\n")
				b.WriteString(strings.TrimLeft(content, "\n"))
			} else {
				b.WriteString(content)
			}
			if err := writeCalls(b, m.ToolCalls, content != "", false); err != nil {
				return err
			}
			b.WriteString("<|im_end|>\n")
		case m.Role == "tool":
			writeToolTurn(b, msgs, i)
		}
	}
	if opts.AddGenerationPrompt {
		b.WriteString("<|im_start|>assistant\n")
		if opts.DisableThinking {
			b.WriteString("<think>\n\n</think>\n\n")
		}
	}
	return nil
}

func renderQwen25(b *strings.Builder, msgs []Message, tools []string, opts ChatOptions) error {
	system := qwen25DefaultSystem
	if msgs[0].Role == "system" {
		system = msgs[0].Content
	}
	if len(tools) > 0 {
		b.WriteString("<|im_start|>system\n")
		b.WriteString(system)
		b.WriteString("\n\n")
		writeTools(b, tools)
	} else {
		writeTurn(b, "system", system)
	}
	for i, m := range msgs {
		switch {
		case m.Role == "user" || (m.Role == "system" && i > 0) || (m.Role == "assistant" && len(m.ToolCalls) == 0):
			writeTurn(b, m.Role, m.Content)
		case m.Role == "assistant":
			b.WriteString("<|im_start|>assistant")
			if m.Content != "" {
				b.WriteString("\n")
				b.WriteString(m.Content)
			}
			if err := writeCalls(b, m.ToolCalls, true, true); err != nil {
				return err
			}
			b.WriteString("<|im_end|>\n")
		case m.Role == "tool":
			writeToolTurn(b, msgs, i)
		}
	}
	if opts.AddGenerationPrompt {
		b.WriteString("<|im_start|>assistant\n")
	}
	return nil
}

// renderSmolLM2 follows SmolLM2-Instruct's template, which knows only roles
// and contents: tool calls and tool schemas have no place in it, so they are
// refused rather than silently dropped.
func renderSmolLM2(b *strings.Builder, msgs []Message, tools []string, opts ChatOptions) error {
	if len(tools) > 0 {
		return errors.New("the smollm2 template has no tool schemas")
	}
	if msgs[0].Role != "system" {
		writeTurn(b, "system", smolLM2DefaultSystem)
	}
	for _, m := range msgs {
		if len(m.ToolCalls) > 0 {
			return errors.New("the smollm2 template has no tool calls")
		}
		writeTurn(b, m.Role, m.Content)
	}
	if opts.AddGenerationPrompt {
		b.WriteString("<|im_start|>assistant\n")
	}
	return nil
}
