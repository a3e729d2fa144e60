package membership

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sync"
)

// MemStore is a StateStore in memory, for tests and the simulator: it
// survives a Membership restart within one process.
type MemStore struct {
	mu   sync.Mutex
	data []byte
}

// Load returns the last saved state or nil, nil.
func (s *MemStore) Load() ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.data), nil
}

// Save replaces the saved state.
func (s *MemStore) Save(b []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.data = slices.Clone(b)
	return nil
}

// FileStore is a StateStore in one file, replaced atomically (write a
// temporary file, fsync, rename, fsync the directory).
type FileStore struct {
	Path string
}

// Load returns the file's content, or nil, nil when it does not exist.
func (s FileStore) Load() ([]byte, error) {
	b, err := os.ReadFile(s.Path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading membership state: %w", err)
	}
	return b, nil
}

// Save atomically replaces the file with b.
func (s FileStore) Save(b []byte) error {
	dir := filepath.Dir(s.Path)
	f, err := os.CreateTemp(dir, filepath.Base(s.Path)+".tmp*")
	if err != nil {
		return fmt.Errorf("saving membership state: %w", err)
	}
	tmp := f.Name()
	_, werr := f.Write(b)
	if werr == nil {
		werr = f.Sync()
	}
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr == nil {
		werr = os.Rename(tmp, s.Path)
	}
	if werr != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("saving membership state to %s: %w", s.Path, werr)
	}
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		_ = d.Close()
	}
	return nil
}
