package hints

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/quorumkv/quorumkv/internal/storage"
	"github.com/quorumkv/quorumkv/internal/version"
	"pgregory.net/rapid"
)

// modelHint is the model's view of one stored hint.
type modelHint struct {
	obj     version.Object
	updated int64
	record  []byte
}

type modelCounters struct{ delivered, expired, dropped uint64 }

// TestModel runs random Add/Batch/Delivered/Expire/reopen sequences against a
// plain map and checks that Stats, Targets, Get and Batch agree with it.
func TestModel(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		cfg := Config{Window: 100 * time.Millisecond, MaxBytesPerTarget: rapid.Int64Range(60, 600).Draw(rt, "max")}
		m := storage.NewMemory()
		s, err := Open(m, cfg, nil)
		if err != nil {
			rt.Fatal(err)
		}
		targets := []string{"n1", "n2"}
		keys := []string{"a", "b", "c", "d"}
		model := map[string]*modelHint{} // by store key
		counters := map[string]*modelCounters{"n1": {}, "n2": {}}
		counter := map[string]uint64{}
		now := int64(1000)
		var lastBatch []Hint

		for step := range rapid.IntRange(1, 60).Draw(rt, "steps") {
			now += rapid.Int64Range(0, 40).Draw(rt, "dt")
			switch op := rapid.IntRange(0, 9).Draw(rt, "op"); {
			case op < 5: // Add
				target := rapid.SampledFrom(targets).Draw(rt, "target")
				key := rapid.SampledFrom(keys).Draw(rt, "key")
				actor := rapid.SampledFrom([]string{"x", "y"}).Draw(rt, "actor")
				counter[actor]++
				sk := string(storeKey(target, "b", key))
				var ctx version.Clock
				if h := model[sk]; h != nil && rapid.Bool().Draw(rt, "seen") {
					ctx = h.obj.Clock
				}
				var base version.Object
				if ctx != nil {
					base = model[sk].obj
				}
				o := base.Update(ctx, version.Sibling{Dot: version.Dot{Actor: actor, Counter: counter[actor]},
					Value: bytes.Repeat([]byte{'v'}, rapid.IntRange(0, 20).Draw(rt, "vlen"))})
				merged := o
				if h := model[sk]; h != nil {
					merged = version.Merge(h.obj, o)
				}
				rec := encodeRecord(now, merged)
				var pending int64
				for k, h := range model {
					if tgt, _, _, _ := parseKey([]byte(k)); tgt == target && k != sk {
						pending += int64(len(k) + len(h.record))
					}
				}
				err := s.Add(target, "b", key, o, now, rapid.Bool().Draw(rt, "sync"))
				if pending+int64(len(sk)+len(rec)) > cfg.MaxBytesPerTarget {
					if !errors.Is(err, ErrFull) {
						rt.Fatalf("step %d: Add over the bound: %v", step, err)
					}
					counters[target].dropped++
				} else {
					if err != nil {
						rt.Fatalf("step %d: Add: %v", step, err)
					}
					model[sk] = &modelHint{obj: merged, updated: now, record: rec}
				}
			case op < 7: // Batch, all of it
				target := rapid.SampledFrom(targets).Draw(rt, "target")
				hs := drain(rt, s, target, rapid.IntRange(0, 80).Draw(rt, "maxBytes"))
				var want []string
				for k := range model {
					if tgt, _, _, _ := parseKey([]byte(k)); tgt == target {
						want = append(want, k)
					}
				}
				slices.Sort(want)
				if len(hs) != len(want) {
					rt.Fatalf("step %d: Batch gave %d hints, model has %d", step, len(hs), len(want))
				}
				for i, h := range hs {
					mh := model[want[i]]
					if string(storeKey(h.Target, h.Bucket, h.Key)) != want[i] || h.UpdatedMs != mh.updated || !bytes.Equal(h.record, mh.record) {
						rt.Fatalf("step %d: hint %d = %+v, model %q %+v", step, i, h, want[i], mh)
					}
				}
				lastBatch = hs
			case op < 8: // Delivered, a random subset of the last batch
				var sub []Hint
				for _, h := range lastBatch {
					if rapid.Bool().Draw(rt, "deliver") {
						sub = append(sub, h)
					}
				}
				want := 0
				for _, h := range sub {
					sk := string(storeKey(h.Target, h.Bucket, h.Key))
					if mh := model[sk]; mh != nil && bytes.Equal(mh.record, h.record) {
						delete(model, sk)
						counters[h.Target].delivered++
						want++
					}
				}
				n, err := s.Delivered(sub, rapid.Bool().Draw(rt, "sync"))
				if err != nil || n != want {
					rt.Fatalf("step %d: Delivered = %d, %v; model %d", step, n, err, want)
				}
			case op < 9: // Expire
				want := 0
				for k, h := range model {
					if h.updated < now-cfg.Window.Milliseconds() {
						tgt, _, _, _ := parseKey([]byte(k))
						counters[tgt].expired++
						delete(model, k)
						want++
					}
				}
				n, _, err := s.Expire(now)
				if err != nil || n != want {
					rt.Fatalf("step %d: Expire = %d, %v; model %d", step, n, err, want)
				}
			default: // reopen on the same storage: counters restart
				s, err = Open(m, cfg, nil)
				if err != nil {
					rt.Fatal(err)
				}
				counters = map[string]*modelCounters{"n1": {}, "n2": {}}
			}
			checkModel(rt, step, s, targets, keys, model, counters)
		}
	})
}

func checkModel(rt *rapid.T, step int, s *Store, targets, keys []string, model map[string]*modelHint, counters map[string]*modelCounters) {
	var wantTargets []string
	got := map[string]TargetStats{}
	for _, st := range s.Stats() {
		got[st.Target] = st
	}
	for _, target := range targets {
		want := TargetStats{Target: target}
		for _, key := range keys {
			sk := string(storeKey(target, "b", key))
			h := model[sk]
			o, ok, err := s.Get(target, "b", key)
			if err != nil || ok != (h != nil) || (h != nil && !o.Equal(h.obj)) {
				rt.Fatalf("step %d: Get(%s, %s) = %v %v %v; model %+v", step, target, key, o, ok, err, h)
			}
			if h != nil {
				if want.Pending == 0 || h.updated < want.OldestMs {
					want.OldestMs = h.updated
				}
				want.Pending++
				want.Bytes += int64(len(sk) + len(h.record))
			}
		}
		c := counters[target]
		want.Delivered, want.Expired, want.Dropped = c.delivered, c.expired, c.dropped
		if want.Pending > 0 {
			wantTargets = append(wantTargets, target)
		}
		if want == (TargetStats{Target: target}) {
			if _, ok := got[target]; ok {
				rt.Fatalf("step %d: Stats lists idle target %s", step, target)
			}
			continue
		}
		if got[target] != want {
			rt.Fatalf("step %d: Stats(%s) = %+v, model %+v", step, target, got[target], want)
		}
	}
	if fmt.Sprint(s.Targets()) != fmt.Sprint(wantTargets) {
		rt.Fatalf("step %d: Targets %v, model %v", step, s.Targets(), wantTargets)
	}
}
