package storage

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestPebbleConfigValidate(t *testing.T) {
	def := DefaultPebbleConfig()
	for _, c := range []struct {
		name string
		edit func(*PebbleConfig)
		ok   bool
	}{
		{"default", func(*PebbleConfig) {}, true},
		{"no cache", func(c *PebbleConfig) { c.CacheBytes = 0 }, true},
		{"negative cache", func(c *PebbleConfig) { c.CacheBytes = -1 }, false},
		{"zero memtable", func(c *PebbleConfig) { c.MemTableBytes = 0 }, false},
		{"tiny memtable", func(c *PebbleConfig) { c.MemTableBytes = minMemTableBytes - 1 }, false},
		{"smallest memtable", func(c *PebbleConfig) { c.MemTableBytes = minMemTableBytes }, true},
		{"huge memtable", func(c *PebbleConfig) { c.MemTableBytes = maxMemTableBytes + 1 }, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg := def
			c.edit(&cfg)
			if err := cfg.Validate(); (err == nil) != c.ok {
				t.Fatalf("Validate() = %v, want ok=%v", err, c.ok)
			}
		})
	}
}

func TestOpenPebbleErrors(t *testing.T) {
	dir := t.TempDir()
	bad := DefaultPebbleConfig()
	bad.MemTableBytes = 0
	if _, err := OpenPebble(filepath.Join(dir, "db"), bad); err == nil {
		t.Fatal("invalid config accepted")
	}
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := OpenPebble(filepath.Join(file, "db"), DefaultPebbleConfig())
	if err == nil || !strings.Contains(err.Error(), file) {
		t.Fatalf("open under a file: err %v, want an error naming the path", err)
	}
}

func TestPebbleCreatesNestedDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a", "b", "db")
	p := openTestPebble(t, dir)
	mustPut(t, p, "k", "v")
	if _, err := os.Stat(filepath.Join(dir, "CURRENT")); err != nil {
		t.Fatal(err)
	}
}

// TestPebbleReopen writes enough to flush several memtables, with and
// without Sync, closes, reopens and finds everything; then deletes some
// keys and checks again.
func TestPebbleReopen(t *testing.T) {
	dir := t.TempDir()
	const n = 3000
	key := func(i int) []byte { return fmt.Appendf(nil, "key%05d", i) }
	val := func(i int) []byte { return fmt.Appendf(nil, "value-%05d-%s", i, strings.Repeat("x", 100)) }

	p, err := OpenPebble(dir, testPebbleConfig())
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		if err := p.Put(key(i), val(i), WriteOptions{Sync: i%100 == 0}); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}

	p = openTestPebble(t, dir)
	check := func(deleted func(int) bool) {
		t.Helper()
		for i := range n {
			got, err := p.Get(key(i))
			switch {
			case deleted(i) && !errors.Is(err, ErrNotFound):
				t.Fatalf("key %d: got %q, %v; want deleted", i, got, err)
			case !deleted(i) && (err != nil || string(got) != string(val(i))):
				t.Fatalf("key %d: got %q, %v", i, got, err)
			}
		}
	}
	check(func(int) bool { return false })
	var ops []Op
	for i := 0; i < n; i += 3 {
		ops = append(ops, Op{Key: key(i), Delete: true})
	}
	if err := p.Write(ops, WriteOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	p = openTestPebble(t, dir)
	check(func(i int) bool { return i%3 == 0 })
}

// The crash test re-executes the test binary as a child that writes with
// Sync and acknowledges each write on stdout; the parent kills it with
// SIGKILL partway, reopens the database and requires every acknowledged
// write. It does so several times on the same directory, so recovery from
// a crash is itself crashed.
const (
	crashDirEnv  = "QUORUMKV_STORAGE_CRASH_DIR"
	crashBaseEnv = "QUORUMKV_STORAGE_CRASH_BASE"
)

func crashKey(i int) []byte   { return fmt.Appendf(nil, "k%09d", i) }
func crashPair(i int) []byte  { return fmt.Appendf(nil, "p%09d", i) }
func crashValue(i int) []byte { return fmt.Appendf(nil, "v%09d-%s", i, strings.Repeat("x", 200)) }

// TestPebbleCrashChild is the child side of TestPebbleCrash; it does
// nothing unless started by it.
func TestPebbleCrashChild(t *testing.T) {
	dir := os.Getenv(crashDirEnv)
	if dir == "" {
		t.Skip("child process of TestPebbleCrash")
	}
	base, err := strconv.Atoi(os.Getenv(crashBaseEnv))
	if err != nil {
		t.Fatal(err)
	}
	p, err := OpenPebble(dir, testPebbleConfig())
	if err != nil {
		t.Fatal(err)
	}
	// Concurrent writers, so that acknowledgements come from group
	// commits. Even indexes are single Puts; odd ones are two-key batches.
	var next atomic.Int64
	var out sync.Mutex
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for {
				i := base + int(next.Add(1)-1)
				if i >= base+1_000_000 {
					return
				}
				var err error
				if i%2 == 0 {
					err = p.Put(crashKey(i), crashValue(i), WriteOptions{Sync: true})
				} else {
					err = p.Write([]Op{
						{Key: crashKey(i), Value: crashValue(i)},
						{Key: crashPair(i), Value: crashValue(i)},
					}, WriteOptions{Sync: true})
				}
				if err != nil {
					t.Error(err)
					return
				}
				out.Lock()
				fmt.Fprintf(os.Stdout, "ack %d\n", i) // one write(2): a whole line or nothing
				out.Unlock()
			}
		})
	}
	wg.Wait()
}

func TestPebbleCrash(t *testing.T) {
	if testing.Short() {
		t.Skip("starts child processes")
	}
	dir := filepath.Join(t.TempDir(), "db")
	rng := rand.New(rand.NewPCG(1, 2))
	const rounds = 3
	for round := range rounds {
		base := round * 10_000_000
		killAfter := 100 + rng.IntN(400)
		acked := runCrashChild(t, dir, base, killAfter)
		if len(acked) < killAfter {
			t.Fatalf("round %d: %d acks, want at least %d", round, len(acked), killAfter)
		}

		p, err := OpenPebble(dir, testPebbleConfig())
		if err != nil {
			t.Fatalf("round %d: reopen after SIGKILL: %v", round, err)
		}
		for _, i := range acked {
			got, err := p.Get(crashKey(i))
			if err != nil || string(got) != string(crashValue(i)) {
				t.Errorf("round %d: acknowledged write %d lost: %q, %v", round, i, got, err)
			}
		}
		// Batches are all or nothing, acknowledged or not.
		err = p.Scan(crashKey(base), crashKey(base+10_000_000), func(k, v []byte) bool {
			i, _ := strconv.Atoi(string(k[1:]))
			if i%2 == 1 {
				if _, err := p.Get(crashPair(i)); err != nil {
					t.Errorf("round %d: half of batch %d: pair key: %v", round, i, err)
				}
			}
			return true
		})
		if err != nil {
			t.Fatal(err)
		}
		if err := p.Close(); err != nil {
			t.Fatal(err)
		}
		t.Logf("round %d: killed after %d acknowledged writes; all present", round, len(acked))
	}
}

// runCrashChild starts the child, reads acknowledgements until it has
// killAfter of them, kills the child with SIGKILL, and returns every
// acknowledgement the child wrote before it died.
func runCrashChild(t *testing.T, dir string, base, killAfter int) []int {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestPebbleCrashChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), crashDirEnv+"="+dir, crashBaseEnv+"="+strconv.Itoa(base))
	var stderr strings.Builder
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// A deadline, not a sleep: a stuck child is killed and the test fails.
	stuck := time.AfterFunc(2*time.Minute, func() { _ = cmd.Process.Kill() })
	defer stuck.Stop()

	var acked []int
	killed := false
	r := bufio.NewReader(stdout)
	for {
		line, err := r.ReadString('\n')
		if err == io.EOF {
			break // a partial last line was never a complete acknowledgement
		}
		if err != nil {
			t.Fatal(err)
		}
		s, ok := strings.CutPrefix(strings.TrimSuffix(line, "\n"), "ack ")
		if !ok {
			continue
		}
		i, err := strconv.Atoi(s)
		if err != nil {
			t.Fatalf("bad ack line %q", line)
		}
		acked = append(acked, i)
		if !killed && len(acked) >= killAfter {
			if err := cmd.Process.Kill(); err != nil { // SIGKILL on Unix
				t.Fatal(err)
			}
			killed = true
		}
	}
	err = cmd.Wait()
	if !killed {
		t.Fatalf("child exited before it was killed (%v): %s", err, stderr.String())
	}
	var exitErr *exec.ExitError
	if !errors.As(err, &exitErr) || exitErr.Success() {
		t.Fatalf("child: %v, want killed; stderr: %s", err, stderr.String())
	}
	return acked
}

// Compacting a range whose keys were all deleted gives their disk space back.
func TestPebbleCompactReclaimsDeletedKeys(t *testing.T) {
	p, err := OpenPebble(t.TempDir(), DefaultPebbleConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	val := make([]byte, 1024)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range 20000 {
		for j := range val {
			val[j] = byte(rng.Uint32())
		}
		if err := p.Put([]byte(fmt.Sprintf("d%06d", i)), val, WriteOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.Compact([]byte("d"), []byte("e")); err != nil {
		t.Fatal(err)
	}
	full := p.TableBytes()
	for i := range 20000 {
		if err := p.Delete([]byte(fmt.Sprintf("d%06d", i)), WriteOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.Compact([]byte("d"), []byte("e")); err != nil {
		t.Fatal(err)
	}
	empty := p.TableBytes()
	t.Logf("tables with 20,000 keys of 1 KiB: %d bytes; after deleting and compacting them: %d", full, empty)
	if empty > full/4 {
		t.Fatalf("compaction kept %d of %d bytes", empty, full)
	}
}
