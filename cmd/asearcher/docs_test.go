package main

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

// TestDocsCommandLines: every asearcher command line in README.md and
// docs/*.md (code blocks and inline code spans) names a command that exists and only flags that
// command has, so the docs cannot drift from the CLI.
func TestDocsCommandLines(t *testing.T) {
	files, err := filepath.Glob("../../docs/*.md")
	if err != nil {
		t.Fatal(err)
	}
	files = append(files, "../../README.md")
	checked := 0
	for _, path := range files {
		lines, err := docCommandLines(path)
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range lines {
			checked++
			if err := checkCommandLine(newRootCmd(), l.args); err != nil {
				t.Errorf("%s:%d: %s\n\t%s", filepath.Base(path), l.line, err, l.text)
			}
		}
	}
	t.Logf("%d command lines checked", checked)
	if checked < 20 {
		t.Fatalf("found only %d command lines; the extractor is broken", checked)
	}
}

// TestCheckCommandLine: the checker itself catches what it is for.
func TestCheckCommandLine(t *testing.T) {
	for _, tc := range []struct {
		line string
		ok   bool
	}{
		{"asearcher eval --data nq --model http://h/v1 --k 4 --out r", true},
		{"asearcher eval --data=nq --no-progress", true},
		{"asearcher index build --corpus builtin:hotpotqa --out idx", true},
		{"asearcher eval --no-such-flag 3", false},
		{"asearcher evaluate --data nq", false},
		{"asearcher serve search --index idx --addr 127.0.0.1:5005 &", true},
		{"asearcher train --log-level debug", true},
	} {
		args, ok := commandArgs(tc.line)
		if !ok {
			t.Fatalf("%q not recognised as a command line", tc.line)
		}
		err := checkCommandLine(newRootCmd(), args)
		if (err == nil) != tc.ok {
			t.Errorf("%q: err %v, want ok=%v", tc.line, err, tc.ok)
		}
	}
}

// inlineCommand is an inline code span that starts with the program.
var inlineCommand = regexp.MustCompile("`((?:\\./|go run \\./cmd/)?asearcher [^`]+)`")

type docLine struct {
	line int
	text string
	args []string
}

// docCommandLines extracts the asearcher invocations of the fenced code
// blocks of a Markdown file, joining backslash continuations.
func docCommandLines(path string) ([]docLine, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []docLine
	sc := bufio.NewScanner(f)
	inCode, n := false, 0
	var pending strings.Builder
	start := 0
	for sc.Scan() {
		n++
		line := sc.Text()
		if strings.HasPrefix(strings.TrimSpace(line), "```") {
			inCode = !inCode
			pending.Reset()
			continue
		}
		if !inCode {
			// Inline code spans that run a command count too.
			for _, m := range inlineCommand.FindAllStringSubmatch(line, -1) {
				if args, ok := commandArgs(m[1]); ok {
					out = append(out, docLine{line: n, text: m[1], args: args})
				}
			}
			continue
		}
		if pending.Len() == 0 {
			start = n
		}
		trimmed := strings.TrimSpace(line)
		if cont, ok := strings.CutSuffix(trimmed, "\\"); ok {
			pending.WriteString(cont)
			pending.WriteByte(' ')
			continue
		}
		pending.WriteString(trimmed)
		full := pending.String()
		pending.Reset()
		if args, ok := commandArgs(full); ok {
			out = append(out, docLine{line: start, text: full, args: args})
		}
	}
	return out, sc.Err()
}

// commandArgs returns the arguments after the program name when line runs
// asearcher (asearcher, ./asearcher, a path ending in /asearcher, or go
// run ./cmd/asearcher), cut at the first shell operator or comment.
func commandArgs(line string) ([]string, bool) {
	line = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(line), "$ "))
	words := shellWords(line)
	// Skip leading environment assignments (FOO=bar asearcher ...).
	for len(words) > 0 && strings.Contains(words[0], "=") && !strings.HasPrefix(words[0], "-") {
		words = words[1:]
	}
	switch {
	case len(words) >= 3 && words[0] == "go" && words[1] == "run" && words[2] == "./cmd/asearcher":
		words = words[3:]
	case len(words) >= 1 && (words[0] == "asearcher" || strings.HasSuffix(words[0], "/asearcher")):
		words = words[1:]
	default:
		return nil, false
	}
	var args []string
	for _, w := range words {
		if w == "&" || w == "&&" || w == "|" || w == "||" || w == ";" || strings.HasPrefix(w, "#") ||
			strings.HasPrefix(w, ">") || strings.HasPrefix(w, "2>") || strings.HasPrefix(w, "<") {
			break
		}
		args = append(args, w)
	}
	return args, true
}

// shellWords splits a line into words, honouring single and double quotes.
func shellWords(line string) []string {
	var words []string
	var cur strings.Builder
	inWord := false
	var quote rune
	for _, r := range line {
		switch {
		case quote != 0:
			if r == quote {
				quote = 0
			} else {
				cur.WriteRune(r)
			}
		case r == '\'' || r == '"':
			quote, inWord = r, true
		case r == ' ' || r == '\t':
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
		default:
			cur.WriteRune(r)
			inWord = true
		}
	}
	if inWord {
		words = append(words, cur.String())
	}
	return words
}

// checkCommandLine resolves args to a command of root and checks every
// flag against that command's flags (its own and inherited).
func checkCommandLine(root *cobra.Command, args []string) error {
	cmd, rest, err := root.Find(args)
	if err != nil {
		return err
	}
	if cmd == root && len(rest) > 0 && !strings.HasPrefix(rest[0], "-") {
		return fmt.Errorf("unknown command %q", rest[0])
	}
	fs := cmd.Flags()
	fs.AddFlagSet(cmd.InheritedFlags())
	for _, a := range rest {
		if a == "--" {
			break
		}
		if !strings.HasPrefix(a, "-") || a == "-" {
			continue
		}
		name, _, _ := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if strings.HasPrefix(a, "--") {
			if fs.Lookup(name) == nil && name != "help" {
				return fmt.Errorf("%s has no flag --%s", cmd.CommandPath(), name)
			}
			continue
		}
		if len(name) == 1 && fs.ShorthandLookup(name) == nil && name != "h" {
			return fmt.Errorf("%s has no flag -%s", cmd.CommandPath(), name)
		}
	}
	return nil
}
