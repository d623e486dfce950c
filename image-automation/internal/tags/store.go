// Package tags keeps the tag lists of ImageRepositories on disk, one file per repository, so that
// the status stays small and a restart does not have to scan every registry before policies can
// be evaluated. Recently read lists are kept in memory too, by count.
package tags

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"sync"

	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/lru"
)

// ErrNotFound: no scan of this repository is stored.
var ErrNotFound = errors.New("no tags stored")

// Store keeps tag lists under a folder. It is safe for concurrent use.
type Store struct {
	dir string
	// mu orders a file and its cache entry, so that a read of an older file never replaces a
	// newer entry.
	mu    sync.Mutex
	cache *lru.Cache // key string -> List
	// revs holds the revision of every list stored or read by this process, so that checking
	// one reads no file.
	revs map[string]string
}

// List is a repository's tags at one scan.
type List struct {
	// Image is the ImageRepository's spec.image the tags were listed for, as written.
	Image string `json:"image"`
	// Canonical is the image with its registry spelled out (index.docker.io/library/nginx).
	Canonical string `json:"canonical"`
	// Revision is the sha256 of the sorted tags; it changes when the tags change.
	Revision string `json:"revision"`
	// Tags, sorted.
	Tags []string `json:"tags"`
}

// New returns a store under dir, which it creates.
func New(dir string) (*Store, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	return &Store{dir: dir, cache: lru.New(32), revs: map[string]string{}}, nil
}

// Revision is the digest of a set of tags, independent of their order.
func Revision(tags []string) string {
	sorted := append([]string(nil), tags...)
	sort.Strings(sorted)
	h := sha256.New()
	for _, t := range sorted {
		h.Write([]byte(t))
		h.Write([]byte{'\n'})
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil))
}

// Put stores the tags of an ImageRepository, replacing what was there, and returns the list as
// stored.
func (s *Store) Put(key types.NamespacedName, image, canonical string, tags []string) (List, error) {
	sorted := append([]string(nil), tags...)
	sort.Strings(sorted)
	l := List{Image: image, Canonical: canonical, Revision: Revision(sorted), Tags: sorted}
	b, err := json.Marshal(l)
	if err != nil {
		return List{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	path := s.path(key)
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return List{}, err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tags-*")
	if err != nil {
		return List{}, err
	}
	_, err = tmp.Write(b)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		_ = os.Remove(tmp.Name())
		return List{}, fmt.Errorf("storing tags: %w", err)
	}
	s.cache.Add(key.String(), l)
	s.revs[key.String()] = l.Revision
	return l, nil
}

// Has says whether the list of an ImageRepository at revision is stored. It reads the file only
// the first time this process meets the key.
func (s *Store) Has(key types.NamespacedName, revision string) bool {
	s.mu.Lock()
	rev, known := s.revs[key.String()]
	s.mu.Unlock()
	if known {
		return rev == revision
	}
	l, err := s.Get(key)
	return err == nil && l.Revision == revision
}

// Get returns the stored tags of an ImageRepository, or ErrNotFound.
func (s *Store) Get(key types.NamespacedName) (List, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if v, ok := s.cache.Get(key.String()); ok {
		return v.(List), nil
	}
	b, err := os.ReadFile(s.path(key))
	if errors.Is(err, fs.ErrNotExist) {
		return List{}, ErrNotFound
	}
	if err != nil {
		return List{}, err
	}
	var l List
	if err := json.Unmarshal(b, &l); err != nil {
		return List{}, fmt.Errorf("stored tags of %s are unreadable: %w", key, err)
	}
	s.cache.Add(key.String(), l)
	s.revs[key.String()] = l.Revision
	return l, nil
}

// Delete forgets the tags of an ImageRepository.
func (s *Store) Delete(key types.NamespacedName) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cache.Remove(key.String())
	delete(s.revs, key.String())
	err := os.Remove(s.path(key))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return err
}

// path is the file of a repository: namespace and name are DNS labels and subdomains, so they
// are safe path elements.
func (s *Store) path(key types.NamespacedName) string {
	return filepath.Join(s.dir, key.Namespace, key.Name+".json")
}
