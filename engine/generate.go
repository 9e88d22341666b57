package engine

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/asearcher/asearcher/llm"
)

// GenerateOptions configure Generate (`asearcher generate`).
type GenerateOptions struct {
	Chat   bool   // wrap the prompt as a user turn in the chat template
	System string // system message for Chat
	Params llm.Params
}

// GenerateStats summarise one Generate call.
type GenerateStats struct {
	PromptTokens, NewTokens int
	Finish                  llm.Finish
	Elapsed                 time.Duration
}

// Generate streams the model's continuation of prompt to out as tokens are
// sampled.
func Generate(ctx context.Context, s *Sampler, prompt string, o GenerateOptions, out io.Writer) (*GenerateStats, error) {
	if s.Tokenizer() == nil {
		return nil, fmt.Errorf("generate: the model directory has no tokenizer.json")
	}
	req := &llm.Request{Params: o.Params}
	if o.Chat {
		if o.System != "" {
			req.Messages = append(req.Messages, llm.Message{Role: "system", Content: o.System})
		}
		req.Messages = append(req.Messages, llm.Message{Role: "user", Content: prompt})
	} else {
		req.Prompt = prompt
	}
	var werr error
	written := 0
	start := time.Now()
	resp, err := s.SampleStream(ctx, req, func(ev StreamEvent) {
		if ev.Text != "" && werr == nil {
			_, werr = io.WriteString(out, ev.Text)
			written += len(ev.Text)
		}
	})
	if err != nil {
		return nil, err
	}
	if werr == nil && len(resp.Text) > written { // a character held back at the end
		_, werr = io.WriteString(out, resp.Text[written:])
	}
	if werr != nil {
		return nil, fmt.Errorf("generate: %w", werr)
	}
	return &GenerateStats{PromptTokens: resp.PromptTokens, NewTokens: len(resp.OutputIDs), Finish: resp.Finish,
		Elapsed: time.Since(start)}, nil
}
