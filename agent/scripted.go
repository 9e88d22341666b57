package agent

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/asearcher/asearcher/llm"
)

// ScriptedSampler is a model that says what it is told: it returns its
// Replies in order. A reply is cut after the first stop string of the
// request, and after MaxNewTokens tokens; a reply that ends without a stop
// string gets the EOS token. With it, Demonstrate turns hand-written
// demonstrations into trajectories (and training sequences) that match the
// agent's format byte for byte.
type ScriptedSampler struct {
	// Tokenizer encodes the replies; nil returns text only.
	Tokenizer Tokenizer
	Replies   []string
	// EOS is appended to a reply that hits no stop string; -1 for none.
	EOS int

	mu   sync.Mutex
	next int
}

// ErrScriptExhausted is returned once every reply was used.
var ErrScriptExhausted = errors.New("scripted sampler: no replies left")

// Sample implements llm.Sampler.
func (s *ScriptedSampler) Sample(ctx context.Context, req *llm.Request) (*llm.Response, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	if s.next >= len(s.Replies) {
		s.mu.Unlock()
		return nil, ErrScriptExhausted
	}
	text := s.Replies[s.next]
	s.next++
	s.mu.Unlock()
	resp := &llm.Response{Finish: llm.FinishStop}
	if stop, end := firstStop(text, req.Params.Stop); stop != "" {
		text, resp.StopMatched = text[:end], stop
	}
	if s.Tokenizer == nil {
		resp.Text = text
		return resp, nil
	}
	ids := s.Tokenizer.Encode(text)
	if resp.StopMatched == "" && s.EOS >= 0 {
		ids = append(ids, s.EOS)
	}
	if max := req.Params.MaxNewTokens; max > 0 && len(ids) > max {
		ids, resp.Finish, resp.StopMatched = ids[:max], llm.FinishLength, ""
		text = s.Tokenizer.Decode(ids)
	}
	resp.OutputIDs, resp.Text = ids, text
	resp.Logprobs = make([]float32, len(ids))
	return resp, nil
}

// Used is how many replies were consumed.
func (s *ScriptedSampler) Used() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.next
}

// Demonstrate runs wf with a model that gives the scripted replies, on
// env's tokenizer and tools, and returns the trajectory. Its Sequences are
// supervised training data in exactly the format the agent uses when it
// runs for real (tool output and glue masked, replies trained). It fails
// when the workflow did not consume every reply or did not answer,
// because then the demonstration and the agent disagree.
func Demonstrate(ctx context.Context, wf Workflow, env *Env, task Task, replies []string) (*Trajectory, error) {
	eos := -1
	if len(env.StopTokenIDs) > 0 {
		eos = env.StopTokenIDs[0]
	}
	sampler := &ScriptedSampler{Tokenizer: env.Tokenizer, Replies: replies, EOS: eos}
	demo := *env
	demo.Sampler = sampler
	demo.Sampling.Temperature = 0
	traj, err := wf.Run(ctx, &demo, task)
	if err != nil {
		return traj, err
	}
	if n := sampler.Used(); n != len(replies) {
		return traj, fmt.Errorf("demonstration: the agent used %d of %d replies (ended: %s)", n, len(replies), traj.End)
	}
	if !traj.Answered {
		return traj, fmt.Errorf("demonstration: the agent did not answer (ended: %s); the last reply should hold <answer>", traj.End)
	}
	for i, c := range traj.Calls {
		if c.Finish == llm.FinishLength {
			return traj, fmt.Errorf("demonstration: reply %d was cut short by the token budget", i)
		}
	}
	return traj, nil
}
