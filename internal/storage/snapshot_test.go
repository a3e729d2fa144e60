package storage

import (
	"fmt"
	"testing"
)

// TestSnapshotIsPointInTime: a snapshot keeps seeing the data as it was when taken, while
// the store moves on; closing it leaves the store usable.
func TestSnapshotIsPointInTime(t *testing.T) {
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) {
			s := e.open(t)
			for i := 0; i < 100; i++ {
				if err := s.Put(b(fmt.Sprintf("k%03d", i)), b("old"), WriteOptions{}); err != nil {
					t.Fatal(err)
				}
			}
			snap, err := s.NewSnapshot()
			if err != nil {
				t.Fatal(err)
			}
			for i := 0; i < 100; i += 2 {
				if err := s.Put(b(fmt.Sprintf("k%03d", i)), b("new"), WriteOptions{}); err != nil {
					t.Fatal(err)
				}
			}
			if err := s.Delete(b("k001"), WriteOptions{}); err != nil {
				t.Fatal(err)
			}
			if err := s.Put(b("k500"), b("new"), WriteOptions{}); err != nil {
				t.Fatal(err)
			}
			n := 0
			if err := snap.Scan(nil, nil, func(k, v []byte) bool {
				if string(v) != "old" {
					t.Errorf("snapshot sees %s=%s", k, v)
				}
				n++
				return true
			}); err != nil {
				t.Fatal(err)
			}
			if n != 100 {
				t.Fatalf("snapshot scanned %d keys, want 100", n)
			}
			if err := snap.Close(); err != nil {
				t.Fatal(err)
			}
			got := 0
			_ = s.Scan(nil, nil, func(k, v []byte) bool { got++; return true })
			if got != 100 { // 100 - k001 + k500
				t.Fatalf("store has %d keys, want 100", got)
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
		})
	}
}
