package eval

import (
	"context"

	"github.com/asearcher/asearcher/llm"
	"github.com/asearcher/asearcher/tools"
)

// semaphore bounds concurrent calls shared by every agent of a run.
type semaphore chan struct{}

func (s semaphore) acquire(ctx context.Context) error {
	select {
	case s <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (s semaphore) release() { <-s }

// limitedSampler caps in-flight model requests over all agents.
type limitedSampler struct {
	inner llm.Sampler
	sem   semaphore
}

func (l *limitedSampler) Sample(ctx context.Context, req *llm.Request) (*llm.Response, error) {
	if err := l.sem.acquire(ctx); err != nil {
		return nil, err
	}
	defer l.sem.release()
	return l.inner.Sample(ctx, req)
}

// Unwrap lets llm.ContextLength see the model server's context window.
func (l *limitedSampler) Unwrap() llm.Sampler { return l.inner }

// Abort passes through, so agents can still stop a request they own.
func (l *limitedSampler) Abort(ctx context.Context, id string) error {
	if a, ok := l.inner.(llm.Aborter); ok {
		return a.Abort(ctx, id)
	}
	return nil
}

type limitedSearcher struct {
	inner tools.Searcher
	sem   semaphore
}

func (l *limitedSearcher) Search(ctx context.Context, query string, topk int) ([]tools.SearchResult, error) {
	if err := l.sem.acquire(ctx); err != nil {
		return nil, err
	}
	defer l.sem.release()
	return l.inner.Search(ctx, query, topk)
}

type limitedBrowser struct {
	inner tools.Browser
	sem   semaphore
}

func (l *limitedBrowser) Access(ctx context.Context, url string) (*tools.Page, error) {
	if err := l.sem.acquire(ctx); err != nil {
		return nil, err
	}
	defer l.sem.release()
	return l.inner.Access(ctx, url)
}
