package artifacttest

import (
	"crypto/sha256"
	"fmt"
	"io"
	"net/http"
	"testing"
)

func TestPublishServesTheBytesAtTheirDigest(t *testing.T) {
	s := NewServer()
	defer s.Close()
	data := []byte("a tarball")
	a := s.Publish("main@sha1:abc", ".tar.gz", data)
	if want := fmt.Sprintf("sha256:%x", sha256.Sum256(data)); a.Digest != want || a.Revision != "main@sha1:abc" || *a.Size != int64(len(data)) {
		t.Fatalf("artifact %+v, want digest %s", a, want)
	}
	resp, err := http.Get(a.URL)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if string(got) != string(data) {
		t.Errorf("served %q, want %q", got, data)
	}
	resp, err = http.Get(s.URL + "/missing.tar.gz")
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("unpublished path: status %d, want 404", resp.StatusCode)
	}
}
