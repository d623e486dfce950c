package bucket

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"testing"
)

// The revision is Flux's: sha256 of "<key> <etag>\n" lines in key order.
func TestDigest(t *testing.T) {
	sum := sha256.Sum256([]byte("a.yaml 1f2e\ndir/b.yaml 3c4d\n"))
	want := "sha256:" + hex.EncodeToString(sum[:])
	for _, tc := range []struct {
		name    string
		objects []Object
		want    string
	}{
		{"two objects", []Object{{Key: "a.yaml", ETag: "1f2e"}, {Key: "dir/b.yaml", ETag: "3c4d", Size: 9}}, want},
		{"empty", nil, "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Digest(tc.objects); got != tc.want {
				t.Errorf("Digest = %s, want %s", got, tc.want)
			}
		})
	}
	if Digest([]Object{{Key: "a.yaml", ETag: "1f2e"}}) == Digest([]Object{{Key: "a.yaml", ETag: "1f2f"}}) {
		t.Error("a changed ETag must change the revision")
	}
}

func TestNew_RefusesEndpointsWithSchemeOrPath(t *testing.T) {
	for _, ep := range []string{"", "https://s3.example.com", "s3.example.com/bucket"} {
		if _, err := New(Options{Endpoint: ep, Bucket: "b"}); !errors.Is(err, ErrInvalid) {
			t.Errorf("New(%q) = %v, want ErrInvalid", ep, err)
		}
	}
	if _, err := New(Options{Endpoint: "127.0.0.1:9000", Bucket: "b", Insecure: true}); err != nil {
		t.Errorf("New(host:port) = %v", err)
	}
}
