// Package storage keeps the artifacts source-controller publishes: content-addressed files under
// <root>/<kind>/<namespace>/<name>/<sha256>.tar.gz, served read-only over HTTP, with the older
// ones of each object garbage collected. A file is trusted only once its content was hashed and
// found equal to its digest; it is hashed again whenever it changed on disk since (verify.go).
package storage

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fluxcd/pkg/apis/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Storage is the artifact folder of one controller.
type Storage struct {
	// Root is the folder on disk.
	Root string
	// BaseURL is the advertised address artifacts are served at, e.g. http://source.plumb-system.
	BaseURL string
	// Keep is how many artifacts of each object stay on disk, the current one included (>= 1).
	Keep int

	mu sync.Mutex
	// checked holds, per file, what stat said of it when its content last matched its digest.
	checked map[string]checkedFile
	// hashed counts the files read to be checked.
	hashed atomic.Int64
	// writing holds the temporary files this process is writing; started is when the storage
	// was opened: a temporary file older than that is left by a process that died mid-write.
	writing map[string]bool
	started time.Time
}

// New makes the root folder and returns the storage.
func New(root, baseURL string, keep int) (*Storage, error) {
	if err := os.MkdirAll(root, 0o755); err != nil {
		return nil, fmt.Errorf("storage %s: %w", root, err)
	}
	if keep < 1 {
		keep = 1
	}
	return &Storage{Root: root, BaseURL: strings.TrimSuffix(baseURL, "/"), Keep: keep, started: time.Now()}, nil
}

// Object names the folder of one object's artifacts.
type Object struct {
	Kind, Namespace, Name string
}

// Dir is the object's folder, relative to the root, slash-separated.
func Dir(o Object) string {
	return path.Join(strings.ToLower(o.Kind), o.Namespace, o.Name)
}

// ErrIO wraps the failures of the storage itself (disk full, permissions), as opposed to those
// of the content being written.
var ErrIO = errors.New("artifact storage")

func ioErr(err error) error { return fmt.Errorf("%w: %w", ErrIO, err) }

// Write streams a new artifact through write into the object's folder and returns it with its
// digest, size and URL. The file is synced before it is renamed into place, so a crash never
// leaves a partial file under an artifact's name. A failed write leaves nothing behind; write's
// own error is returned as it is.
func (s *Storage) Write(o Object, revision string, write func(io.Writer) error) (*meta.Artifact, error) {
	dir := filepath.Join(s.Root, filepath.FromSlash(Dir(o)))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, ioErr(err)
	}
	f, err := os.CreateTemp(dir, ".tmp-*")
	if err != nil {
		return nil, ioErr(err)
	}
	tmp := f.Name()
	s.setWriting(tmp, true)
	defer func() {
		_ = os.Remove(tmp) // a no-op after the rename
		s.setWriting(tmp, false)
	}()
	h := sha256.New()
	cw := &countWriter{w: f}
	if err := write(io.MultiWriter(cw, h)); err != nil {
		_ = f.Close()
		if cw.err != nil {
			return nil, ioErr(cw.err)
		}
		return nil, err
	}
	if err := errors.Join(f.Sync(), f.Close()); err != nil {
		return nil, ioErr(err)
	}
	sum := hex.EncodeToString(h.Sum(nil))
	rel := path.Join(Dir(o), sum+".tar.gz")
	if err := os.Chmod(tmp, 0o644); err != nil {
		return nil, ioErr(err)
	}
	dst := filepath.Join(s.Root, filepath.FromSlash(rel))
	if err := os.Rename(tmp, dst); err != nil {
		return nil, ioErr(err)
	}
	// Hashed while written: not read again to be trusted.
	s.remember("sha256:"+sum, dst)
	return s.artifact(rel, revision, "sha256:"+sum, cw.n), nil
}

// Adopt publishes an artifact another object already has (same content) for o: a hard link, so
// no bytes are copied or rebuilt. A file that does not match its digest is not adopted.
func (s *Storage) Adopt(o Object, from *meta.Artifact, revision string) (*meta.Artifact, error) {
	src, err := s.file(from)
	if err != nil {
		return nil, err
	}
	if err := s.verify(src, from.Digest); err != nil {
		return nil, err
	}
	rel := path.Join(Dir(o), path.Base(from.Path))
	dst := filepath.Join(s.Root, filepath.FromSlash(rel))
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return nil, ioErr(err)
	}
	if src != dst {
		if err := os.Link(src, dst); err != nil && !errors.Is(err, fs.ErrExist) {
			return nil, ioErr(err)
		}
		// A new link changes the file's stat (its link count and ctime), not its content,
		// checked just above.
		s.remember(from.Digest, src, dst)
	}
	var size int64
	if from.Size != nil {
		size = *from.Size
	}
	a := s.artifact(rel, revision, from.Digest, size)
	a.Metadata = maps.Clone(from.Metadata)
	return a, nil
}

func (s *Storage) artifact(rel, revision, digest string, size int64) *meta.Artifact {
	return &meta.Artifact{
		Path:           rel,
		URL:            s.URL(&meta.Artifact{Path: rel}),
		Revision:       revision,
		Digest:         digest,
		Size:           &size,
		LastUpdateTime: metav1.Now(),
	}
}

// file returns the artifact's file on disk; a path that would leave the root is refused.
func (s *Storage) file(a *meta.Artifact) (string, error) {
	if a == nil || a.Path == "" || path.IsAbs(a.Path) || !fs.ValidPath(a.Path) {
		return "", fmt.Errorf("%w: artifact path %q is not inside the storage", ErrIO, pathOf(a))
	}
	return filepath.Join(s.Root, filepath.FromSlash(a.Path)), nil
}

func pathOf(a *meta.Artifact) string {
	if a == nil {
		return ""
	}
	return a.Path
}

// Has reports whether the artifact's file is on disk with the recorded size, and its content
// matches the recorded digest: a file is hashed once per process, and again only when it
// changed on disk since, so a corrupted or replaced file is never taken for the artifact.
func (s *Storage) Has(a *meta.Artifact) bool {
	f, err := s.file(a)
	if err != nil {
		return false
	}
	info, err := os.Stat(f)
	if err != nil || !info.Mode().IsRegular() || a.Size != nil && info.Size() != *a.Size {
		return false
	}
	return s.verify(f, a.Digest) == nil
}

// Open opens the artifact's file for reading.
func (s *Storage) Open(a *meta.Artifact) (*os.File, error) {
	f, err := s.file(a)
	if err != nil {
		return nil, err
	}
	return os.Open(f)
}

// URL returns the address the artifact is served at now (it changes with BaseURL).
func (s *Storage) URL(a *meta.Artifact) string {
	return s.BaseURL + "/" + a.Path
}

// GC deletes all but the newest Keep artifacts of the object, never the current one, and the
// temporary files of writes that ended without a rename (a killed process).
func (s *Storage) GC(o Object, current *meta.Artifact) error {
	dir := filepath.Join(s.Root, filepath.FromSlash(Dir(o)))
	entries, err := os.ReadDir(dir)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return err
	}
	type file struct {
		name string
		mod  time.Time
	}
	var files []file
	for _, e := range entries {
		info, err := e.Info()
		if err != nil || !e.Type().IsRegular() {
			continue
		}
		if strings.HasPrefix(e.Name(), ".tmp-") && !s.leftover(filepath.Join(dir, e.Name()), info.ModTime()) {
			continue // possibly being written
		}
		files = append(files, file{e.Name(), info.ModTime()})
	}
	sort.Slice(files, func(i, j int) bool { return files[i].mod.After(files[j].mod) })
	keepName := ""
	if current != nil {
		keepName = path.Base(current.Path)
	}
	var errs []error
	kept := 0
	for _, f := range files {
		if f.name == keepName || !strings.HasPrefix(f.name, ".tmp-") && kept < s.Keep-1 {
			if f.name != keepName {
				kept++
			}
			continue
		}
		if err := os.Remove(filepath.Join(dir, f.name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
		s.forget(filepath.Join(dir, f.name))
	}
	return errors.Join(errs...)
}

func (s *Storage) setWriting(tmp string, on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !on {
		delete(s.writing, tmp)
		return
	}
	if s.writing == nil {
		s.writing = map[string]bool{}
	}
	s.writing[tmp] = true
}

// leftover tells whether a temporary file modified at mod is no write in progress: not one of
// this process's, and older than the storage (a process killed mid-write left it) or than an
// hour. Only the leader writes and collects, so a file of an earlier process is dead once this
// one collects.
func (s *Storage) leftover(tmp string, mod time.Time) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.writing[tmp] {
		return false
	}
	return mod.Before(s.started) || time.Since(mod) > time.Hour
}

// Delete removes every artifact of the object.
func (s *Storage) Delete(o Object) error {
	dir := filepath.Join(s.Root, filepath.FromSlash(Dir(o)))
	s.forgetUnder(dir)
	return os.RemoveAll(dir)
}

// Handler serves the artifacts read-only; folders are not listed. An artifact whose content no
// longer matches the digest its name holds is refused with 500, never served.
func (s *Storage) Handler() http.Handler {
	files := http.FileServer(http.Dir(s.Root))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		if strings.HasSuffix(r.URL.Path, "/") || strings.Contains(r.URL.Path, "/.tmp-") {
			http.NotFound(w, r)
			return
		}
		if err := s.verifyServed(r.URL.Path); err != nil {
			http.Error(w, "artifact "+path.Clean("/"+r.URL.Path)+" does not match its digest: it is not served until it is written again", http.StatusInternalServerError)
			return
		}
		files.ServeHTTP(w, r)
	})
}

// countWriter counts what it writes to w and keeps w's error apart from the caller's.
type countWriter struct {
	w   io.Writer
	n   int64
	err error
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	if err != nil {
		c.err = err
	}
	return n, err
}
