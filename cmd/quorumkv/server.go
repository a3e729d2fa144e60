package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/quorumkv/quorumkv/internal/api"
	"github.com/quorumkv/quorumkv/internal/auth"
	"github.com/quorumkv/quorumkv/internal/node"
)

// shutdownTimeout bounds a node's clean stop after SIGINT/SIGTERM.
const shutdownTimeout = 10 * time.Second

func init() {
	register(&command{
		name:    "server",
		group:   "Running",
		args:    "--id ID --data DIR --http ADDR --resp ADDR --rpc ADDR --gossip ADDR [--join ADDR,...] [--zone Z] [--tls-cert F --tls-key F --tls-ca F] [--gossip-key F] [--auth] [--insecure]",
		summary: "run one node",
		run:     runServer,
	})
}

// readyPrefix starts the one line the server prints on stdout once it serves; dev
// (and scripts) wait for it.
const readyPrefix = "quorumkv ready "

func runServer(e *env, args []string) int {
	c := lookup("server")
	fs := e.flags(c, `
Runs one quorumkv node until SIGINT or SIGTERM, then stops it cleanly.

Addresses are host:port; port 0 picks a free port. Once the node serves, one line
goes to stdout with the bound addresses:

  quorumkv ready id=n1 http=127.0.0.1:8080 resp=127.0.0.1:6379 rpc=127.0.0.1:7070 gossip=127.0.0.1:7946

Logs go to stderr.

Secure by default: a node with any listener off loopback refuses to start without TLS
(--tls-cert, --tls-key, --tls-ca: HTTPS and Redis over TLS for clients, mutual TLS
between nodes), --gossip-key (encrypted gossip) and --auth (users and roles), unless
--insecure is given. With --auth and no user yet, $QUORUMKV_ADMIN_PASSWORD creates the
user "admin" with the admin role. 'quorumkv certs' writes a CA, node certificates and a
gossip key; docs/security.md explains each part.

Every flag can also be set in a TOML file named by --config, with keys named as the
flags (hint-window = "3h", join = ["n1:7946", "n2:7946"]), or by an environment
variable QUORUMKV_<FLAG> (QUORUMKV_HINT_WINDOW=3h). A flag on the command line wins over
the environment, which wins over the file. --print-config shows the result.`)
	id := fs.String("id", "", "unique, stable node `name` (e.g. n1) (required)")
	data := fs.String("data", "", "data `dir`ectory (required)")
	httpAddr := fs.String("http", "", "HTTP API listen `addr`ess (required)")
	respAddr := fs.String("resp", "", "Redis protocol listen `addr`ess (empty: off)")
	rpcAddr := fs.String("rpc", "", "internode RPC listen `addr`ess (required)")
	gossipAddr := fs.String("gossip", "", "gossip listen `addr`ess (required)")
	join := fs.String("join", "", "comma-separated gossip `addr`esses of nodes to join")
	zone := fs.String("zone", "", "failure `zone`; replicas are spread across zones")
	replace := fs.String("replace", "", "take over the partitions of dead member `OLD_ID` (streamed from surviving replicas); needs --join")
	debugFaults := fs.Bool("debug-faults", false, "enable POST /v1/debug/faults (tests and demos only)")
	logLevel := fs.String("log-level", "info", "log `level`: debug, info, warn or error")
	def := node.DefaultConfig()
	maxKey := fs.Int("max-key-bytes", def.MaxKeyBytes, "largest key accepted, in `bytes` (413 beyond)")
	maxValue := fs.Int("max-value-bytes", def.MaxValueBytes, "largest value accepted, in `bytes` (413 beyond)")
	maxSiblings := fs.Int("max-siblings", def.MaxSiblings, "most siblings one object may hold; a write past it is refused (409), never trimmed")
	maxObject := fs.Int("max-object-bytes", def.MaxObjectBytes, "largest stored object (all siblings), in `bytes`")
	reqTimeout := fs.Duration("request-timeout", def.RequestTimeout, "default deadline of a client request")
	hintWindow := fs.Duration("hint-window", def.HintWindow, "hints not updated for this long expire (counted and logged)")
	hintMax := fs.Int64("hint-max-bytes", def.HintMaxBytes, "most `bytes` of hints kept for one target")
	hintRate := fs.Int64("hint-rate", def.HintRate, "handoff throttle in `bytes`/s per target (0: none)")
	transferRate := fs.Int64("transfer-rate", def.TransferRate, "partition transfer throttle in `bytes`/s into this node when it takes partitions over (0: none)")
	handoffEvery := fs.Duration("handoff-interval", def.HandoffInterval, "time between handoff retries (a returning node also starts one)")
	noAAE := fs.Bool("no-aae", false, "turn anti-entropy off (no hash trees, exchanges or tombstone reaping): for measurements only")
	aaeInterval := fs.Duration("aae-interval", def.AAEInterval, "time between two scheduled anti-entropy exchanges")
	aaeSegments := fs.Int("aae-segments", def.AAESegments, "hash tree `segments` per partition (a power of two)")
	reapInterval := fs.Duration("reap-interval", def.ReapInterval, "time between two scans for tombstones to reap")
	hedge := fs.Duration("hedge-delay", def.HedgeDelay, "a write waits this long for a primary before also sending to a fallback")
	loops := fs.Int("loops", 0, "event loops running the protocol, each owning a range of partitions (0: one per CPU)")
	blockCacheMB := fs.Int64("block-cache-mb", def.BlockCacheBytes>>20, "Pebble's block cache in `MiB`, its memtables included")
	rowCacheMB := fs.Int64("row-cache-mb", def.RowCacheBytes>>20, "row cache in `MiB`: recently read and written objects in front of Pebble, for the read before each write (0: off)")
	goMemMB := fs.Int("go-memory-mb", defaultGoMemoryMB, "soft limit of the Go runtime's memory in `MiB`, never less than twice the live heap plus the goroutine stacks (GOMEMLIMIT wins when set; Pebble's 64 MiB come on top); 0: none")
	secFlags := addSecurityFlags(fs)
	conf := addConfigFlags(fs)
	pos, code, ok := parse(fs, args)
	if !ok {
		return code
	}
	if len(pos) > 0 {
		return usageErr(fs, "unexpected argument %q", pos[0])
	}
	src, err := applyConfig(fs, e.getenv)
	if err != nil {
		return usageErr(fs, "%v", err)
	}
	if *conf.print {
		if err := printConfig(e.stdout, fs, src); err != nil {
			return e.fail("%v", err)
		}
		return exitOK
	}
	var missing []string
	for _, f := range []struct{ name, v string }{{"id", *id}, {"data", *data}, {"http", *httpAddr}, {"rpc", *rpcAddr}, {"gossip", *gossipAddr}} {
		if f.v == "" {
			missing = append(missing, "--"+f.name)
		}
	}
	if len(missing) > 0 {
		return usageErr(fs, "missing required flag %s (each may also come from QUORUMKV_<FLAG> or --config)", strings.Join(missing, ", "))
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		return usageErr(fs, "bad --log-level %q: want debug, info, warn or error", *logLevel)
	}
	sec, err := secFlags.load()
	if err != nil {
		return usageErr(fs, "%v", err)
	}
	if err := sec.check(*secFlags.insecure, *httpAddr, *respAddr, *rpcAddr, *gossipAddr); err != nil {
		fmt.Fprintf(e.stderr, "quorumkv server: %v\n", err)
		return exitUsage
	}
	log := slog.New(slog.NewTextHandler(e.stderr, &slog.HandlerOptions{Level: level}))

	cfg := def
	cfg.MaxKeyBytes, cfg.MaxValueBytes, cfg.MaxSiblings, cfg.MaxObjectBytes = *maxKey, *maxValue, *maxSiblings, *maxObject
	cfg.RequestTimeout = *reqTimeout
	cfg.HintWindow, cfg.HintMaxBytes, cfg.HintRate, cfg.HandoffInterval = *hintWindow, *hintMax, *hintRate, *handoffEvery
	cfg.HedgeDelay, cfg.Loops, cfg.TransferRate = *hedge, *loops, *transferRate
	cfg.BlockCacheBytes, cfg.RowCacheBytes = *blockCacheMB<<20, *rowCacheMB<<20
	cfg.NoAAE, cfg.AAEInterval, cfg.AAESegments, cfg.ReapInterval = *noAAE, *aaeInterval, *aaeSegments, *reapInterval
	cfg.ID = *id
	cfg.DataDir = *data
	cfg.HTTPAddr = *httpAddr
	cfg.RESPAddr = *respAddr
	cfg.RPCAddr = *rpcAddr
	cfg.GossipAddr = *gossipAddr
	cfg.Join = splitList(*join)
	cfg.Zone = *zone
	cfg.Replace = *replace
	cfg.DebugFaults = *debugFaults
	cfg.Logger = log
	respTLS := sec.apply(&cfg)
	// The authenticator is made with the HTTP handler (it needs the node) and shared with
	// the Redis front end.
	var authn *auth.Authenticator
	var authErr error
	cfg.HTTPHandler = func(n *node.Node) http.Handler {
		authn, authErr = auth.New(auth.Config{Store: n, Logger: log.With("node", cfg.ID)})
		return api.NewWithOptions(n, api.Options{Logger: log.With("node", cfg.ID), DebugFaults: cfg.DebugFaults,
			MaxValue: cfg.MaxValueBytes, Auth: authn, RequireAuth: sec.auth, PeerTLS: sec.peerTLS()})
	}
	if err := cfg.Validate(); err != nil {
		return usageErr(fs, "%v", err)
	}

	// Bind the Redis port before the node starts, so that a bind failure stops here and
	// the node announces the bound address (--resp with port 0) to the cluster.
	var respLn net.Listener
	if cfg.RESPAddr != "" {
		ln, err := net.Listen("tcp", cfg.RESPAddr)
		if err != nil {
			log.Error("start failed", "err", err)
			return e.fail("server %s: --resp %s: %v", cfg.ID, cfg.RESPAddr, err)
		}
		respLn = ln
		cfg.RESPAddr = ln.Addr().String()
		if respTLS != nil {
			respLn = tls.NewListener(ln, respTLS)
		}
	}

	ctx, stop := e.signals()
	defer stop()
	tuneGC(ctx, e.getenv, *goMemMB)
	n, err := node.Start(ctx, cfg)
	if err != nil {
		if respLn != nil {
			_ = respLn.Close()
		}
		log.Error("start failed", "err", err)
		return e.fail("server %s: %v", cfg.ID, err)
	}
	if authErr != nil {
		_ = n.Close(context.Background())
		return e.fail("server %s: %v", cfg.ID, authErr)
	}
	if sec.auth {
		if err := bootstrapAdmin(e, authn, log); err != nil {
			_ = n.Close(context.Background())
			return e.fail("server %s: %v", cfg.ID, err)
		}
	}
	var resp *api.RESP
	if respLn != nil {
		resp = api.NewRESP(n, log.With("node", cfg.ID))
		resp.MaxValueBytes = cfg.MaxValueBytes
		resp.Auth, resp.RequireAuth = authn, sec.auth
		if err := resp.Serve(respLn); err != nil {
			_ = n.Close(context.Background())
			return e.fail("server %s: --resp: %v", cfg.ID, err)
		}
	}
	boundRESP := ""
	if resp != nil {
		boundRESP = resp.Addr()
	}
	fmt.Fprintf(e.stdout, "%sid=%s http=%s resp=%s rpc=%s gossip=%s\n", readyPrefix,
		cfg.ID, n.HTTPAddr(), boundRESP, n.RPCAddr(), n.GossipAddr())
	releaseStartupMemory()

	<-ctx.Done()
	stop() // a second signal now kills the process
	log.Info("stopping", "timeout", shutdownTimeout)
	cctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	if resp != nil {
		// First, so that no Redis command is still running when the node closes.
		if err := resp.Close(); err != nil {
			log.Warn("redis protocol: close", "err", err)
		}
	}
	if err := n.Close(cctx); err != nil {
		log.Error("stop failed", "err", err)
		return e.fail("server %s: stop: %v", cfg.ID, err)
	}
	return exitOK
}

// splitList splits a comma-separated flag value, dropping empty items.
func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// bootstrapAdmin makes the first admin from $QUORUMKV_ADMIN_PASSWORD when no user exists
// (after the node joined, so that it sees the users the cluster has), and warns when
// --auth is on with no user at all: every request would then be refused.
func bootstrapAdmin(e *env, a *auth.Authenticator, log *slog.Logger) error {
	made, err := a.Bootstrap(firstAdmin, e.getenv(adminPasswordEnv))
	if err != nil {
		return fmt.Errorf("$%s: %w", adminPasswordEnv, err)
	}
	if !made && len(a.List()) == 0 {
		log.Warn("--auth is on and no user exists: every client request will be refused; set " + adminPasswordEnv + " to create the first admin")
	}
	return nil
}
