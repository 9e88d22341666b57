package retrieval

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"strings"
	"time"
)

// EmbeddingsClient calls an OpenAI-compatible /v1/embeddings endpoint (TEI,
// vLLM, SGLang, OpenAI).
type EmbeddingsClient struct {
	// Endpoint is the server's base url, with or without /v1.
	Endpoint string
	Model    string
	// APIKey is sent as a Bearer token when set.
	APIKey string
	// MaxAttempts bounds tries per request on network errors, 429 and 5xx
	// (default 6, backoff 0.5 s doubling to 8 s, with jitter).
	MaxAttempts int
	HTTP        *http.Client
}

func (c *EmbeddingsClient) url() string {
	base := strings.TrimRight(c.Endpoint, "/")
	if strings.HasSuffix(base, "/v1") {
		return base + "/embeddings"
	}
	return base + "/v1/embeddings"
}

type embeddingsRequest struct {
	Model          string   `json:"model"`
	Input          []string `json:"input"`
	EncodingFormat string   `json:"encoding_format"`
}

type embeddingsResponse struct {
	Data []struct {
		Index     *int      `json:"index"`
		Embedding []float32 `json:"embedding"`
	} `json:"data"`
}

// permanentError marks failures a retry cannot fix.
type permanentError struct{ err error }

func (e permanentError) Error() string { return e.err.Error() }
func (e permanentError) Unwrap() error { return e.err }

// Embed returns one vector per text, in order.
func (c *EmbeddingsClient) Embed(ctx context.Context, texts []string) ([][]float32, error) {
	body, err := json.Marshal(embeddingsRequest{Model: c.Model, Input: texts, EncodingFormat: "float"})
	if err != nil {
		return nil, err
	}
	attempts := c.MaxAttempts
	if attempts <= 0 {
		attempts = 6
	}
	delay := 500 * time.Millisecond
	var lastErr error
	for attempt := 1; attempt <= attempts; attempt++ {
		vecs, err := c.once(ctx, body, len(texts))
		if err == nil {
			return vecs, nil
		}
		lastErr = err
		var perm permanentError
		if errors.As(err, &perm) || ctx.Err() != nil {
			break
		}
		if attempt == attempts {
			break
		}
		sleep := delay/2 + time.Duration(rand.Int64N(int64(delay)))
		select {
		case <-time.After(sleep):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		delay = min(2*delay, 8*time.Second)
	}
	return nil, fmt.Errorf("embeddings %s: %w", c.url(), lastErr)
}

func (c *EmbeddingsClient) once(ctx context.Context, body []byte, n int) ([][]float32, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.url(), bytes.NewReader(body))
	if err != nil {
		return nil, permanentError{err}
	}
	req.Header.Set("Content-Type", "application/json")
	if c.APIKey != "" {
		req.Header.Set("Authorization", "Bearer "+c.APIKey)
	}
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 1<<30))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		msg := strings.TrimSpace(string(data))
		if len(msg) > 300 {
			msg = msg[:300] + "…"
		}
		err := fmt.Errorf("HTTP %d: %s", resp.StatusCode, msg)
		if resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500 {
			return nil, err
		}
		return nil, permanentError{err}
	}
	var out embeddingsResponse
	if err := json.Unmarshal(data, &out); err != nil {
		return nil, permanentError{fmt.Errorf("decode response: %w", err)}
	}
	if len(out.Data) != n {
		return nil, permanentError{fmt.Errorf("asked for %d embeddings, got %d", n, len(out.Data))}
	}
	vecs := make([][]float32, n)
	for i, d := range out.Data {
		idx := i // servers that omit "index" answer in input order
		if d.Index != nil {
			idx = *d.Index
		}
		if idx < 0 || idx >= n || vecs[idx] != nil {
			return nil, permanentError{fmt.Errorf("embedding index %d out of range or repeated", idx)}
		}
		if len(d.Embedding) == 0 {
			return nil, permanentError{errors.New("empty embedding")}
		}
		vecs[idx] = d.Embedding
	}
	dim := len(vecs[0])
	for _, v := range vecs {
		if len(v) != dim {
			return nil, permanentError{fmt.Errorf("embeddings of different sizes (%d and %d)", dim, len(v))}
		}
	}
	return vecs, nil
}

// normalize scales v to unit length (cosine similarity becomes a dot
// product); zero vectors are left alone.
func normalize(v []float32) {
	var s float64
	for _, x := range v {
		s += float64(x) * float64(x)
	}
	if s == 0 {
		return
	}
	inv := float32(1 / math.Sqrt(s))
	for i := range v {
		v[i] *= inv
	}
}
