package rl

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Drainer empties the generation pipeline before weights change. The
// controller has closed its gate before Publish is called, so nothing new is
// sent while a publisher drains. With abort, in-flight calls are aborted
// and the wait is bounded; without, it waits for every call to end.
type Drainer interface {
	Drain(ctx context.Context, abort bool) error
}

// Publisher makes the weights the trainer saved at path the sampling weights
// of version. It returns only when every sampler serves them (the controller
// bumps the version afterwards) and, whatever happens, leaves generation
// running.
type Publisher interface {
	Publish(ctx context.Context, path string, version int, d Drainer) error
}

// ConcurrentPublisher is a Publisher that can publish while new requests
// are being sent, because each request is pinned to the weights current
// when it is sent (LoRA adapters named per request): a request sent while
// the next version loads runs on the previous one and is stamped with its
// version. The controller keeps its gate open while such a publisher
// works when PublishesWhileServing is true; every other publisher (full
// weights updated in place) runs with the gate closed. A publisher that
// says true must not call the Drainer: new calls keep arriving.
type ConcurrentPublisher interface {
	Publisher
	PublishesWhileServing() bool
}

// publishesWhileServing reports whether p lets requests through during
// Publish.
func publishesWhileServing(p Publisher) bool {
	c, ok := p.(ConcurrentPublisher)
	return ok && c.PublishesWhileServing()
}

// SwapPublisher publishes to samplers that switch weights atomically while
// requests run: the embedded engine (swap between decoding steps, tokens
// stamped by the engine) or Tinker (a new sampling session per version; old
// requests finish on the old one). Nothing is drained.
type SwapPublisher struct {
	Load func(ctx context.Context, path string, version int) error
}

// Publish implements Publisher.
func (p SwapPublisher) Publish(ctx context.Context, path string, version int, _ Drainer) error {
	return p.Load(ctx, path, version)
}

// SGLangPublisher updates a fleet of SGLang servers from a checkpoint
// directory, AReaL's disk path: pause_generation on every server (in-flight
// requests return aborted with their partial output), drain the client
// (aborting stragglers by rid), update_weights_from_disk on every server, and
// continue_generation on every server. continue_generation is deferred so it
// is sent on every path out, errors and cancellation included (AReaL #1181:
// a missing continue hangs training).
type SGLangPublisher struct {
	Servers []string // base URLs, e.g. http://10.0.0.1:30000
	Client  *http.Client
	// Timeout bounds each HTTP call (default 10 min: loading big weights).
	Timeout time.Duration
	// Retries of each call after the first (default 3).
	Retries int
}

// Publish implements Publisher.
func (p *SGLangPublisher) Publish(ctx context.Context, path string, version int, d Drainer) (err error) {
	if len(p.Servers) == 0 {
		return errors.New("no SGLang servers to update")
	}
	pauseErr := p.all(ctx, "/pause_generation", map[string]any{})
	defer func() {
		// A fresh context: the run's may be cancelled, the servers must
		// still resume.
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), p.timeout())
		defer cancel()
		if cerr := p.all(cctx, "/continue_generation", map[string]any{}); cerr != nil {
			err = errors.Join(err, cerr)
		}
	}()
	if pauseErr != nil {
		return pauseErr
	}
	if err := d.Drain(ctx, true); err != nil {
		return err
	}
	return p.all(ctx, "/update_weights_from_disk", map[string]any{
		"model_path":         path,
		"abort_all_requests": true,
		"weight_version":     strconv.Itoa(version),
	})
}

func (p *SGLangPublisher) timeout() time.Duration {
	if p.Timeout > 0 {
		return p.Timeout
	}
	return 10 * time.Minute
}

// all posts body to endpoint on every server in parallel.
func (p *SGLangPublisher) all(ctx context.Context, endpoint string, body any) error {
	var wg sync.WaitGroup
	errs := make([]error, len(p.Servers))
	for i, s := range p.Servers {
		wg.Go(func() { errs[i] = p.post(ctx, s, endpoint, body) })
	}
	wg.Wait()
	return errors.Join(errs...)
}

func (p *SGLangPublisher) post(ctx context.Context, server, endpoint string, body any) error {
	raw, err := json.Marshal(body)
	if err != nil {
		return err
	}
	client := p.Client
	if client == nil {
		client = http.DefaultClient
	}
	retries := p.Retries
	if retries == 0 {
		retries = 3
	}
	url := strings.TrimRight(server, "/") + endpoint
	var last error
	for attempt := 0; attempt <= retries; attempt++ {
		if attempt > 0 {
			select {
			case <-ctx.Done():
				return errors.Join(last, ctx.Err())
			case <-time.After(time.Duration(attempt) * 200 * time.Millisecond):
			}
		}
		last = PostServerCommand(ctx, client, p.timeout(), url, raw)
		if last == nil {
			return nil
		}
	}
	return last
}

// PostServerCommand posts one admin command (update_weights_*,
// load/unload_lora_adapter and their vLLM forms) to a generation server and
// turns a non-2xx status, or a 200 whose body says {"success": false} (how
// SGLang reports some failures), into an error naming the URL.
func PostServerCommand(ctx context.Context, client *http.Client, timeout time.Duration, url string, raw []byte) error {
	if client == nil {
		client = http.DefaultClient
	}
	cctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(cctx, http.MethodPost, url, bytes.NewReader(raw))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("POST %s: %w", url, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("POST %s: HTTP %d: %s", url, resp.StatusCode, bytes.TrimSpace(body))
	}
	var status struct {
		Success      *bool  `json:"success"`
		Message      string `json:"message"`
		ErrorMessage string `json:"error_message"`
	}
	if json.Unmarshal(body, &status) == nil && status.Success != nil && !*status.Success {
		return fmt.Errorf("POST %s: server says: %s", url, strings.TrimSpace(status.ErrorMessage+" "+status.Message))
	}
	return nil
}
