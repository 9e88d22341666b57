// Package calculator is a worked example of a custom agent (see
// docs/custom-agent.md): the ASearcher protocol plus a <calculate> tool, a
// prompt of its own, and a numeric reward. It is built only from the agent
// package's public API, so ask, eval, synth and train run it as they run
// the built-in agents.
package calculator

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// MaxExprLen bounds an expression; the model writes it, so it is untrusted.
const MaxExprLen = 512

// Eval computes an arithmetic expression: numbers (with decimals and
// exponents), + - * / ^ (power, right-associative), unary minus, and
// parentheses. Commas inside numbers ("1,234") are ignored.
func Eval(expr string) (float64, error) {
	if len(expr) > MaxExprLen {
		return 0, fmt.Errorf("expression longer than %d characters", MaxExprLen)
	}
	p := &exprParser{s: strings.ReplaceAll(expr, ",", "")}
	v, err := p.sum(0)
	if err != nil {
		return 0, err
	}
	p.space()
	if p.i < len(p.s) {
		return 0, fmt.Errorf("unexpected %q at position %d", p.s[p.i:p.i+1], p.i)
	}
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return 0, errors.New("the result is not a finite number")
	}
	return v, nil
}

// Format writes a result without float noise: integers as integers,
// others with up to 10 significant digits.
func Format(v float64) string {
	if v == math.Trunc(v) && math.Abs(v) < 1e15 {
		return strconv.FormatFloat(v, 'f', 0, 64)
	}
	return strconv.FormatFloat(v, 'g', 10, 64)
}

type exprParser struct {
	s string
	i int
}

// maxDepth bounds nesting so "((((...": cannot exhaust the stack.
const maxDepth = 64

func (p *exprParser) space() {
	for p.i < len(p.s) && (p.s[p.i] == ' ' || p.s[p.i] == '\t' || p.s[p.i] == '\n') {
		p.i++
	}
}

func (p *exprParser) peek() byte {
	p.space()
	if p.i < len(p.s) {
		return p.s[p.i]
	}
	return 0
}

// sum := product (('+'|'-') product)*
func (p *exprParser) sum(depth int) (float64, error) {
	v, err := p.product(depth)
	for err == nil {
		op := p.peek()
		if op != '+' && op != '-' {
			break
		}
		p.i++
		var w float64
		if w, err = p.product(depth); err == nil {
			if op == '+' {
				v += w
			} else {
				v -= w
			}
		}
	}
	return v, err
}

// product := unary (('*'|'/') unary)*
func (p *exprParser) product(depth int) (float64, error) {
	v, err := p.unary(depth)
	for err == nil {
		op := p.peek()
		if op != '*' && op != '/' {
			break
		}
		p.i++
		var w float64
		if w, err = p.unary(depth); err == nil {
			if op == '*' {
				v *= w
			} else if w == 0 {
				err = errors.New("division by zero")
			} else {
				v /= w
			}
		}
	}
	return v, err
}

// unary := ('-'|'+') unary | power; so -2^2 is -(2^2).
func (p *exprParser) unary(depth int) (float64, error) {
	if depth >= maxDepth {
		return 0, errors.New("expression nested too deeply")
	}
	switch p.peek() {
	case '-':
		p.i++
		v, err := p.unary(depth + 1)
		return -v, err
	case '+':
		p.i++
		return p.unary(depth + 1)
	}
	return p.power(depth)
}

// power := atom ('^' unary)?, right-associative: 2^3^2 is 2^9.
func (p *exprParser) power(depth int) (float64, error) {
	v, err := p.atom(depth)
	if err != nil || p.peek() != '^' {
		return v, err
	}
	p.i++
	w, err := p.unary(depth + 1)
	return math.Pow(v, w), err
}

// atom := number | '(' sum ')'
func (p *exprParser) atom(depth int) (float64, error) {
	c := p.peek()
	if c == '(' {
		p.i++
		v, err := p.sum(depth + 1)
		if err != nil {
			return 0, err
		}
		if p.peek() != ')' {
			return 0, fmt.Errorf("missing ) at position %d", p.i)
		}
		p.i++
		return v, nil
	}
	start := p.i
	for p.i < len(p.s) {
		ch := p.s[p.i]
		exp := (ch == 'e' || ch == 'E') && p.i > start
		sign := (ch == '+' || ch == '-') && p.i > start && (p.s[p.i-1] == 'e' || p.s[p.i-1] == 'E')
		if ch >= '0' && ch <= '9' || ch == '.' || exp || sign {
			p.i++
			continue
		}
		break
	}
	if start == p.i {
		if p.i >= len(p.s) {
			return 0, errors.New("expression ends early")
		}
		return 0, fmt.Errorf("unexpected %q at position %d", p.s[p.i:p.i+1], p.i)
	}
	v, err := strconv.ParseFloat(p.s[start:p.i], 64)
	if err != nil {
		return 0, fmt.Errorf("bad number %q", p.s[start:p.i])
	}
	return v, nil
}
