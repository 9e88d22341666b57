package agent

import (
	"fmt"
	"os"
	"regexp"
	"slices"
	"strings"
	"unicode/utf8"
)

// Prompt is a named prompt template. Placeholders are written {name} and
// filled by Render; a placeholder without a value stays as it is.
type Prompt struct {
	Name        string
	Description string
	// Chat says the text is one user message to wrap in the model's chat
	// template; otherwise it is the raw start of a completion.
	Chat bool
	Text string
	// PyFormat reads Text as Python's str.format does, as upstream's prompt
	// files are written: {{ and }} are literal braces. Prompts loaded from a
	// file (LoadPromptFile) set it.
	PyFormat bool
}

// Built-in prompt names.
const (
	PromptASearcher       = "asearcher"             // base model, search + access
	PromptSearchOnly      = "asearcher-search-only" // base model, search only
	PromptSearchR1        = "search-r1"             // Search-R1 style ChatML string
	PromptTiny            = "tiny"                  // minimal, for a tiny embedded model
	PromptClosedBook      = "closed-book"           // base model, no tools: answer from memory
	PromptReasonAct       = "asearcher-reasoning/act"
	PromptReasonReadPage  = "asearcher-reasoning/read-page"
	PromptReasonReadFound = "asearcher-reasoning/read-search"
	PromptReasonAnswer    = "asearcher-reasoning/final-answer"
)

// Validity sentences for {validity} in the base prompts: whether the model
// may declare a question invalid (the invalid-question penalty of training
// uses the first; evaluation always uses the second).
const (
	ValidityMayBeInvalid = "If the question is ill-posed or cannot be answered, the Assistant replies <answer> the question is invalid. </answer>."
	ValidityIsValid      = "The question is valid, so the Assistant always gives its most likely answer."
)

// Prompts is a registry of prompt templates by name. NewPrompts holds the
// built-in ones; other packages register their own (synthesis, custom
// agents). Not safe for concurrent Register; register at start-up.
type Prompts struct {
	byName map[string]Prompt
}

// NewPrompts returns a registry holding the built-in prompts.
func NewPrompts() *Prompts {
	r := &Prompts{byName: map[string]Prompt{}}
	for _, p := range builtinPrompts() {
		r.byName[p.Name] = p
	}
	return r
}

// Register adds or replaces a prompt.
func (r *Prompts) Register(p Prompt) error {
	if p.Name == "" || strings.TrimSpace(p.Text) == "" {
		return fmt.Errorf("register prompt: name and text are required")
	}
	r.byName[p.Name] = p
	return nil
}

// Get returns the prompt called name.
func (r *Prompts) Get(name string) (Prompt, error) {
	p, ok := r.byName[name]
	if !ok {
		return Prompt{}, fmt.Errorf("unknown prompt %q; known prompts: %s", name, strings.Join(r.Names(), ", "))
	}
	return p, nil
}

// Names lists the registered prompts in order.
func (r *Prompts) Names() []string {
	out := make([]string, 0, len(r.byName))
	for n := range r.byName {
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}

var placeholderRE = regexp.MustCompile(`\{[a-z_]+\}`)

// Placeholders lists the distinct {names} the prompt uses.
func (p Prompt) Placeholders() []string {
	var out []string
	for _, m := range placeholderRE.FindAllString(p.Text, -1) {
		name := m[1 : len(m)-1]
		if !slices.Contains(out, name) {
			out = append(out, name)
		}
	}
	return out
}

// Render fills the placeholders in one pass, so a value that itself
// contains {braces} (a question about templates) is not expanded again.
func (p Prompt) Render(vars map[string]string) string {
	if p.PyFormat {
		return renderPyFormat(p.Text, vars)
	}
	pairs := make([]string, 0, 2*len(vars))
	for k, v := range vars {
		pairs = append(pairs, "{"+k+"}", v)
	}
	return strings.NewReplacer(pairs...).Replace(p.Text)
}

func builtinPrompts() []Prompt {
	baseIntro := "This is a conversation between a User and an Assistant. The User asks a question, and the Assistant researches it with tools before answering.\n" +
		"The Assistant first thinks step by step inside <think> and </think>. After thinking, it takes exactly one action:\n"
	baseRules := "The Assistant looks facts up instead of guessing and confirms key facts with more than one search. " +
		"The final answer is short (a name, a number, a date or a few words); several answers are separated by commas; " +
		"the answer is written in the language of the question. {validity}\n" +
		"User: {question}\nAssistant:\n<think>\n"
	search := "- <search> query </search> searches the web; the results come back between <information> and </information>.\n"
	access := "- <access> url </access> opens a page seen in the results; its text comes back between <information> and </information>, one part at a time.\n"
	answer := "- <answer> answer </answer> gives the final answer and ends the conversation.\n"

	reasonHead := "You are a research agent answering a hard question with a search engine and a web browser. Today is {date}.\n\n" +
		"Question:\n{question}\n\nYour notes so far:\n```txt\n{history}\n```\n\n"
	return []Prompt{
		{
			Name:        PromptASearcher,
			Description: "base model (no chat template): think, then one of search, access, answer",
			Text:        baseIntro + search + access + answer + "When search snippets are not enough, the Assistant opens the most promising page. " + baseRules,
		},
		{
			Name:        PromptSearchOnly,
			Description: "base model (no chat template): think, then one of search, answer",
			Text:        baseIntro + search + answer + baseRules,
		},
		{
			Name:        PromptSearchR1,
			Description: "Search-R1 style: a ChatML string, reasoning in <think>, search results appended in place",
			Text: "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n" +
				"Answer the question below. Whenever you receive new information, first reason about it inside <think> and </think>. " +
				"If some knowledge is missing, call the search engine with <search> query </search>; the top results come back between <information> and </information>. " +
				"Search as many times as you need. When you need nothing more, write only the final answer inside <answer> and </answer>, " +
				"with no explanation, for example <answer> Marie Curie </answer>.\nQuestion: {question}<|im_end|>\n<|im_start|>assistant\n",
		},
		{
			Name:        PromptClosedBook,
			Description: "base model (no chat template), no tools: think, then answer from memory",
			Text: "This is a conversation between a User and an Assistant. The User asks a question, and the Assistant answers it from its own knowledge, without tools.\n" +
				"The Assistant first thinks step by step inside <think> and </think>, then gives the final answer inside <answer> and </answer>. " +
				"The final answer is short (a name, a number, a date or a few words); several answers are separated by commas; " +
				"the answer is written in the language of the question. {validity}\n" +
				"User: {question}\nAssistant:\n<think>\n",
		},
		{
			Name:        PromptTiny,
			Description: "minimal prompt for a tiny model that learned the tags from demonstrations",
			Text:        "Q: {question}\n",
		},
		{
			Name:        PromptReasonAct,
			Description: "reasoning model, act step: one thought and exactly one action",
			Chat:        true,
			Text: reasonHead +
				"Decide the single next step. First write a short thought inside <thought> and </thought>: what you have found, what is still missing, and why the next step helps. Then write exactly one action:\n" +
				"- <search> query </search> to run a web search, or\n" +
				"- <access> url </access> to read a page whose link appeared in your results.\n" +
				"{answer_action}" +
				"Guidelines: verify every key fact in more than one source; when a search finds nothing useful, reword it; " +
				"open promising pages instead of relying on snippets; never take more than one action.",
		},
		{
			Name:        PromptReasonReadPage,
			Description: "reasoning model, after reading one part of a page",
			Chat:        true,
			Text: reasonHead + "You opened {url}. This is part {part} of the page:\n```txt\n{content}\n```\n\n" +
				"Write one thought inside <thought> and </thought> that keeps every fact and link from this part that matters for the question, " +
				"and says what it means for the answer. Write nothing else.",
		},
		{
			Name:        PromptReasonReadFound,
			Description: "reasoning model, after a search",
			Chat:        true,
			Text: reasonHead + "You searched for \"{query}\". These are the results:\n```txt\n{content}\n```\n\n" +
				"Write one thought inside <thought> and </thought> that keeps every relevant fact and the links worth opening, " +
				"and says what they mean for the answer. Write nothing else.",
		},
		{
			Name:        PromptReasonAnswer,
			Description: "reasoning model, forced final answer",
			Chat:        true,
			Text: reasonHead + "You have no steps left. Using your notes, write a short thought inside <thought> and </thought>, " +
				"then your best final answer inside <answer> and </answer>, usually fewer than ten words.",
		},
	}
}

// AnswerActionLine is {answer_action} in the reasoning act prompt once
// answering is allowed.
const AnswerActionLine = "- <answer> answer </answer> to give the final answer, usually fewer than ten words, once the key facts are checked.\n"

// renderPyFormat fills {name} slots in one pass with {{ and }} as literal
// braces; a slot without a value stays as written.
func renderPyFormat(text string, vars map[string]string) string {
	var b strings.Builder
	for i := 0; i < len(text); i++ {
		c := text[i]
		if (c == '{' || c == '}') && i+1 < len(text) && text[i+1] == c {
			b.WriteByte(c)
			i++
			continue
		}
		if c == '{' {
			if end := strings.IndexByte(text[i:], '}'); end > 0 {
				if v, ok := vars[text[i+1:i+end]]; ok {
					b.WriteString(v)
					i += end
					continue
				}
			}
		}
		b.WriteByte(c)
	}
	return b.String()
}

// PromptFilePrefix marks a prompt given as a file: --prompt file:PATH.
const PromptFilePrefix = "file:"

// LoadPromptFile reads a prompt template from a file, in upstream's syntax
// (Python str.format: {question}; {{ and }} are literal braces). Every slot
// must be one of allowed, so a typo is an error rather than text the model
// sees; at least one must be used.
func LoadPromptFile(path, name string, chat bool, allowed []string) (Prompt, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Prompt{}, fmt.Errorf("prompt file: %w", err)
	}
	if !utf8.Valid(data) || strings.TrimSpace(string(data)) == "" {
		return Prompt{}, fmt.Errorf("prompt file %s: want non-empty UTF-8 text", path)
	}
	text := string(data)
	used := 0
	for i := 0; i < len(text); i++ {
		c := text[i]
		if (c == '{' || c == '}') && i+1 < len(text) && text[i+1] == c {
			i++
			continue
		}
		switch c {
		case '{':
			end := strings.IndexByte(text[i:], '}')
			if end < 0 {
				return Prompt{}, fmt.Errorf("prompt file %s: '{' at byte %d is never closed (write {{ for a literal brace)", path, i)
			}
			if slot := text[i+1 : i+end]; !slices.Contains(allowed, slot) {
				return Prompt{}, fmt.Errorf("prompt file %s: unknown slot {%s}; this prompt takes %s (write {{ and }} for literal braces)", path, slot, "{"+strings.Join(allowed, "}, {")+"}")
			}
			used++
			i += end
		case '}':
			return Prompt{}, fmt.Errorf("prompt file %s: single '}' at byte %d (write }} for a literal brace)", path, i)
		}
	}
	if used == 0 {
		return Prompt{}, fmt.Errorf("prompt file %s uses no slot; it needs at least {%s}", path, allowed[0])
	}
	return Prompt{Name: name, Description: "loaded from " + path, Chat: chat, Text: text, PyFormat: true}, nil
}
