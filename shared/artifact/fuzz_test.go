package artifact_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/plumb-dev/plumb/shared/artifact"
)

// TestMain lowers the default time spent minimizing each new fuzz input: tarballs are at least
// 512 bytes and the byte minimizer is quadratic, so the default of 60s per input would use up a
// short -fuzztime on the first inputs found. An explicit -fuzzminimizetime is kept.
func TestMain(m *testing.M) {
	flag.Parse()
	explicit := false
	flag.Visit(func(f *flag.Flag) { explicit = explicit || f.Name == "test.fuzzminimizetime" })
	if !explicit {
		if err := flag.Set("test.fuzzminimizetime", "1s"); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
	}
	os.Exit(m.Run())
}

// fuzzLimits are small, so that the fuzzer reaches them.
var fuzzLimits = artifact.Limits{MaxFiles: 32, MaxBytes: 1 << 16, MaxStreamBytes: 1 << 17}

// maxTrailingZeros is the zero padding a tar writer may leave after the end of the archive.
const maxTrailingZeros = 20 * 512

// addSeeds adds valid and malicious archives to the corpus. The fuzz input is an uncompressed
// tarball, which the targets gzip themselves (so mutations reach the tar headers) and also use
// as is (so they reach the gzip reader); gzipped seeds are added too for the latter.
func addSeeds(f *testing.F) {
	many := make([]raw, fuzzLimits.MaxFiles+1)
	for i := range many {
		many[i] = reg(fmt.Sprintf("f%d", i), "x")
	}
	// "./" entries are not counted as files: only the stream bound stops them.
	dots := make([]raw, fuzzLimits.MaxStreamBytes/512+1)
	for i := range dots {
		dots[i] = dir("./")
	}
	seeds := [][]raw{
		// Valid.
		nil,
		{reg("a.txt", "hello")},
		{{hdr: tar.Header{Typeflag: tar.TypeReg, Name: "bin/run", Mode: 0o755}, body: "#!/bin/sh\n"}, reg("bin/data", "x")},
		{dir("a/"), reg("a/b/c", "deep"), reg("./a/top", "top")},
		{reg("a", "A"), symlink("l", "a"), symlink("d/up", "../a"), symlink("d/root", ".."), symlink("d/self", ".")},
		{reg("a", "1"), reg("a", "2"), symlink("a", "b")},
		// Malicious.
		{reg("/tmp/pwned", "x")},
		{reg("../pwned", "x")},
		{reg("a/../../pwned", "x")},
		{symlink("etc", "/etc")},
		{symlink("a/l", "../../pwned")},
		{symlink("l", "."), reg("l/x", "x")},
		{symlink("l", "."), symlink("m", "l/..")},
		{symlink("a/b/up", "../.."), symlink("x", "a/b/up/..")},
		{{hdr: tar.Header{Typeflag: tar.TypeChar, Name: "null", Devmajor: 1, Devminor: 3}}},
		{{hdr: tar.Header{Typeflag: tar.TypeFifo, Name: "pipe"}}},
		{reg("a", "x"), {hdr: tar.Header{Typeflag: tar.TypeLink, Name: "h", Linkname: "a"}}},
		many,
		{reg("big", strings.Repeat("z", int(fuzzLimits.MaxBytes)+1))},
		dots,
	}
	for _, s := range seeds {
		// The end-of-archive blocks are optional (the reader stops at EOF on a block boundary);
		// dropping them keeps inputs, and so the work of the fuzzer, smaller.
		tb := rawTar(f, s)
		for len(tb) >= 512 && bytes.Count(tb[len(tb)-512:], []byte{0}) == 512 {
			tb = tb[:len(tb)-512]
		}
		f.Add(tb)
		f.Add(gzipBytes(f, tb))
	}
	f.Add(writeArtifact(f, []file{{name: "a", body: "1", exec: true}, {name: "l", link: "a"}}))
	// After the end of the archive: a tar writer's padding, too much of it, and data.
	end := rawTar(f, []raw{reg("a", "1")})
	for _, tail := range [][]byte{make([]byte, maxTrailingZeros), make([]byte, maxTrailingZeros+1), []byte("trailing data")} {
		tb := append(slices.Clone(end), tail...)
		f.Add(tb)
		f.Add(gzipBytes(f, tb))
	}
	f.Add([]byte("not a tarball"))
}

var gzipPool = sync.Pool{New: func() any {
	w, _ := gzip.NewWriterLevel(nil, gzip.NoCompression)
	return w
}}

// cheapGzip gzips without the cost of a new compressor per fuzz input.
func cheapGzip(b []byte) []byte {
	w := gzipPool.Get().(*gzip.Writer)
	defer gzipPool.Put(w)
	var buf bytes.Buffer
	w.Reset(&buf)
	_, _ = w.Write(b)
	_ = w.Close()
	return buf.Bytes()
}

func FuzzWalk(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, in := range [][]byte{data, cheapGzip(data)} {
			var files int
			var total, read int64
			links := map[string]bool{}
			err := artifact.Walk(bytes.NewReader(in), fuzzLimits, func(e artifact.Entry, body io.Reader) error {
				files++
				if e.Name == "" || e.Name == "." || path.IsAbs(e.Name) || path.Clean(e.Name) != e.Name ||
					strings.ContainsAny(e.Name, "\\\x00") || slices.Contains(strings.Split(e.Name, "/"), "..") {
					t.Errorf("unclean entry name %q", e.Name)
				}
				for p := path.Dir(e.Name); p != "."; p = path.Dir(p) {
					if links[p] {
						t.Errorf("entry %q below the symlink %q", e.Name, p)
					}
				}
				if e.Linkname != "" {
					links[e.Name] = true
					if e.Size != 0 || e.Executable {
						t.Errorf("symlink %q has size %d, executable %v", e.Name, e.Size, e.Executable)
					}
					if r := path.Join(path.Dir(e.Name), e.Linkname); path.IsAbs(e.Linkname) || r == ".." || strings.HasPrefix(r, "../") {
						t.Errorf("symlink %q -> %q leaves the root", e.Name, e.Linkname)
					}
				} else {
					delete(links, e.Name)
				}
				if e.Size < 0 {
					t.Errorf("entry %q has size %d", e.Name, e.Size)
				}
				total += e.Size
				n, err := io.Copy(io.Discard, body)
				read += n
				if err != nil {
					return err
				}
				if n != e.Size {
					t.Errorf("entry %q: read %d bytes, size says %d", e.Name, n, e.Size)
				}
				return nil
			})
			if err != nil {
				continue
			}
			if files > fuzzLimits.MaxFiles {
				t.Errorf("Walk succeeded with %d entries, over the limit of %d", files, fuzzLimits.MaxFiles)
			}
			if total > fuzzLimits.MaxBytes || read > fuzzLimits.MaxBytes {
				t.Errorf("Walk succeeded with %d bytes declared, %d read, over the limit of %d", total, read, fuzzLimits.MaxBytes)
			}
			checkStream(t, in)
		}
	})
}

// checkStream checks the decompressed stream of an archive Walk accepted: no longer than the
// limits allow, and nothing but a tar writer's zero padding after the end of the archive.
func checkStream(t *testing.T, in []byte) {
	t.Helper()
	gz, err := gzip.NewReader(bytes.NewReader(in))
	if err != nil {
		t.Fatalf("Walk accepted what gzip refuses: %v", err)
	}
	plain, err := io.ReadAll(io.LimitReader(gz, fuzzLimits.MaxStreamBytes+1))
	if err != nil {
		t.Fatalf("Walk accepted a stream gzip cannot read: %v", err)
	}
	if int64(len(plain)) > fuzzLimits.MaxStreamBytes {
		t.Fatalf("Walk accepted a stream of over %d bytes, the limit", fuzzLimits.MaxStreamBytes)
	}
	// Where the archive ends; a reader without Seek, so that archive/tar reads every byte.
	r := &countingReader{r: bytes.NewReader(plain)}
	tr := tar.NewReader(r)
	for {
		_, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("Walk accepted what archive/tar refuses: %v", err)
		}
	}
	rest := plain[r.n:]
	if len(rest) > maxTrailingZeros || slices.ContainsFunc(rest, func(b byte) bool { return b != 0 }) {
		t.Errorf("Walk accepted %d bytes after the end of the archive (not all zeros, or over %d)", len(rest), maxTrailingZeros)
	}
}

type countingReader struct {
	r io.Reader
	n int
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}

func FuzzExtract(f *testing.F) {
	addSeeds(f)
	// One sandbox for all inputs, emptied for each: fresh folders per input cost more than
	// the extraction itself. Fuzz inputs run one at a time in a process.
	s := newSandbox(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, in := range [][]byte{data, cheapGzip(data)} {
			// Emptied before, not after: a skip or failure ends the call early.
			if err := os.RemoveAll(s.dest); err != nil {
				t.Fatal(err)
			}
			walkErr := artifact.Walk(bytes.NewReader(in), fuzzLimits, func(artifact.Entry, io.Reader) error { return nil })
			err := artifact.Extract(bytes.NewReader(in), s.dest, fuzzLimits)
			s.checkNothingOutside(t)
			if _, statErr := os.Lstat(s.dest); err != nil && statErr == nil {
				t.Errorf("Extract failed (%v) and left %s behind", err, s.dest)
			}
			// Extract may stop earlier than Walk on a write error, but never accepts what Walk
			// refuses.
			if err == nil && walkErr != nil {
				t.Fatalf("Extract succeeded where Walk failed with %v", walkErr)
			}
			if err == nil {
				checkExtracted(t, s.dest)
			}
		}
	})
}

// checkExtracted checks what a successful Extract left in dest.
func checkExtracted(t *testing.T, dest string) {
	t.Helper()
	var entries int
	var size int64
	var escaping []string
	err := filepath.WalkDir(dest, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dest, p)
		if err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) || filepath.IsAbs(rel) {
			t.Errorf("%s lies outside %s", p, dest)
		}
		if rel == "." {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case d.IsDir():
		case info.Mode()&fs.ModeSymlink != 0:
			entries++
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			lexical := filepath.Join(filepath.Dir(rel), target)
			if filepath.IsAbs(target) || lexical == ".." || strings.HasPrefix(lexical, ".."+string(filepath.Separator)) {
				t.Errorf("symlink %s -> %s leaves %s", rel, target, dest)
			} else if !resolvesInside(dest, rel) {
				escaping = append(escaping, rel+" -> "+target)
			}
		case info.Mode().IsRegular():
			entries++
			size += info.Size()
		default:
			t.Errorf("%s has mode %v", rel, info.Mode())
		}
		return nil
	})
	if err != nil {
		t.Fatalf("walk %s: %v", dest, err)
	}
	if entries > fuzzLimits.MaxFiles {
		t.Errorf("extracted %d files and links, over the limit of %d", entries, fuzzLimits.MaxFiles)
	}
	if size > fuzzLimits.MaxBytes {
		t.Errorf("extracted %d bytes, over the limit of %d", size, fuzzLimits.MaxBytes)
	}
	if len(escaping) > 0 {
		t.Errorf("symlinks resolve outside the destination: %q", escaping)
	}
}

// escapingLinks lists the symlinks under dest that resolve, as the kernel would, outside it.
func escapingLinks(t testing.TB, dest string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dest, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.Type()&fs.ModeSymlink == 0 {
			return err
		}
		rel, err := filepath.Rel(dest, p)
		if err != nil {
			return err
		}
		if !resolvesInside(dest, rel) {
			target, _ := os.Readlink(p)
			out = append(out, rel+" -> "+target)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("walk %s: %v", dest, err)
	}
	return out
}

// resolvesInside follows rel from root as path resolution would, symlink by symlink, and
// reports whether it stays inside root. Paths that do not resolve (missing, not a folder, a
// loop) reach nothing, so they count as inside.
func resolvesInside(root, rel string) bool {
	todo := strings.Split(filepath.ToSlash(rel), "/")
	var stack []string
	for hops := 0; len(todo) > 0; {
		el := todo[0]
		todo = todo[1:]
		switch el {
		case "", ".":
			continue
		case "..":
			if len(stack) == 0 {
				return false
			}
			stack = stack[:len(stack)-1]
			continue
		}
		stack = append(stack, el)
		p := filepath.Join(append([]string{root}, stack...)...)
		info, err := os.Lstat(p)
		if err != nil {
			return true
		}
		switch {
		case info.Mode()&fs.ModeSymlink != 0:
			if hops++; hops > 255 {
				return true
			}
			target, err := os.Readlink(p)
			if err != nil {
				return true
			}
			if filepath.IsAbs(target) {
				return false
			}
			stack = stack[:len(stack)-1]
			todo = append(strings.Split(filepath.ToSlash(target), "/"), todo...)
		case !info.IsDir() && len(todo) > 0:
			return true
		}
	}
	return true
}
