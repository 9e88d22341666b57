package tools

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"

	readability "codeberg.org/readeck/go-readability/v2"
	"github.com/JohannesKaufmann/html-to-markdown/v2/converter"
	"github.com/JohannesKaufmann/html-to-markdown/v2/plugin/base"
	"github.com/JohannesKaufmann/html-to-markdown/v2/plugin/commonmark"
	"github.com/JohannesKaufmann/html-to-markdown/v2/plugin/table"
	"golang.org/x/net/html"
	"golang.org/x/net/html/charset"
)

// FetchConfig configures the direct fetcher.
type FetchConfig struct {
	// Policy decides which addresses may be reached (see AddrPolicy).
	Policy AddrPolicy
	// Resolver defaults to net.DefaultResolver.
	Resolver Resolver
	// Timeout bounds one attempt, redirects included [30s].
	Timeout time.Duration
	// MaxBytes caps the body read [5 MiB]; a longer body is cut there and
	// what was read is extracted.
	MaxBytes int64
	// MaxRedirects bounds redirect hops [5].
	MaxRedirects int
	// PerHost caps concurrent requests to one host [4].
	PerHost int
	Retry   Retry
	// UserAgent defaults to an asearcher product token.
	UserAgent string
	Logger    *slog.Logger
}

// Fetcher reads web pages directly: GET with an SSRF guard, then
// readability extraction of the main content, rendered as markdown.
//
// Content types: HTML and XHTML are extracted; text/plain, markdown, CSV,
// JSON and XML are returned as text (decoded from their charset); PDF and
// everything else is an explicit error (the Jina backend reads PDFs).
type Fetcher struct {
	cfg    FetchConfig
	d      *doer
	conv   *converter.Converter
	logger *slog.Logger
}

// redirectError stops a redirect chain.
type redirectError struct{ msg string }

func (e *redirectError) Error() string { return e.msg }

// NewFetcher returns a direct fetcher.
func NewFetcher(cfg FetchConfig) *Fetcher {
	if cfg.Timeout <= 0 {
		cfg.Timeout = 30 * time.Second
	}
	if cfg.MaxBytes <= 0 {
		cfg.MaxBytes = 5 << 20
	}
	if cfg.MaxRedirects <= 0 {
		cfg.MaxRedirects = 5
	}
	if cfg.PerHost <= 0 {
		cfg.PerHost = 4
	}
	if cfg.UserAgent == "" {
		cfg.UserAgent = "Mozilla/5.0 (compatible; asearcher/1.0; research agent)"
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.Default()
	}
	dialer := newGuardedDialer(cfg.Policy, cfg.Resolver, 10*time.Second)
	transport := &http.Transport{
		Proxy:                 nil, // a proxy would dial for us, past the guard
		DialContext:           dialer.DialContext,
		ForceAttemptHTTP2:     true,
		TLSHandshakeTimeout:   10 * time.Second,
		ResponseHeaderTimeout: cfg.Timeout,
		MaxIdleConnsPerHost:   cfg.PerHost,
		IdleConnTimeout:       60 * time.Second,
	}
	maxRedirects := cfg.MaxRedirects
	client := &http.Client{
		Transport: transport,
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) > maxRedirects {
				return &redirectError{fmt.Sprintf("stopped after %d redirects", maxRedirects)}
			}
			if req.URL.Scheme != "http" && req.URL.Scheme != "https" {
				return &redirectError{"redirect to a non-http URL (" + req.URL.Scheme + ":)"}
			}
			return nil
		},
	}
	conv := converter.NewConverter(converter.WithPlugins(
		base.NewBasePlugin(),
		commonmark.NewCommonmarkPlugin(),
		table.NewTablePlugin(),
	))
	return &Fetcher{
		cfg:    cfg,
		d:      &doer{op: "fetch", client: client, retry: cfg.Retry, timeout: cfg.Timeout, limiter: newHostLimiter(cfg.PerHost), maxBytes: cfg.MaxBytes},
		conv:   conv,
		logger: logger,
	}
}

// String names the backend for logs and cache keys.
func (f *Fetcher) String() string { return "fetch" }

// Access implements Browser.
func (f *Fetcher) Access(ctx context.Context, pageURL string) (*Page, error) {
	u, err := url.Parse(strings.TrimSpace(pageURL))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, &Error{Op: "fetch", Msg: "not an http(s) URL: " + truncateRunes(pageURL, 200)}
	}
	u.Fragment = ""
	rep, err := f.d.send(ctx, u.Hostname(), func(ctx context.Context) (*http.Request, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
		if err != nil {
			return nil, err
		}
		req.Header.Set("User-Agent", f.cfg.UserAgent)
		req.Header.Set("Accept", "text/html,application/xhtml+xml,text/plain;q=0.9,text/markdown;q=0.9,*/*;q=0.5")
		req.Header.Set("Accept-Language", "en;q=1.0,*;q=0.5")
		return req, nil
	})
	if err != nil {
		return nil, err
	}
	if rep.status != http.StatusOK {
		return nil, statusError("fetch", "", rep.status, "")
	}
	if rep.truncated {
		f.logger.Debug("page cut at the size cap", "url", u.Redacted(), "bytes", len(rep.body))
	}
	final, _ := url.Parse(rep.url)
	if final == nil {
		final = u
	}
	page, err := f.extract(final, rep.header.Get("Content-Type"), rep.body)
	if err != nil {
		return nil, err
	}
	page.URL = pageURL
	if strings.TrimSpace(page.Content) == "" {
		return nil, &Error{Op: "fetch", Msg: "the page has no readable text"}
	}
	return page, nil
}

// kind of body, from the declared type or, without one, from sniffing.
func bodyKind(contentType string, body []byte) (kind, mediaType string, params map[string]string) {
	mediaType, params, err := mime.ParseMediaType(contentType)
	if err != nil || mediaType == "" || mediaType == "application/octet-stream" {
		sniffed := http.DetectContentType(body)
		mediaType, params, _ = mime.ParseMediaType(sniffed)
		if contentType != "" && mediaType == "application/octet-stream" {
			mediaType, _, _ = mime.ParseMediaType(contentType)
		}
	}
	switch {
	case mediaType == "text/html" || mediaType == "application/xhtml+xml":
		return "html", mediaType, params
	case mediaType == "application/pdf":
		return "pdf", mediaType, params
	case strings.HasPrefix(mediaType, "text/"), mediaType == "application/json", mediaType == "application/xml",
		strings.HasSuffix(mediaType, "+json"), strings.HasSuffix(mediaType, "+xml"):
		return "text", mediaType, params
	}
	return "other", mediaType, params
}

// extract turns a body into a Page according to its content type.
func (f *Fetcher) extract(pageURL *url.URL, contentType string, body []byte) (*Page, error) {
	kind, mediaType, _ := bodyKind(contentType, body)
	switch kind {
	case "html":
		return f.extractHTML(pageURL, contentType, body)
	case "text":
		text, err := decodeText(body, contentType)
		if err != nil {
			return nil, &Error{Op: "fetch", Msg: "cannot decode the page text: " + err.Error()}
		}
		return &Page{Content: strings.TrimSpace(text)}, nil
	case "pdf":
		return nil, &Error{Op: "fetch", Msg: "the page is a PDF, which the direct fetcher does not read (the jina browser does)"}
	default:
		return nil, &Error{Op: "fetch", Msg: "unsupported content type " + mediaType}
	}
}

// decodeText converts body to UTF-8 using the declared or detected
// charset; invalid bytes become U+FFFD.
func decodeText(body []byte, contentType string) (string, error) {
	r, err := charset.NewReader(bytes.NewReader(body), contentType)
	if err != nil {
		return "", err
	}
	out, err := io.ReadAll(r)
	if err != nil {
		return "", err
	}
	return strings.ToValidUTF8(string(out), "\uFFFD"), nil
}

// minArticleChars is how much text readability must find for its article
// to be preferred over the whole page.
const minArticleChars = 200

func (f *Fetcher) extractHTML(pageURL *url.URL, contentType string, body []byte) (*Page, error) {
	text, err := decodeText(body, contentType)
	if err != nil {
		return nil, &Error{Op: "fetch", Msg: "cannot decode the page: " + err.Error()}
	}
	doc, err := html.Parse(strings.NewReader(text))
	if err != nil {
		return nil, &Error{Op: "fetch", Msg: "cannot parse the page HTML: " + err.Error()}
	}
	title := documentTitle(doc)
	domain := pageURL.Scheme + "://" + pageURL.Host
	article, aerr := readability.FromDocument(doc, pageURL)
	if aerr == nil && article.Node != nil {
		var buf bytes.Buffer
		if article.RenderText(&buf) == nil && utf8.RuneCount(bytes.TrimSpace(buf.Bytes())) >= minArticleChars {
			md, err := f.conv.ConvertNode(article.Node, converter.WithDomain(domain))
			if err == nil && len(bytes.TrimSpace(md)) > 0 {
				if t := strings.TrimSpace(article.Title()); t != "" {
					title = t
				}
				return &Page{Title: title, Content: strings.TrimSpace(string(md))}, nil
			}
		}
	}
	// No article found (a short page, a list, a table): the whole body.
	body2 := findBody(doc)
	if body2 == nil {
		body2 = doc
	}
	md, err := f.conv.ConvertNode(body2, converter.WithDomain(domain))
	if err != nil {
		return nil, &Error{Op: "fetch", Msg: "cannot convert the page to markdown: " + err.Error()}
	}
	return &Page{Title: title, Content: strings.TrimSpace(string(md))}, nil
}

func documentTitle(n *html.Node) string {
	if n.Type == html.ElementNode && n.Data == "title" {
		var b strings.Builder
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			if c.Type == html.TextNode {
				b.WriteString(c.Data)
			}
		}
		return strings.Join(strings.Fields(b.String()), " ")
	}
	if n.Type == html.ElementNode && n.Data == "body" {
		return ""
	}
	for c := n.FirstChild; c != nil; c = c.NextSibling {
		if t := documentTitle(c); t != "" {
			return t
		}
	}
	return ""
}

func findBody(n *html.Node) *html.Node {
	if n.Type == html.ElementNode && n.Data == "body" {
		return n
	}
	for c := n.FirstChild; c != nil; c = c.NextSibling {
		if b := findBody(c); b != nil {
			return b
		}
	}
	return nil
}

// ExtractHTML runs the fetcher's HTML → markdown extraction on a document
// that is already in hand (for tests, fuzzing and offline pages).
func (f *Fetcher) ExtractHTML(pageURL, contentType string, body []byte) (*Page, error) {
	u, err := url.Parse(pageURL)
	if err != nil || u.Host == "" {
		return nil, errors.New("ExtractHTML: need an absolute page URL")
	}
	return f.extract(u, contentType, body)
}
