package eval

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io"
	"os"
	"path/filepath"

	"github.com/asearcher/asearcher/agent"
)

//go:embed report.html.tmpl
var reportTemplate string

// Caps on what the HTML report embeds, so it stays small enough to open.
const (
	htmlMaxTrajectories = 300
	htmlMaxText         = 4000
)

// htmlTurn is one step of a trajectory in the browser.
type htmlStep struct {
	Kind string `json:"kind"` // act, read, answer, search, access, tool
	Turn int    `json:"turn"`
	Head string `json:"head"`
	Text string `json:"text"`
	Err  string `json:"err,omitempty"`
}

type htmlTrajectory struct {
	Dataset    string     `json:"dataset"`
	ID         string     `json:"id"`
	Sample     int        `json:"sample"`
	Question   string     `json:"question"`
	Golds      []string   `json:"golds"`
	Prediction string     `json:"prediction"`
	Score      float64    `json:"score"`
	End        string     `json:"end"`
	Steps      []htmlStep `json:"steps"`
}

func clip(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n]) + fmt.Sprintf(" … [%d more characters]", len(r)-n)
}

// loadHTMLTrajectories reads up to htmlMaxTrajectories trajectories that
// have a result, turned into browser steps in time order.
func loadHTMLTrajectories(dir string, recs []Record) ([]htmlTrajectory, error) {
	byKey := make(map[key]*Record, len(recs))
	for i := range recs {
		byKey[recs[i].key()] = &recs[i]
	}
	r, err := agent.Open(filepath.Join(dir, TrajectoriesFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer r.Close()
	var out []htmlTrajectory
	seen := map[key]bool{}
	for len(out) < htmlMaxTrajectories {
		t, err := r.Next()
		if err == io.EOF || err != nil {
			break // a torn tail ends the list; the results hold the truth
		}
		k := trajectoryKey(t)
		rec := byKey[k]
		if rec == nil || seen[k] {
			continue
		}
		seen[k] = true
		out = append(out, toHTMLTrajectory(t, rec))
	}
	return out, nil
}

func toHTMLTrajectory(t *agent.Trajectory, rec *Record) htmlTrajectory {
	h := htmlTrajectory{Dataset: rec.Dataset, ID: rec.ID, Sample: rec.Sample, Question: t.Question,
		Golds: rec.Golds, Prediction: rec.Prediction, Score: primaryScore(rec), End: rec.End}
	ci, ti := 0, 0
	// Calls and tools interleave by start time.
	for ci < len(t.Calls) || ti < len(t.Tools) {
		if ti >= len(t.Tools) || (ci < len(t.Calls) && t.Calls[ci].Start <= t.Tools[ti].Start) {
			c := &t.Calls[ci]
			head := fmt.Sprintf("model · %s · %d tokens · %.2fs", c.Purpose, len(c.Output), c.Latency.Seconds())
			h.Steps = append(h.Steps, htmlStep{Kind: c.Purpose, Turn: c.Turn, Head: head, Text: clip(c.Text, htmlMaxText)})
			ci++
			continue
		}
		tc := &t.Tools[ti]
		head := fmt.Sprintf("%s · %s · %.2fs", tc.Name, clip(tc.Arg, 200), tc.Latency.Seconds())
		h.Steps = append(h.Steps, htmlStep{Kind: tc.Name, Turn: tc.Turn, Head: head, Text: clip(tc.Observation, htmlMaxText), Err: tc.Error})
		ti++
	}
	return h
}

// renderHTML makes the self-contained report: data inlined as JSON, the
// tables, charts and trajectory browser drawn by inline script, no
// network access.
func renderHTML(dir string, rep *Report, recs []Record) ([]byte, error) {
	trajs, err := loadHTMLTrajectories(dir, recs)
	if err != nil {
		return nil, fmt.Errorf("report.html: %w", err)
	}
	if trajs == nil {
		trajs = []htmlTrajectory{}
	}
	data, err := json.Marshal(map[string]any{"report": rep, "trajectories": trajs})
	if err != nil {
		return nil, err
	}
	tmpl, err := template.New("report").Parse(reportTemplate)
	if err != nil {
		return nil, fmt.Errorf("report template: %w", err)
	}
	var buf bytes.Buffer
	// template.JS keeps the JSON as is; </script> cannot appear in it
	// because json.Marshal escapes < and >.
	if err := tmpl.Execute(&buf, map[string]any{"Data": template.JS(data), "Run": rep.Run}); err != nil {
		return nil, fmt.Errorf("report template: %w", err)
	}
	return buf.Bytes(), nil
}
