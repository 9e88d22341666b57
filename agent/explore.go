package agent

import (
	"strings"

	"github.com/asearcher/asearcher/llm"
)

// forceSearch is Explore.MinSearches at work: the act reply rep (text is
// pending carry + rep.Text) holds an answer act, begun before the run has
// made enough searches. It cuts the reply's output at the answer tag,
// appends the search tag as prompt and returns the carry for the act call
// that lets the model write the query. ok is false when exploration does
// not apply: off, enough searches, no search tag, or an answer tag that does
// not start in the reply's only call (then nothing is changed).
func (a *SearchAgent) forceSearch(s *Session, rep Reply, text string, act Action) (carry string, ok bool) {
	want := s.env.Explore.MinSearches
	if want <= 0 || a.cfg.ClosedBook || a.searchOpen == "" || s.searches() >= want {
		return "", false
	}
	if rep.First < 0 || rep.First != rep.Last {
		// The answer may straddle calls (a continued, aborted generation);
		// cutting across calls is not worth its complexity.
		return "", false
	}
	pending := len(text) - len(rep.Text)
	at := act.Start - pending
	if at < 0 {
		return "", false // the answer tag began in text of an earlier turn
	}
	// The forced tag stands for the answer's first token: it gets its
	// weight version.
	version := -1
	kept, ok := s.cutLastOutput(rep.Last, at, &version)
	if !ok {
		return "", false
	}
	// Text between the kept tokens and the answer tag (a token that
	// straddled the tag's start) goes back in with the tag.
	glue := rep.Text[len(kept):at]
	if !s.env.Explore.TrainTag || !s.appendForced(rep.Last, glue+a.searchOpen, version) {
		s.Append(glue + a.searchOpen)
	}
	return text[:act.Start] + a.searchOpen, true
}

// appendForced appends text to the output of call i, the end of the
// context, as tokens the exploring policy wrote with probability 1
// (logprob 0, the version of the tokens they replace). It declines (false)
// outside token mode, when the call's output ends in unsampled tokens,
// or when the version is unknown.
func (s *Session) appendForced(i int, text string, version int) bool {
	c := &s.traj.Calls[i]
	if s.traj.Mode != ModeTokens || c.Unsampled > 0 || version < 0 || s.Mark() != s.traj.fullLen(i) ||
		(c.Logprobs == nil && len(c.Output) > 0) || (c.Versions == nil && len(c.Output) > 0) {
		return false
	}
	ids := s.env.Tokenizer.Encode(text)
	c.Output = append(c.Output, ids...)
	c.Text += text
	c.Logprobs = append(c.Logprobs, make([]float32, len(ids))...)
	for range ids {
		c.Versions = append(c.Versions, version)
	}
	c.Forced += len(ids)
	s.ids = append(s.ids, ids...)
	return true
}

// searches counts the search tool calls made so far.
func (s *Session) searches() int {
	n := 0
	for i := range s.traj.Tools {
		if s.traj.Tools[i].Name == KindSearch {
			n++
		}
	}
	return n
}

// cutLastOutput shortens the output of call i, which must be the end of
// the context, to the longest token prefix whose text is a prefix of the
// first at bytes of its text (in text modes, exactly those bytes). The rest
// leaves the context and the record (it is kept in Call.Cut for readers),
// so it is never trained on. It returns the text kept.
func (s *Session) cutLastOutput(i, at int, version *int) (string, bool) {
	t := s.traj
	if i < 0 || i >= len(t.Calls) || i != len(t.Calls)-1 || s.Mark() != t.fullLen(i) {
		return "", false
	}
	c := &t.Calls[i]
	if at < 0 || at > len(c.Text) {
		return "", false
	}
	want := c.Text[:at]
	if t.Mode != ModeTokens {
		c.Cut = c.Text[at:]
		c.Text, c.Output = want, nil
		s.Rewind(c.InputLen + len(want))
	} else {
		// Decoded prefixes grow with k; the largest k whose text is still
		// a prefix of want.
		ok := func(k int) bool { return strings.HasPrefix(want, s.env.Tokenizer.Decode(c.Output[:k])) }
		lo, hi := 0, len(c.Output)
		for lo < hi {
			mid := lo + (hi-lo+1)/2
			if ok(mid) {
				lo = mid
			} else {
				hi = mid - 1
			}
		}
		k := lo
		kept := s.env.Tokenizer.Decode(c.Output[:k])
		c.Cut = c.Text[len(kept):]
		sampled := len(c.Output) - c.Unsampled
		c.Unsampled = max(0, k-sampled)
		if k < len(c.Versions) {
			*version = c.Versions[k]
		}
		c.Output, c.Text = c.Output[:k], kept
		if c.Logprobs != nil {
			c.Logprobs = c.Logprobs[:k]
		}
		if c.Versions != nil {
			c.Versions = c.Versions[:k]
		}
		s.Rewind(c.InputLen + k)
		want = kept
	}
	c.Clipped = true
	// The cut ended the output, as a stop string would have.
	c.Finish, c.EOS, c.StopMatched = llm.FinishStop, false, ""
	return want, true
}
