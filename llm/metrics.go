package llm

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// PoolMetrics are the Prometheus series a Pool keeps, labelled by server.
// Pools sharing a registry share the series.
type PoolMetrics struct {
	requests *prometheus.CounterVec
	retries  *prometheus.CounterVec
	latency  *prometheus.HistogramVec
	inflight *prometheus.GaugeVec
	tokens   *prometheus.CounterVec
	up       *prometheus.GaugeVec
}

// NewPoolMetrics registers the pool series with reg (nil: a private
// registry nobody scrapes, which keeps the calls cheap and tests isolated).
func NewPoolMetrics(reg prometheus.Registerer) (*PoolMetrics, error) {
	m := &PoolMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "asearcher_llm_requests_total",
			Help: "Generation attempts by server and outcome (ok, error, timeout).",
		}, []string{"server", "outcome"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "asearcher_llm_retries_total",
			Help: "Attempts repeated after a retryable failure, by the server that failed.",
		}, []string{"server"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "asearcher_llm_request_seconds",
			Help:    "Duration of successful generation attempts.",
			Buckets: prometheus.ExponentialBuckets(0.005, 2.5, 12),
		}, []string{"server"}),
		inflight: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "asearcher_llm_inflight",
			Help: "Generation attempts in flight.",
		}, []string{"server"}),
		tokens: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "asearcher_llm_generated_tokens_total",
			Help: "Tokens generated (as reported by the server).",
		}, []string{"server"}),
		up: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "asearcher_llm_server_up",
			Help: "1 when the server passes health checks and answers, else 0.",
		}, []string{"server"}),
	}
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	var err error
	m.requests, err = register(reg, m.requests)
	if err != nil {
		return nil, err
	}
	if m.retries, err = register(reg, m.retries); err != nil {
		return nil, err
	}
	if m.latency, err = register(reg, m.latency); err != nil {
		return nil, err
	}
	if m.inflight, err = register(reg, m.inflight); err != nil {
		return nil, err
	}
	if m.tokens, err = register(reg, m.tokens); err != nil {
		return nil, err
	}
	if m.up, err = register(reg, m.up); err != nil {
		return nil, err
	}
	return m, nil
}

// register adds c to reg, or returns the collector already registered
// under the same name so several pools can share one registry.
func register[C prometheus.Collector](reg prometheus.Registerer, c C) (C, error) {
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(C); ok {
				return existing, nil
			}
		}
		return c, err
	}
	return c, nil
}

// UpGauge is the asearcher_llm_server_up series of one server.
func (m *PoolMetrics) UpGauge(server string) prometheus.Gauge { return m.up.WithLabelValues(server) }

// RequestCounter is the asearcher_llm_requests_total series of one server
// and outcome (ok, error, timeout).
func (m *PoolMetrics) RequestCounter(server, outcome string) prometheus.Counter {
	return m.requests.WithLabelValues(server, outcome)
}
