package agent

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/asearcher/asearcher/tools"
)

// Observation styles: how tool output is shown to the model.
const (
	// StyleASearcher: "<information>\n[Doc k](url):\n<doc>\n\n...\n</information>",
	// page parts as "<information>\n>>>> Page k >>>>\n\n<part>\n</information>".
	StyleASearcher = "asearcher"
	// StyleSearchR1: "\n\n<information>1. <doc>\n\n2. <doc></information>\n\n".
	StyleSearchR1 = "search-r1"
	// StyleCompact: "\n<information><doc>\n<doc></information>\n", for
	// small models with short contexts.
	StyleCompact = "compact"
)

var (
	errEmptyQuery = errors.New("the search query is empty; write the query between <search> and </search>")
	errEmptyURL   = errors.New("the url is empty; write a url from the search results between <access> and </access>")
	errNoSearch   = errors.New("no search engine is configured")
	errNoBrowser  = errors.New("no page reader is configured")
	errEmptyPage  = errors.New("the page has no readable text")
)

// docBody is the text of one hit: the title on its own line, unless the
// text already starts with that line (wiki passages are "Title"\ntext),
// then the passage or snippet.
func docBody(r tools.SearchResult) string {
	title := strings.TrimSpace(r.Title)
	text := strings.TrimSpace(r.Text)
	first, _, _ := strings.Cut(text, "\n")
	if title == "" || strings.Trim(strings.TrimSpace(first), `"`) == strings.Trim(title, `"`) {
		return text
	}
	return title + "\n" + text
}

// capRunes keeps the first n characters (code points) of s.
func capRunes(s string, n int) string {
	if n <= 0 || len(s) <= n {
		return s
	}
	i := 0
	for k := 0; k < n && i < len(s); k++ {
		_, size := utf8.DecodeRuneInString(s[i:])
		i += size
	}
	return s[:i]
}

// splitRunes cuts s into parts of at most n characters, at most max parts.
func splitRunes(s string, n, max int) []string {
	var parts []string
	for s != "" && len(parts) < max {
		p := capRunes(s, n)
		parts = append(parts, p)
		s = s[len(p):]
	}
	return parts
}

// SearchObservation renders search hits, or the search's failure, as the
// model sees them in an observation style (StyleASearcher, StyleSearchR1,
// StyleCompact), each hit cut to docChars characters. Custom agents use it
// to show results the way the built-in agents do.
func SearchObservation(style string, docs []tools.SearchResult, docChars int, err error) string {
	return searchObservation(style, docs, docChars, err)
}

// searchObservation renders search hits (or the failure) in a style.
func searchObservation(style string, docs []tools.SearchResult, docChars int, err error) string {
	var b strings.Builder
	switch style {
	case StyleSearchR1:
		b.WriteString("\n\n<information>")
	case StyleCompact:
		b.WriteString("\n<information>")
	default:
		b.WriteString("\n\n<information>\n")
	}
	switch {
	case err != nil:
		b.WriteString("Search failed: " + oneLine(err.Error()) + ". Try again or change the query.")
	case len(docs) == 0:
		b.WriteString("No results were found for this query.")
	default:
		for k, d := range docs {
			body := capRunes(docBody(d), docChars)
			switch style {
			case StyleSearchR1:
				if k > 0 {
					b.WriteString("\n\n")
				}
				b.WriteString(strconv.Itoa(k+1) + ". " + body)
			case StyleCompact:
				if k > 0 {
					b.WriteString("\n")
				}
				b.WriteString(body)
			default:
				if k > 0 {
					b.WriteString("\n\n")
				}
				b.WriteString("[Doc " + strconv.Itoa(k+1) + "](" + d.URL + "):\n" + body)
			}
		}
	}
	switch style {
	case StyleSearchR1:
		b.WriteString("</information>\n\n")
	case StyleCompact:
		b.WriteString("</information>\n")
	default:
		b.WriteString("\n</information>")
	}
	return b.String()
}

// pageObservation shows part k (1-based) of a page; stub > 0 shows only
// its first stub characters (what stays in context after the part was
// read).
func pageObservation(style string, k int, part string, stub int) string {
	if stub > 0 && utf8.RuneCountInString(part) > stub {
		part = capRunes(part, stub) + " ..."
	}
	switch style {
	case StyleSearchR1:
		return "\n\n<information>" + part + "</information>\n\n"
	case StyleCompact:
		return "\n<information>" + part + "</information>\n"
	default:
		return "\n\n<information>\n>>>> Page " + strconv.Itoa(k) + " >>>>\n\n" + part + "\n</information>"
	}
}

// failureObservation tells the model a tool failed.
func failureObservation(style, what string, err error) string {
	msg := what + ": " + oneLine(err.Error()) + "."
	switch style {
	case StyleSearchR1:
		return "\n\n<information>" + msg + "</information>\n\n"
	case StyleCompact:
		return "\n<information>" + msg + "</information>\n"
	default:
		return "\n\n<information>\n" + msg + "\n</information>"
	}
}

// oneLine keeps an error message short and on one line.
func oneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	return capRunes(s, 300)
}

// capDocs keeps the hits as shown: at most docChars of each.
func capDocs(docs []tools.SearchResult, docChars int) []tools.SearchResult {
	out := make([]tools.SearchResult, len(docs))
	for i, d := range docs {
		d.Text = capRunes(d.Text, docChars)
		out[i] = d
	}
	return out
}

// searchTool runs the search tool of env for the session: an empty query
// or a missing search engine is an error the model will read.
func searchTool(ctx context.Context, s *Session, query string, topk int) ([]tools.SearchResult, int, error) {
	env := s.env
	docs, idx, err := RunTool(ctx, s, KindSearch, query, func(ctx context.Context) ([]tools.SearchResult, error) {
		switch {
		case query == "":
			return nil, errEmptyQuery
		case env.Search == nil:
			return nil, errNoSearch
		}
		return env.Search.Search(ctx, query, topk)
	})
	if len(docs) > topk {
		docs = docs[:topk]
	}
	return docs, idx, err
}

// accessTool reads a page with the browser of env; an empty url, a missing
// browser and a page without text are errors the model will read.
func accessTool(ctx context.Context, s *Session, url string) (*tools.Page, int, error) {
	env := s.env
	return RunTool(ctx, s, KindAccess, url, func(ctx context.Context) (*tools.Page, error) {
		switch {
		case url == "":
			return nil, errEmptyURL
		case env.Browse == nil:
			return nil, errNoBrowser
		}
		p, err := env.Browse.Access(ctx, url)
		if err == nil && (p == nil || strings.TrimSpace(p.Content) == "") {
			err = errEmptyPage
		}
		return p, err
	})
}
