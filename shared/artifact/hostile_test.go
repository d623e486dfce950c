package artifact_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/plumb-dev/plumb/shared/artifact"
)

// hostileStream gzips, as it is read, a small valid tarball followed by extra bytes of fill in
// the same gzip stream, so that a test can offer tens of MiB of decompressed data without
// holding them. close stops the writer and says how many extra bytes it wrote.
type hostileStream struct {
	io.Reader
	pr   *io.PipeReader
	done chan int64
}

func newHostileStream(t *testing.T, tarball []byte, extra int64, fill byte) *hostileStream {
	t.Helper()
	pr, pw := io.Pipe()
	s := &hostileStream{Reader: pr, pr: pr, done: make(chan int64, 1)}
	go func() {
		var written int64
		defer func() { s.done <- written }()
		gz, _ := gzip.NewWriterLevel(pw, gzip.BestSpeed)
		if _, err := gz.Write(tarball); err != nil {
			pw.CloseWithError(err)
			return
		}
		chunk := bytes.Repeat([]byte{fill}, 1<<20)
		for written < extra {
			n, err := gz.Write(chunk[:min(int64(len(chunk)), extra-written)])
			written += int64(n)
			if err != nil {
				pw.CloseWithError(err)
				return
			}
		}
		pw.CloseWithError(gz.Close())
	}()
	t.Cleanup(func() { s.close() })
	return s
}

func (s *hostileStream) close() int64 {
	s.pr.CloseWithError(errors.New("reader done"))
	n, ok := <-s.done
	if ok {
		close(s.done)
	}
	return n
}

// TestWalkRefusesDataAfterTheEnd (finding 8): the byte limit counted tar content only, so a
// small artifact whose gzip stream went on for GiB after the tar end-of-archive was
// decompressed to the end (to check the gzip checksum) and accepted.
func TestWalkRefusesDataAfterTheEnd(t *testing.T) {
	const extra = 64 << 20
	lim := artifact.Limits{MaxFiles: 10, MaxBytes: 1 << 20, MaxStreamBytes: 2 << 20}
	tarball := rawTar(t, []raw{reg("kustomization.yaml", "resources: []\n"), reg("app.yaml", "kind: ConfigMap\n")})
	for _, tc := range []struct {
		name string
		fill byte
	}{
		{name: "non-zero data", fill: 'A'},
		{name: "zero blocks far beyond the padding of a tar writer", fill: 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newHostileStream(t, tarball, extra, tc.fill)
			err := artifact.Walk(s, lim, func(_ artifact.Entry, body io.Reader) error {
				_, err := io.Copy(io.Discard, body)
				return err
			})
			written := s.close()
			if !errors.Is(err, artifact.ErrUnsafe) {
				t.Errorf("got %v, want ErrUnsafe", err)
			}
			// Refused early, not after decompressing everything.
			if written >= extra/2 {
				t.Errorf("Walk read %d of the %d extra bytes before returning", written, extra)
			}
		})
	}
}

// TestWalkAcceptsTarWriterPadding: GNU tar and bsdtar pad an archive with zeros to a record of
// 10 KiB; Go's archive/tar writes the two end-of-archive blocks only.
func TestWalkAcceptsTarWriterPadding(t *testing.T) {
	tarball := rawTar(t, []raw{reg("a", "1")})
	record := (len(tarball) + 10239) / 10240 * 10240
	for _, tc := range []struct {
		name   string
		zeros  int
		unsafe bool
	}{
		{name: "none", zeros: 0},
		{name: "to a 10 KiB record", zeros: record - len(tarball)},
		{name: "a whole record more", zeros: 10240},
		{name: "one byte over a record", zeros: 10241, unsafe: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data := gzipBytes(t, append(slices.Clone(tarball), make([]byte, tc.zeros)...))
			err := artifact.Walk(bytes.NewReader(data), artifact.DefaultLimits, func(artifact.Entry, io.Reader) error { return nil })
			if tc.unsafe != errors.Is(err, artifact.ErrUnsafe) || (!tc.unsafe && err != nil) {
				t.Errorf("got %v, want unsafe: %v", err, tc.unsafe)
			}
		})
	}
}

// TestWalkBoundsTheWholeStream: headers count as well as content. "./" entries are skipped
// without being counted as files, so a run of them cost decompression with no bound.
func TestWalkBoundsTheWholeStream(t *testing.T) {
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	for range 4096 { // 2 MiB of headers
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: "./", Mode: 0o755}); err != nil {
			t.Fatal(err)
		}
	}
	if err := errors.Join(tw.Close(), gz.Close()); err != nil {
		t.Fatal(err)
	}
	lim := artifact.Limits{MaxFiles: 10, MaxBytes: 1 << 10, MaxStreamBytes: 1 << 20}
	err := artifact.Walk(bytes.NewReader(buf.Bytes()), lim, func(artifact.Entry, io.Reader) error { return nil })
	if !errors.Is(err, artifact.ErrUnsafe) {
		t.Errorf("got %v, want ErrUnsafe", err)
	}
	// When not set, the bound is MaxBytes plus 4 KiB per entry MaxFiles allows.
	lim.MaxStreamBytes = 0
	err = artifact.Walk(bytes.NewReader(buf.Bytes()), lim, func(artifact.Entry, io.Reader) error { return nil })
	if !errors.Is(err, artifact.ErrUnsafe) {
		t.Errorf("derived bound: got %v, want ErrUnsafe", err)
	}
}

// TestExtractRefusalLeavesNothing (finding 9): a refused archive left what it had unpacked so far
// (900 MiB after "content larger than 1 GiB", 100,000 files after "more than 100,000 entries"),
// which retries could add up to a full disk.
func TestExtractRefusalLeavesNothing(t *testing.T) {
	many := make([]file, 50)
	for i := range many {
		many[i] = file{name: fmt.Sprintf("d%d/f%d", i%5, i), body: "x"}
	}
	lim := artifact.Limits{MaxFiles: 40, MaxBytes: 64}
	tooMany := writeArtifact(t, many)
	tooLarge := writeArtifact(t, []file{{name: "a", body: strings.Repeat("a", 40)}, {name: "b", body: strings.Repeat("b", 40)}})
	trailing := gzipBytes(t, append(rawTar(t, []raw{reg("a", "1")}), "not zeros"...))
	for _, tc := range []struct {
		name string
		data []byte
	}{
		{name: "more entries than the limit", data: tooMany},
		{name: "more content than the limit", data: tooLarge},
		{name: "data after the end", data: trailing},
	} {
		t.Run(tc.name+", no destination yet", func(t *testing.T) {
			s := newSandbox(t)
			if err := artifact.Extract(bytes.NewReader(tc.data), s.dest, lim); !errors.Is(err, artifact.ErrUnsafe) {
				t.Fatalf("got %v, want ErrUnsafe", err)
			}
			if names := namesIn(t, s.base); !slices.Equal(names, []string{"sibling"}) {
				t.Errorf("after a refusal the parent folder holds %q, want only the sibling", names)
			}
			s.checkNothingOutside(t)
		})
		t.Run(tc.name+", previous content kept", func(t *testing.T) {
			s := newSandbox(t)
			if err := artifact.Extract(bytes.NewReader(writeArtifact(t, sampleFiles)), s.dest, lim); err != nil {
				t.Fatal(err)
			}
			if err := artifact.Extract(bytes.NewReader(tc.data), s.dest, lim); !errors.Is(err, artifact.ErrUnsafe) {
				t.Fatalf("got %v, want ErrUnsafe", err)
			}
			if names := namesIn(t, s.base); !slices.Equal(names, []string{"dest", "sibling"}) {
				t.Errorf("after a refusal the parent folder holds %q, want dest and sibling", names)
			}
			if tree := treeOf(t, s.dest); !slices.Equal(tree, sampleTree) {
				t.Errorf("after a refusal dest holds:\n%q\nwant the previous content:\n%q", tree, sampleTree)
			}
		})
	}
}

// TestExtractReplacesTheWholeFolder: dest ends up holding the archive's content and nothing of
// what was there before.
func TestExtractReplacesTheWholeFolder(t *testing.T) {
	s := newSandbox(t)
	if err := os.MkdirAll(filepath.Join(s.dest, "old"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(s.dest, "old", "stale"), []byte("stale"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := artifact.Extract(bytes.NewReader(writeArtifact(t, sampleFiles)), s.dest, artifact.DefaultLimits); err != nil {
		t.Fatal(err)
	}
	if tree := treeOf(t, s.dest); !slices.Equal(tree, sampleTree) {
		t.Errorf("dest holds:\n%q\nwant:\n%q", tree, sampleTree)
	}
	if names := namesIn(t, s.base); !slices.Equal(names, []string{"dest", "sibling"}) {
		t.Errorf("the parent folder holds %q, want dest and sibling", names)
	}
}

func TestExtractRefusesADestinationThatIsNoFolder(t *testing.T) {
	s := newSandbox(t)
	if err := os.Symlink(s.sibling, s.dest); err != nil {
		t.Fatal(err)
	}
	if err := artifact.Extract(bytes.NewReader(writeArtifact(t, sampleFiles)), s.dest, artifact.DefaultLimits); err == nil {
		t.Error("Extract through a symlinked destination succeeded, want an error")
	}
	if names := namesIn(t, s.base); !slices.Equal(names, []string{"dest", "sibling"}) {
		t.Errorf("the parent folder holds %q, want dest and sibling", names)
	}
	s.checkNothingOutside(t)
}

func namesIn(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return names
}
