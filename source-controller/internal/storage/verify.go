package storage

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strings"
)

// checkedFile is a file whose content matched digest when stat said stamp of it.
type checkedFile struct {
	stamp  stamp
	digest string
}

// errDigest marks a file whose content is not what its digest says.
var errDigest = errors.New("does not match its digest")

// verify hashes the file unless it is unchanged on disk since its content last matched digest.
// Only sha256 digests, the storage's own, can be checked.
func (s *Storage) verify(file, digest string) error {
	want, ok := strings.CutPrefix(digest, "sha256:")
	if !ok || len(want) != sha256.Size*2 {
		return fmt.Errorf("%w: %s: digest %q is not a sha256 digest", errDigest, file, digest)
	}
	f, err := os.Open(file)
	if err != nil {
		return err
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return err
	}
	st := stampOf(info)
	s.mu.Lock()
	c, found := s.checked[file]
	s.mu.Unlock()
	if found && c.stamp == st && c.digest == digest {
		return nil
	}
	s.hashed.Add(1)
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return err
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != want {
		s.forget(file)
		return fmt.Errorf("%w: %s is sha256:%s, not %s", errDigest, file, got, digest)
	}
	// The stamp is the one from before the read: a write during it moves the file's stamp on,
	// so the next check hashes again.
	s.record(file, checkedFile{stamp: st, digest: digest})
	return nil
}

// remember records files just written or linked, whose content is known to match digest.
func (s *Storage) remember(digest string, files ...string) {
	for _, file := range files {
		if info, err := os.Stat(file); err == nil {
			s.record(file, checkedFile{stamp: stampOf(info), digest: digest})
		}
	}
}

func (s *Storage) record(file string, c checkedFile) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.checked == nil {
		s.checked = map[string]checkedFile{}
	}
	s.checked[file] = c
}

func (s *Storage) forget(file string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.checked, file)
}

// forgetUnder forgets every file in dir and below.
func (s *Storage) forgetUnder(dir string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for file := range s.checked {
		if strings.HasPrefix(file, dir+string(filepath.Separator)) {
			delete(s.checked, file)
		}
	}
}

// contentAddressed matches the name of an artifact file: the sha256 of its content.
var contentAddressed = regexp.MustCompile(`^([0-9a-f]{64})\.tar\.gz$`)

// verifyServed checks the file an HTTP request asks for against the digest its name holds.
// Other names, and files that are not there, are left to the file server's answer.
func (s *Storage) verifyServed(urlPath string) error {
	p := path.Clean("/" + urlPath)
	m := contentAddressed.FindStringSubmatch(path.Base(p))
	if m == nil {
		return nil
	}
	err := s.verify(filepath.Join(s.Root, filepath.FromSlash(p)), "sha256:"+m[1])
	if errors.Is(err, errDigest) {
		return err
	}
	return nil
}
