package sim

// Percentiles of a latency distribution, in milliseconds.
type Percentiles struct {
	P50  float64 `json:"p50"`
	P99  float64 `json:"p99"`
	P999 float64 `json:"p999"`
}

// VisPoint is one point of the t-visibility curve: the probability that a read started t
// after a write's acknowledgement (the key's newest acknowledged write, none newer since)
// returns it or something newer. A point holds the reads started from TMs up to the next
// point's t; the last bin of the configuration is open ended (OpenEnded: TMs or later).
type VisPoint struct {
	TMs         float64 `json:"t_ms"`
	PConsistent float64 `json:"p_consistent"`
	Samples     int     `json:"samples"`
	OpenEnded   bool    `json:"open_ended,omitempty"`
}

// KPoint is one point of k-staleness: the share of reads that were K versions behind (0:
// fresh).
type KPoint struct {
	K        int     `json:"k"`
	Fraction float64 `json:"fraction"`
}

// TimelinePoint is one second of the workload's virtual time: the operations that
// started in it and how they ended. Reads counts answered reads, Stale those that missed
// the newest write acknowledged before they began; Writes counts writes (and increments)
// that ended, failed or not, OK those acknowledged; the latencies are of those writes.
type TimelinePoint struct {
	Second     int     `json:"second"`
	Reads      int     `json:"reads"`
	Stale      int     `json:"stale"`
	Writes     int     `json:"writes"`
	OK         int     `json:"ok"`
	WriteP50Ms float64 `json:"write_p50_ms"`
	WriteP99Ms float64 `json:"write_p99_ms"`
}

// FaultWindow is when a scheduled fault was in force, in seconds of virtual time (a fault
// without a duration lasts to the end of the workload).
type FaultWindow struct {
	Fault  string  `json:"fault"`
	FromS  float64 `json:"from_s"`
	UntilS float64 `json:"until_s"`
}

// Report is what a run measured and checked.
type Report struct {
	Seed    uint64 `json:"seed"`
	Config  string `json:"config"`
	Faults  string `json:"faults"`
	Command string `json:"command"` // the quorumkv sim command line that replays this run

	Reads            int     `json:"reads"`
	Writes           int     `json:"writes"`
	StaleReads       int     `json:"stale_reads"`
	StaleReadPct     float64 `json:"stale_read_pct"`
	FailedReads      int     `json:"failed_reads"`
	WriteSuccessRate float64 `json:"write_success_rate"`
	ReadSuccessRate  float64 `json:"read_success_rate"`

	// RequestTimeoutMs is the nodes' request timeout: a latency percentile equal to it is
	// a request that timed out.
	RequestTimeoutMs float64     `json:"request_timeout_ms"`
	ReadLatencyMs    Percentiles `json:"read_latency_ms"`
	WriteLatencyMs   Percentiles `json:"write_latency_ms"`
	TVisibility      []VisPoint  `json:"t_visibility"`
	KStaleness       []KPoint    `json:"k_staleness"`
	// Timeline: per second of the workload, from 0 to Duration.
	Timeline     []TimelinePoint `json:"timeline"`
	FaultWindows []FaultWindow   `json:"fault_windows"`

	HintsStored    int `json:"hints_stored"`
	HintsDelivered int `json:"hints_delivered"`
	HintsPending   int `json:"hints_pending"`
	HintsStale     int `json:"hints_stale"`
	Forwards       int `json:"forwards"`        // writes a node forwarded to a primary of the key
	FallbackWrites int `json:"fallback_writes"` // stand-ins the coordinators added for primaries that did not answer
	ReadRepairs    int `json:"read_repairs"`
	AAEExchanges   int `json:"aae_exchanges"`
	AAERepairs     int `json:"aae_keys_repaired"`
	// TombstonesReaped: tombstones and expired values the cores removed (past gc_grace,
	// held by every primary).
	TombstonesReaped int `json:"tombstones_reaped"`
	// TTLWrites: writes minted with an expiry (--ttl-ratio).
	TTLWrites int `json:"ttl_writes"`
	// ClusterChanges: membership changes (joins, leaves) that completed; TransferKeys the
	// objects the cores streamed for them.
	ClusterChanges int `json:"cluster_changes"`
	TransferKeys   int `json:"transfer_keys"`
	// StrayCopies: copies of keys held at the end by nodes that are not their replicas
	// (counted once the cluster converged; the cores delete them CleanupDelay after a
	// change settles).
	StrayCopies  int `json:"stray_copies"`
	Messages     int `json:"messages"`
	MessagesLost int `json:"messages_lost"`

	Converged        bool     `json:"converged"`
	ConvergedAfterMs float64  `json:"converged_after_ms"`
	Violations       []string `json:"violations"`
	TraceHash        string   `json:"trace_hash"`

	SimulatedSeconds float64 `json:"simulated_seconds"`
	WallSeconds      float64 `json:"wall_seconds"`
	Events           int     `json:"events"`

	// Latencies of every read and write, for plots (not in JSON).
	ReadLatencies  []float64 `json:"-"`
	WriteLatencies []float64 `json:"-"`
}
