package llm

import "strings"

// Servers that trim the matched stop string and do not say which one fired
// (the OpenAI API, and many OpenAI-compatible servers when the request may
// not carry include_stop_str_in_output / no_stop_trim) return
// "<search> query" for a generation that stopped on "</search>". Without
// the closing tag no agent can parse the action, so every backend restores
// it with RestoreTrimmedStop before the reply leaves the package.

// maxPromptTail bounds how much of a text prompt RestoreTrimmedStop looks
// at: only an opening tag at the very end of the prompt counts.
const maxPromptTail = 256

// PromptTail returns the end of a request's text prompt, where a tag the
// reply continues may have been opened (a note call's prompt ends in
// "<think>\n"). Token-id and chat prompts have none.
func PromptTail(req *Request) string {
	if req == nil || len(req.InputIDs) > 0 || len(req.Messages) > 0 {
		return ""
	}
	p := req.Prompt
	if len(p) > maxPromptTail {
		p = p[len(p)-maxPromptTail:]
	}
	return p
}

// RestoreTrimmedStop completes a reply that finished with "stop" when the
// server named no stop string and the text does not end with one, but the
// text ends inside an opened tag whose closing tag is one of the request's
// stop strings: the closing tag is appended to Text and recorded in
// StopMatched, and StopRestored is set. It reports whether it restored one.
//
// A tag counts as opened when its opening marker ("<search>" for
// "</search>", "<|begin_of_query|>" for "<|end_of_query|>") appears in the
// text with no closing marker after it, or when promptTail (the end of the
// prompt) ends with the opening marker followed only by white space. Of
// several open tags the one opened last wins, as generation stops at the
// first closing marker.
//
// The guess is wrong only when the model ended with EOS inside an open tag
// (an unfinished "<answer> Paris" then counts as answered); servers that
// report EOS explicitly (vLLM stop_reason null, SGLang matched null) never
// reach this function.
func RestoreTrimmedStop(resp *Response, promptTail string, stops []string) bool {
	if resp == nil || resp.Finish != FinishStop || resp.StopMatched != "" {
		return false
	}
	for _, s := range stops {
		if s != "" && strings.HasSuffix(resp.Text, s) {
			return false
		}
	}
	best, bestAt := "", -1
	for _, s := range stops {
		open := openingMarker(s)
		if open == "" {
			continue
		}
		at := strings.LastIndex(resp.Text, open)
		if at >= 0 {
			if strings.Contains(resp.Text[at+len(open):], s) {
				continue
			}
			at += len(promptTail) // rank against openers in the prompt
		} else {
			// An opener at the end of the prompt, and nothing in the text
			// that closed it.
			rest, ok := strings.CutSuffix(strings.TrimRight(promptTail, " \t\r\n"), open)
			if !ok || strings.Contains(resp.Text, s) {
				continue
			}
			at = len(rest)
		}
		if at > bestAt {
			best, bestAt = s, at
		}
	}
	if best == "" {
		return false
	}
	resp.Text += best
	resp.StopMatched = best
	resp.StopRestored = true
	return true
}

// openingMarker returns the marker a closing stop string closes: "<x>" for
// "</x>", "<|begin_of_x|>" for "<|end_of_x|>"; "" for any other stop.
func openingMarker(stop string) string {
	if name, ok := strings.CutPrefix(stop, "</"); ok && len(name) > 1 && strings.HasSuffix(name, ">") && !strings.ContainsAny(name[:len(name)-1], "<> \t\n") {
		return "<" + name
	}
	if name, ok := strings.CutPrefix(stop, "<|end_of_"); ok && len(name) > 2 && strings.HasSuffix(name, "|>") {
		return "<|begin_of_" + name
	}
	return ""
}
