package synth

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// Model replies are JSON objects with a fixed schema. Reasoning before the
// object (a <think> block, a sentence) and text after it are ignored; the
// object itself must have every required key, no unknown key, and values of
// the right type, or the reply is unparseable and the call is retried.

type baseQAReply struct {
	Question  string `json:"question"`
	Answer    string `json:"answer"`
	Statement string `json:"statement"`
}

func (r *baseQAReply) check() error {
	return nonEmpty("question", r.Question, "answer", r.Answer, "statement", r.Statement)
}

type actionReply struct {
	Action string `json:"action"`
	Entity string `json:"entity"`
	Reason string `json:"reason"`
}

func (r *actionReply) check() error {
	r.Action = strings.ToLower(strings.TrimSpace(r.Action))
	switch r.Action {
	case ActionInject, ActionFuzz, ActionExit:
	default:
		return fmt.Errorf("action %q is not inject, fuzz or exit", clip(r.Action, 40))
	}
	if r.Action == ActionInject && strings.TrimSpace(r.Entity) == "" {
		return errors.New("inject without an entity")
	}
	return nil
}

type injectReply struct {
	Fact     string `json:"fact"`
	Bridge   string `json:"bridge"`
	Question string `json:"question"`
	Answer   string `json:"answer"`
}

func (r *injectReply) check() error {
	return nonEmpty("fact", r.Fact, "question", r.Question, "answer", r.Answer)
}

type coveredReply struct {
	Covered bool `json:"covered"`
}

func (r *coveredReply) check() error { return nil }

type fuzzReply struct {
	Question string `json:"question"`
	Answer   string `json:"answer"`
	Obscured string `json:"obscured"`
}

func (r *fuzzReply) check() error {
	return nonEmpty("question", r.Question, "answer", r.Answer)
}

type qualityReply struct {
	WellFormed    bool   `json:"well_formed"`
	Single        bool   `json:"single"`
	Answerable    bool   `json:"answerable"`
	AnswerCorrect bool   `json:"answer_correct"`
	Reason        string `json:"reason"`
}

func (r *qualityReply) check() error { return nil }

type uniqueReply struct {
	AlsoCorrect bool   `json:"also_correct"`
	Reason      string `json:"reason"`
}

func (r *uniqueReply) check() error { return nil }

// reply is what every schema type implements: check validates the values
// after decoding (and may normalise them).
type reply interface{ check() error }

// optionalKeys may be missing from a reply; every other field is required.
var optionalKeys = map[string]bool{"reason": true, "entity": true, "bridge": true, "obscured": true}

// maxReplyBytes bounds what is parsed of one reply; a model that rambles
// for megabytes is not going to produce a usable object at the end.
const maxReplyBytes = 256 << 10

// parseReply finds the JSON object in a model reply and decodes it into dst
// strictly: required keys present, no unknown keys, right types, and dst's
// own check.
func parseReply(raw string, dst reply) error {
	if len(raw) > maxReplyBytes {
		return fmt.Errorf("reply of %d bytes is too long", len(raw))
	}
	body := raw
	if i := strings.LastIndex(body, "</think>"); i >= 0 {
		body = body[i+len("</think>"):]
	}
	start := strings.IndexByte(body, '{')
	if start < 0 {
		return errors.New("no JSON object in the reply")
	}
	dec := json.NewDecoder(strings.NewReader(body[start:]))
	var obj json.RawMessage
	if err := dec.Decode(&obj); err != nil {
		return fmt.Errorf("JSON object: %w", err)
	}
	var keys map[string]json.RawMessage
	if err := json.Unmarshal(obj, &keys); err != nil {
		return fmt.Errorf("JSON object: %w", err)
	}
	for _, k := range fieldNames(dst) {
		if _, ok := keys[k]; !ok && !optionalKeys[k] {
			return fmt.Errorf("missing key %q", k)
		}
	}
	strict := json.NewDecoder(bytes.NewReader(obj))
	strict.DisallowUnknownFields()
	if err := strict.Decode(dst); err != nil {
		return fmt.Errorf("reply schema: %w", err)
	}
	return dst.check()
}

// fieldNames lists the JSON keys of a reply type.
func fieldNames(r reply) []string {
	switch r.(type) {
	case *baseQAReply:
		return []string{"question", "answer", "statement"}
	case *actionReply:
		return []string{"action", "entity", "reason"}
	case *injectReply:
		return []string{"fact", "bridge", "question", "answer"}
	case *coveredReply:
		return []string{"covered"}
	case *fuzzReply:
		return []string{"question", "answer", "obscured"}
	case *qualityReply:
		return []string{"well_formed", "single", "answerable", "answer_correct", "reason"}
	case *uniqueReply:
		return []string{"also_correct", "reason"}
	}
	return nil
}

// nonEmpty takes name, value pairs and fails on the first blank value.
func nonEmpty(pairs ...string) error {
	for i := 0; i+1 < len(pairs); i += 2 {
		if strings.TrimSpace(pairs[i+1]) == "" {
			return fmt.Errorf("%q is empty", pairs[i])
		}
	}
	return nil
}

// clip shortens s to at most n bytes (on a rune boundary) for records and
// messages.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n
	for cut > 0 && !utf8RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

func utf8RuneStart(b byte) bool { return b&0xC0 != 0x80 }
