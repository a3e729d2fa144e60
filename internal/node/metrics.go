package node

import (
	"context"
	"github.com/quorumkv/quorumkv/internal/core"
	"log/slog"

	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics are the node's Prometheus metrics. Each node has its own registry so several
// nodes can live in one process (tests).
type Metrics struct {
	reg         *prometheus.Registry
	latency     *prometheus.HistogramVec
	writes      *prometheus.CounterVec
	reads       *prometheus.CounterVec
	staleReads  prometheus.Counter
	readRepairs prometheus.Counter
	siblings    prometheus.Histogram
	forwards    prometheus.Counter
	syncs       *prometheus.CounterVec

	fallbackWrites   prometheus.Counter
	hintsStored      prometheus.Counter
	hintsDelivered   prometheus.Counter
	hintsStale       prometheus.Counter
	handoffBytes     prometheus.Counter
	handoffReceived  prometheus.Counter
	transferKeys     prometheus.Counter
	transferBytes    prometheus.Counter
	pendingWrites    prometheus.Counter
	cleanupDeleted   prometheus.Counter
	transferDuration prometheus.Histogram

	aaeExchanges        *prometheus.CounterVec
	aaeSegmentsCompared prometheus.Counter
	aaeSegmentsDiffered prometheus.Counter
	aaeKeysRepaired     prometheus.Counter
	aaeBytes            prometheus.Counter
	tombstonesReaped    prometheus.Counter
}

func newMetrics() *Metrics {
	m := &Metrics{reg: prometheus.NewRegistry()}
	m.latency = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "quorumkv_request_duration_seconds",
		Help:    "Client request latency by operation and consistency (r or w quorum asked, of n).",
		Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
	}, []string{"op", "consistency"})
	m.writes = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "quorumkv_writes_total", Help: "Client writes (puts and deletes) by result: ok, quorum_failed, error.",
	}, []string{"result"})
	m.reads = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "quorumkv_reads_total", Help: "Client reads by result: ok, not_found, quorum_failed, error.",
	}, []string{"result"})
	m.staleReads = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "quorumkv_stale_reads_total", Help: "Reads in which at least one replica answered with less than the merged value.",
	})
	m.readRepairs = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "quorumkv_read_repairs_total", Help: "Read-repair writes sent to stale replicas.",
	})
	m.siblings = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "quorumkv_siblings", Help: "Number of siblings in the objects returned by reads.",
		Buckets: []float64{1, 2, 3, 5, 10, 25, 50, 100},
	})
	m.forwards = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "quorumkv_forwarded_writes_total", Help: "Writes received by a non-replica and forwarded to a primary to coordinate.",
	})
	m.syncs = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "quorumkv_store_syncs_total",
		Help: "Store fsyncs by cause: durable (writes that wait for one: dw acks, a W=1 coordinator's own copy, hints) or periodic (every SyncInterval while writes are unsynced).",
	}, []string{"cause"})
	m.fallbackWrites = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "quorumkv_fallback_writes_total", Help: "Replica writes redirected to a fallback because a primary was unreachable during the write.",
	})
	m.hintsStored = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "quorumkv_hints_stored_total", Help: "Objects this node kept as hints for a down primary.",
	})
	m.hintsDelivered = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "quorumkv_hints_delivered_total", Help: "Hints this node handed off to their primary.",
	})
	m.hintsStale = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "quorumkv_hints_stale_total", Help: "Hints discarded at handoff because all they held was older than the bucket's gc_grace.",
	})
	m.handoffBytes = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "quorumkv_handoff_bytes_total", Help: "Object bytes this node handed off.",
	})
	m.handoffReceived = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "quorumkv_handoff_received_total", Help: "Hinted objects this node received as a returning primary.",
	})
	m.aaeExchanges = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "quorumkv_aae_exchanges_total", Help: "Anti-entropy partition exchanges this node ran, by result.",
	}, []string{"result"})
	m.aaeSegmentsCompared = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "quorumkv_aae_segments_compared_total", Help: "Tree segments compared (those under differing branches).",
	})
	m.aaeSegmentsDiffered = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "quorumkv_aae_segments_differed_total", Help: "Tree segments that differed between replicas.",
	})
	m.aaeKeysRepaired = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "quorumkv_aae_keys_repaired_total", Help: "Keys anti-entropy repaired on either side.",
	})
	m.aaeBytes = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "quorumkv_aae_bytes_total", Help: "Bytes anti-entropy exchanges and repairs put on the wire, both directions.",
	})
	m.tombstonesReaped = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "quorumkv_tombstones_reaped_total", Help: "Tombstones removed past gc_grace once every primary held them.",
	})
	m.reg.MustRegister(m.aaeExchanges, m.aaeSegmentsCompared, m.aaeSegmentsDiffered, m.aaeKeysRepaired, m.aaeBytes, m.tombstonesReaped)
	m.reg.MustRegister(m.hintsStale)
	m.transferKeys = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "quorumkv_transfer_keys_total", Help: "Objects received by partition transfers (this node taking partitions over).",
	})
	m.transferBytes = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "quorumkv_transfer_bytes_total", Help: "Bytes received by partition transfers.",
	})
	m.pendingWrites = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "quorumkv_pending_owner_writes_total", Help: "Writes also sent to a moving partition's new replica (its ack not counted).",
	})
	m.cleanupDeleted = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "quorumkv_cleanup_deleted_keys_total", Help: "Copies deleted of keys this node no longer replicates after a cluster change.",
	})
	m.transferDuration = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "quorumkv_transfer_duration_seconds", Help: "Time one partition transfer took, streaming and checking, on the node taking it over.",
		Buckets: prometheus.ExponentialBuckets(0.001, 4, 10),
	})
	m.reg.MustRegister(m.transferKeys, m.transferBytes, m.pendingWrites, m.cleanupDeleted, m.transferDuration)
	m.reg.MustRegister(m.fallbackWrites, m.hintsStored, m.hintsDelivered, m.handoffBytes, m.handoffReceived)
	m.reg.MustRegister(m.latency, m.writes, m.reads, m.staleReads, m.readRepairs, m.siblings, m.forwards, m.syncs,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Registry lets other parts of the node register their metrics.
func (n *Node) Registry() *prometheus.Registry { return n.metrics.reg }

// MetricsHandler serves the node's metrics in the Prometheus text format.
func (n *Node) MetricsHandler() http.Handler {
	return promhttp.HandlerFor(n.metrics.reg, promhttp.HandlerOpts{})
}

// count receives the core's counts (core.Deps.Count).
func (m *Metrics) count(c core.Counter, n int) {
	v := float64(n)
	switch c {
	case core.CountForward:
		m.forwards.Add(v)
	case core.CountFallbackWrite:
		m.fallbackWrites.Add(v)
	case core.CountHintStored:
		m.hintsStored.Add(v)
	case core.CountReadRepair:
		m.readRepairs.Add(v)
	case core.CountStaleRead:
		m.staleReads.Add(v)
	case core.CountSiblings:
		m.siblings.Observe(v)
	case core.CountHintsDelivered:
		m.hintsDelivered.Add(v)
	case core.CountHandoffBytes:
		m.handoffBytes.Add(v)
	case core.CountHintsStale:
		m.hintsStale.Add(v)
	case core.CountHandoffReceived:
		m.handoffReceived.Add(v)
	case core.CountAAEExchangeOK:
		m.aaeExchanges.WithLabelValues("ok").Add(v)
	case core.CountAAEExchangeError:
		m.aaeExchanges.WithLabelValues("error").Add(v)
	case core.CountAAESegmentsCompared:
		m.aaeSegmentsCompared.Add(v)
	case core.CountAAESegmentsDiffered:
		m.aaeSegmentsDiffered.Add(v)
	case core.CountAAEKeysRepaired:
		m.aaeKeysRepaired.Add(v)
	case core.CountAAEBytes:
		m.aaeBytes.Add(v)
	case core.CountTombstonesReaped:
		m.tombstonesReaped.Add(v)
	case core.CountTransferKeys:
		m.transferKeys.Add(v)
	case core.CountTransferBytes:
		m.transferBytes.Add(v)
	case core.CountPendingWrite:
		m.pendingWrites.Add(v)
	case core.CountCleanupDeleted:
		m.cleanupDeleted.Add(v)
	}
}

// coreLogger passes the core's log records to log.
func coreLogger(log *slog.Logger) func(core.LogLevel, string, ...any) {
	return func(level core.LogLevel, msg string, kv ...any) {
		l := slog.LevelDebug
		switch level {
		case core.LevelInfo:
			l = slog.LevelInfo
		case core.LevelWarn:
			l = slog.LevelWarn
		case core.LevelError:
			l = slog.LevelError
		}
		log.Log(context.Background(), l, msg, kv...)
	}
}

// storeCollector exports the store's row cache and key filter counters at scrape time.
type storeCollector struct {
	n                         *Node
	hits, misses, bytes, keys *prometheus.Desc
	negatives, filterBytes    *prometheus.Desc
}

func newStoreCollector(n *Node) *storeCollector {
	return &storeCollector{
		n:      n,
		hits:   prometheus.NewDesc("quorumkv_row_cache_hits_total", "Reads of objects answered by the row cache (no Pebble read).", nil, nil),
		misses: prometheus.NewDesc("quorumkv_row_cache_misses_total", "Reads of objects the row cache could not answer (read from Pebble).", nil, nil),
		bytes:  prometheus.NewDesc("quorumkv_row_cache_bytes", "What the row cache holds: keys, values and a fixed overhead per entry.", nil, nil),
		keys:   prometheus.NewDesc("quorumkv_row_cache_entries", "Keys the row cache holds.", nil, nil),
		negatives: prometheus.NewDesc("quorumkv_key_filter_negatives_total",
			"Reads of objects never written, answered absent by the key filter (no Pebble read).", nil, nil),
		filterBytes: prometheus.NewDesc("quorumkv_key_filter_bytes", "The key filter's size (1.5 to 3 bytes per key stored).", nil, nil),
	}
}

func (c *storeCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.hits, c.misses, c.bytes, c.keys, c.negatives, c.filterBytes} {
		ch <- d
	}
}

func (c *storeCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.n.pebble.RowCacheStats()
	ch <- prometheus.MustNewConstMetric(c.hits, prometheus.CounterValue, float64(st.Hits))
	ch <- prometheus.MustNewConstMetric(c.misses, prometheus.CounterValue, float64(st.Misses))
	ch <- prometheus.MustNewConstMetric(c.bytes, prometheus.GaugeValue, float64(st.Bytes))
	ch <- prometheus.MustNewConstMetric(c.keys, prometheus.GaugeValue, float64(st.Entries))
	kf := c.n.pebble.KeyFilterStats()
	ch <- prometheus.MustNewConstMetric(c.negatives, prometheus.CounterValue, float64(kf.Negatives))
	ch <- prometheus.MustNewConstMetric(c.filterBytes, prometheus.GaugeValue, float64(kf.Bytes))
}
