package artifact_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"errors"
	"io"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/plumb-dev/plumb/shared/artifact"
)

// file is one entry given to artifact.Writer: a regular file, or a symlink when link is set.
type file struct {
	name string
	body string
	exec bool
	link string
}

// writeArtifact builds a tarball with artifact.Writer.
func writeArtifact(t testing.TB, files []file) []byte {
	t.Helper()
	var buf bytes.Buffer
	w := artifact.NewWriter(&buf)
	for _, f := range files {
		var err error
		if f.link != "" {
			err = w.Symlink(f.name, f.link)
		} else {
			err = w.File(f.name, f.exec, int64(len(f.body)), strings.NewReader(f.body))
		}
		if err != nil {
			t.Fatalf("write %s: %v", f.name, err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatalf("close writer: %v", err)
	}
	return buf.Bytes()
}

// raw is one entry of a hand-made tarball; body is written after hdr (hdr.Size is set from it
// unless already set).
type raw struct {
	hdr  tar.Header
	body string
}

func reg(name, body string) raw {
	return raw{hdr: tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644}, body: body}
}

func symlink(name, target string) raw {
	return raw{hdr: tar.Header{Typeflag: tar.TypeSymlink, Name: name, Linkname: target, Mode: 0o777}}
}

func dir(name string) raw {
	return raw{hdr: tar.Header{Typeflag: tar.TypeDir, Name: name, Mode: 0o755}}
}

// rawTar builds an uncompressed tarball with archive/tar directly, so that it may hold anything
// artifact.Writer would never write.
func rawTar(t testing.TB, entries []raw) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		hdr := e.hdr
		if hdr.Typeflag == tar.TypeReg && hdr.Size == 0 {
			hdr.Size = int64(len(e.body))
		}
		if err := tw.WriteHeader(&hdr); err != nil {
			t.Fatalf("header %q: %v", hdr.Name, err)
		}
		if _, err := io.WriteString(tw, e.body); err != nil {
			t.Fatalf("body %q: %v", hdr.Name, err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatalf("close tar: %v", err)
	}
	return buf.Bytes()
}

func gzipBytes(t testing.TB, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	if _, err := gz.Write(b); err != nil {
		t.Fatalf("gzip: %v", err)
	}
	if err := gz.Close(); err != nil {
		t.Fatalf("gzip: %v", err)
	}
	return buf.Bytes()
}

func rawTarGz(t testing.TB, entries []raw) []byte {
	return gzipBytes(t, rawTar(t, entries))
}

// sandbox is a destination folder with a sibling holding a marker, to detect writes that
// escape the destination.
type sandbox struct {
	base, dest, sibling string
}

const markerBody = "untouched"

func newSandbox(t testing.TB) sandbox {
	t.Helper()
	base := t.TempDir()
	s := sandbox{base: base, dest: filepath.Join(base, "dest"), sibling: filepath.Join(base, "sibling")}
	if err := os.Mkdir(s.sibling, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(s.sibling, "marker"), []byte(markerBody), 0o644); err != nil {
		t.Fatal(err)
	}
	return s
}

// checkNothingOutside fails when anything but dest and the untouched sibling lies in base.
func (s sandbox) checkNothingOutside(t testing.TB) {
	t.Helper()
	var names []string
	ents, err := os.ReadDir(s.base)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		names = append(names, e.Name())
	}
	if want := []string{"dest", "sibling"}; !slices.Equal(names, want) && !slices.Equal(names, want[1:]) {
		t.Errorf("base folder holds %v, want only %v", names, want)
	}
	ents, err = os.ReadDir(s.sibling)
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) != 1 || ents[0].Name() != "marker" {
		t.Errorf("sibling folder holds %v, want only marker", ents)
	}
	if b, err := os.ReadFile(filepath.Join(s.sibling, "marker")); err != nil || string(b) != markerBody {
		t.Errorf("marker = %q, %v; want %q", b, err, markerBody)
	}
}

// treeOf describes what lies under dir: "f name x body" ("x" when executable, else "-"),
// "l name target" and "d name". Only the executable bit is compared: the rest depends on the
// umask.
func treeOf(t testing.TB, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		if rel == "." {
			return nil
		}
		rel = filepath.ToSlash(rel)
		switch {
		case d.Type()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			out = append(out, "l "+rel+" "+target)
		case d.IsDir():
			out = append(out, "d "+rel)
		default:
			info, err := d.Info()
			if err != nil {
				return err
			}
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			x := "-"
			if info.Mode().Perm()&0o111 != 0 {
				x = "x"
			}
			out = append(out, "f "+rel+" "+x+" "+string(b))
		}
		return nil
	})
	if err != nil {
		t.Fatalf("walk %s: %v", dir, err)
	}
	return out
}

func TestRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		name  string
		files []file
		want  []string
	}{
		{
			name: "empty archive",
			want: nil,
		},
		{
			name:  "one file",
			files: []file{{name: "a.txt", body: "hello"}},
			want:  []string{"f a.txt - hello"},
		},
		{
			name:  "empty file",
			files: []file{{name: "empty"}},
			want:  []string{"f empty - "},
		},
		{
			name: "executable bit kept",
			files: []file{
				{name: "bin/run.sh", body: "#!/bin/sh\n", exec: true},
				{name: "bin/data", body: "x"},
			},
			want: []string{"d bin", "f bin/data - x", "f bin/run.sh x #!/bin/sh\n"},
		},
		{
			name: "nested folders implied",
			files: []file{
				{name: "a/b/c/deep.txt", body: "deep"},
				{name: "a/top.txt", body: "top"},
			},
			want: []string{"d a", "d a/b", "d a/b/c", "f a/b/c/deep.txt - deep", "f a/top.txt - top"},
		},
		{
			name: "symlinks inside the root",
			files: []file{
				{name: "a.txt", body: "A"},
				{name: "dir/b.txt", body: "B"},
				{name: "link", link: "a.txt"},
				{name: "dir/up", link: "../a.txt"},
				{name: "dir/self", link: "."},
				{name: "dir/root", link: ".."},
				{name: "dangling", link: "does/not/exist"},
			},
			want: []string{
				"f a.txt - A",
				"l dangling does/not/exist",
				"d dir",
				"f dir/b.txt - B",
				"l dir/root ..",
				"l dir/self .",
				"l dir/up ../a.txt",
				"l link a.txt",
			},
		},
		{
			name:  "binary content",
			files: []file{{name: "bin", body: "\x00\x01\xff\x1f\x8b"}},
			want:  []string{"f bin - \x00\x01\xff\x1f\x8b"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data := writeArtifact(t, tc.files)

			var walked []file
			err := artifact.Walk(bytes.NewReader(data), artifact.DefaultLimits, func(e artifact.Entry, body io.Reader) error {
				b, err := io.ReadAll(body)
				if err != nil {
					return err
				}
				if int64(len(b)) != e.Size {
					t.Errorf("%s: read %d bytes, entry says %d", e.Name, len(b), e.Size)
				}
				walked = append(walked, file{name: e.Name, body: string(b), exec: e.Executable, link: e.Linkname})
				return nil
			})
			if err != nil {
				t.Fatalf("Walk: %v", err)
			}
			if !slices.Equal(walked, tc.files) {
				t.Errorf("Walk gave %+v, want %+v", walked, tc.files)
			}

			s := newSandbox(t)
			if err := artifact.Extract(bytes.NewReader(data), s.dest, artifact.DefaultLimits); err != nil {
				t.Fatalf("Extract: %v", err)
			}
			if got := treeOf(t, s.dest); !slices.Equal(got, tc.want) {
				t.Errorf("extracted tree:\n%q\nwant:\n%q", got, tc.want)
			}
			s.checkNothingOutside(t)
		})
	}
}

func TestExtractReplacesExisting(t *testing.T) {
	s := newSandbox(t)
	if err := os.MkdirAll(filepath.Join(s.dest, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(s.dest, "a"), []byte("old"), 0o600); err != nil {
		t.Fatal(err)
	}
	// An existing link to outside must be replaced, not written through.
	if err := os.Symlink(filepath.Join(s.sibling, "marker"), filepath.Join(s.dest, "sub", "f")); err != nil {
		t.Fatal(err)
	}
	data := writeArtifact(t, []file{{name: "a", body: "new"}, {name: "sub/f", body: "replaced", exec: true}})
	if err := artifact.Extract(bytes.NewReader(data), s.dest, artifact.DefaultLimits); err != nil {
		t.Fatalf("Extract: %v", err)
	}
	want := []string{"f a - new", "d sub", "f sub/f x replaced"}
	if got := treeOf(t, s.dest); !slices.Equal(got, want) {
		t.Errorf("extracted tree:\n%q\nwant:\n%q", got, want)
	}
	s.checkNothingOutside(t)
}

func TestWriterDeterministic(t *testing.T) {
	for _, tc := range []struct {
		name  string
		files []file
	}{
		{name: "empty"},
		{name: "files", files: []file{{name: "a", body: "1"}, {name: "b/c", body: strings.Repeat("x", 100_000), exec: true}}},
		{name: "files and links", files: []file{{name: "a", body: "1"}, {name: "l", link: "a"}, {name: "d/l", link: "../a"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			first := writeArtifact(t, tc.files)
			second := writeArtifact(t, tc.files)
			if !bytes.Equal(first, second) {
				t.Errorf("two writes of the same input differ (%d and %d bytes)", len(first), len(second))
			}
			if sha256.Sum256(first) != sha256.Sum256(second) {
				t.Errorf("two writes of the same input hash differently")
			}

			// Times and owners are fixed, and there are no folder entries.
			zr, err := gzip.NewReader(bytes.NewReader(first))
			if err != nil {
				t.Fatal(err)
			}
			if !zr.ModTime.IsZero() || zr.Name != "" || zr.Comment != "" {
				t.Errorf("gzip header carries time %v, name %q, comment %q", zr.ModTime, zr.Name, zr.Comment)
			}
			tr := tar.NewReader(zr)
			for {
				hdr, err := tr.Next()
				if errors.Is(err, io.EOF) {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
				if hdr.ModTime.Unix() != 0 || hdr.Uid != 0 || hdr.Gid != 0 || hdr.Uname != "" || hdr.Gname != "" {
					t.Errorf("%s: time %v, owner %d:%d %q:%q; want epoch and root", hdr.Name, hdr.ModTime, hdr.Uid, hdr.Gid, hdr.Uname, hdr.Gname)
				}
				if hdr.Typeflag == tar.TypeDir {
					t.Errorf("%s: folder entry written", hdr.Name)
				}
			}
		})
	}
}

func TestExtractRefusesUnsafe(t *testing.T) {
	// Names are built per sandbox so that absolute names aim at the sibling folder.
	for _, tc := range []struct {
		name    string
		entries func(s sandbox) []raw
		limits  artifact.Limits
	}{
		{
			name:    "absolute path",
			entries: func(s sandbox) []raw { return []raw{reg(filepath.Join(s.sibling, "pwned"), "x")} },
		},
		{
			name:    "absolute path to base",
			entries: func(s sandbox) []raw { return []raw{reg(filepath.Join(s.base, "pwned"), "x")} },
		},
		{
			name:    "dot dot",
			entries: func(sandbox) []raw { return []raw{reg("../pwned", "x")} },
		},
		{
			name:    "dot dot into sibling",
			entries: func(sandbox) []raw { return []raw{reg("../sibling/marker", "overwritten")} },
		},
		{
			name:    "dot dot in the middle",
			entries: func(sandbox) []raw { return []raw{reg("a/../../pwned", "x")} },
		},
		{
			name:    "dot dot that stays inside",
			entries: func(sandbox) []raw { return []raw{reg("a/b/../c", "x")} },
		},
		{
			name:    "dot slash dot dot",
			entries: func(sandbox) []raw { return []raw{reg("./../pwned", "x")} },
		},
		{
			name:    "dot dot folder",
			entries: func(sandbox) []raw { return []raw{dir("../pwned/")} },
		},
		{
			name:    "dot dot symlink name",
			entries: func(sandbox) []raw { return []raw{symlink("../pwned", "dest")} },
		},
		{
			name:    "empty name",
			entries: func(sandbox) []raw { return []raw{reg("", "x")} },
		},
		{
			name:    "dot name",
			entries: func(sandbox) []raw { return []raw{reg(".", "x")} },
		},
		{
			name:    "backslash name",
			entries: func(sandbox) []raw { return []raw{reg(`..\pwned`, "x")} },
		},
		{
			name:    "symlink to /etc",
			entries: func(sandbox) []raw { return []raw{symlink("etc", "/etc")} },
		},
		{
			name:    "symlink to the sibling by absolute path",
			entries: func(s sandbox) []raw { return []raw{symlink("l", s.sibling)} },
		},
		{
			name:    "symlink to dot dot",
			entries: func(sandbox) []raw { return []raw{symlink("l", "..")} },
		},
		{
			name:    "nested symlink leaving the root",
			entries: func(sandbox) []raw { return []raw{symlink("a/l", "../../pwned")} },
		},
		{
			name:    "symlink leaving through a detour",
			entries: func(sandbox) []raw { return []raw{symlink("a/l", "b/../../../sibling")} },
		},
		{
			name:    "symlink with empty target",
			entries: func(sandbox) []raw { return []raw{symlink("l", "")} },
		},
		{
			name: "file below a symlink",
			entries: func(sandbox) []raw {
				return []raw{dir("sub/"), symlink("l", "sub"), reg("l/x", "x")}
			},
		},
		{
			name: "file below a symlink to the root",
			entries: func(sandbox) []raw {
				// The link itself is safe; what lies below it is not written through it.
				return []raw{symlink("a/l", ".."), reg("a/l/pwned", "x")}
			},
		},
		{
			name: "file deep below a symlink",
			entries: func(sandbox) []raw {
				return []raw{symlink("l", "."), reg("l/a/b/x", "x")}
			},
		},
		{
			name: "folder below a symlink",
			entries: func(sandbox) []raw {
				return []raw{symlink("l", "."), dir("l/sub/")}
			},
		},
		{
			name: "symlink below a symlink",
			entries: func(sandbox) []raw {
				return []raw{symlink("l", "."), symlink("l/m", "..")}
			},
		},
		{
			name: "file below a symlink through an unclean name",
			entries: func(sandbox) []raw {
				return []raw{symlink("l", "."), reg("./l//x", "x")}
			},
		},
		{
			name: "char device",
			entries: func(sandbox) []raw {
				return []raw{{hdr: tar.Header{Typeflag: tar.TypeChar, Name: "null", Devmajor: 1, Devminor: 3, Mode: 0o666}}}
			},
		},
		{
			name: "block device",
			entries: func(sandbox) []raw {
				return []raw{{hdr: tar.Header{Typeflag: tar.TypeBlock, Name: "sda", Devmajor: 8, Mode: 0o660}}}
			},
		},
		{
			name: "fifo",
			entries: func(sandbox) []raw {
				return []raw{{hdr: tar.Header{Typeflag: tar.TypeFifo, Name: "pipe", Mode: 0o644}}}
			},
		},
		{
			name: "hardlink",
			entries: func(sandbox) []raw {
				return []raw{reg("a", "x"), {hdr: tar.Header{Typeflag: tar.TypeLink, Name: "h", Linkname: "a"}}}
			},
		},
		{
			name: "hardlink to the sibling",
			entries: func(s sandbox) []raw {
				return []raw{{hdr: tar.Header{Typeflag: tar.TypeLink, Name: "h", Linkname: filepath.Join(s.sibling, "marker")}}}
			},
		},
		{
			name: "too many files",
			entries: func(sandbox) []raw {
				return []raw{reg("a", "1"), reg("b", "2"), reg("c", "3")}
			},
			limits: artifact.Limits{MaxFiles: 2, MaxBytes: 1 << 20},
		},
		{
			name: "too many entries counting folders and links",
			entries: func(sandbox) []raw {
				return []raw{dir("d/"), symlink("l", "d"), reg("a", "1")}
			},
			limits: artifact.Limits{MaxFiles: 2, MaxBytes: 1 << 20},
		},
		{
			name: "too many bytes",
			entries: func(sandbox) []raw {
				return []raw{reg("a", "123456"), reg("b", "123456")}
			},
			limits: artifact.Limits{MaxFiles: 10, MaxBytes: 10},
		},
		{
			name: "one file over the byte limit",
			entries: func(sandbox) []raw {
				return []raw{reg("a", strings.Repeat("z", 1<<16))}
			},
			limits: artifact.Limits{MaxFiles: 10, MaxBytes: 1 << 15},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newSandbox(t)
			lim := tc.limits
			if lim == (artifact.Limits{}) {
				lim = artifact.DefaultLimits
			}
			data := rawTarGz(t, tc.entries(s))

			err := artifact.Walk(bytes.NewReader(data), lim, func(artifact.Entry, io.Reader) error { return nil })
			if !errors.Is(err, artifact.ErrUnsafe) {
				t.Errorf("Walk: got %v, want an error wrapping ErrUnsafe", err)
			}

			err = artifact.Extract(bytes.NewReader(data), s.dest, lim)
			if !errors.Is(err, artifact.ErrUnsafe) {
				t.Errorf("Extract: got %v, want an error wrapping ErrUnsafe", err)
			}
			s.checkNothingOutside(t)
			if _, err := os.Stat(filepath.Join(s.base, "pwned")); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("pwned written next to dest: %v", err)
			}
		})
	}
}

func TestWalkLimitsAtTheEdge(t *testing.T) {
	data := rawTarGz(t, []raw{reg("a", "12345"), reg("b", "12345")})
	for _, tc := range []struct {
		name   string
		limits artifact.Limits
		unsafe bool
	}{
		{name: "exactly at both limits", limits: artifact.Limits{MaxFiles: 2, MaxBytes: 10}},
		{name: "zero means no limit", limits: artifact.Limits{}},
		{name: "one file short", limits: artifact.Limits{MaxFiles: 1, MaxBytes: 10}, unsafe: true},
		{name: "one byte short", limits: artifact.Limits{MaxFiles: 2, MaxBytes: 9}, unsafe: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := artifact.Walk(bytes.NewReader(data), tc.limits, func(artifact.Entry, io.Reader) error { return nil })
			if tc.unsafe && !errors.Is(err, artifact.ErrUnsafe) {
				t.Errorf("got %v, want ErrUnsafe", err)
			}
			if !tc.unsafe && err != nil {
				t.Errorf("got %v, want success", err)
			}
		})
	}
}

func TestWalkAcceptsUsualTarballs(t *testing.T) {
	for _, tc := range []struct {
		name    string
		entries []raw
		want    []string
	}{
		{
			name:    "folder entries skipped",
			entries: []raw{dir("a/"), reg("a/x", "1"), dir("a/b/")},
			want:    []string{"a/x"},
		},
		{
			name:    "leading dot slash cleaned",
			entries: []raw{reg("./a/x", "1"), symlink("./l", "a")},
			want:    []string{"a/x", "l"},
		},
		{
			name:    "double slashes cleaned",
			entries: []raw{reg("a//x", "1")},
			want:    []string{"a/x"},
		},
		{
			name:    "legacy regular type",
			entries: []raw{{hdr: tar.Header{Typeflag: 0 /* the pre-POSIX regular-file flag */, Name: "old", Size: 1, Format: tar.FormatGNU}, body: "1"}},
			want:    []string{"old"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			err := artifact.Walk(bytes.NewReader(rawTarGz(t, tc.entries)), artifact.DefaultLimits, func(e artifact.Entry, _ io.Reader) error {
				got = append(got, e.Name)
				return nil
			})
			if err != nil {
				t.Fatalf("Walk: %v", err)
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}

func TestWalkExecutable(t *testing.T) {
	for _, tc := range []struct {
		name string
		mode int64
		want bool
	}{
		{name: "0644", mode: 0o644},
		{name: "0600", mode: 0o600},
		{name: "0755", mode: 0o755, want: true},
		{name: "owner only", mode: 0o700, want: true},
		{name: "others only", mode: 0o601, want: true},
		{name: "setuid without exec", mode: 0o4644},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data := rawTarGz(t, []raw{{hdr: tar.Header{Typeflag: tar.TypeReg, Name: "f", Mode: tc.mode}, body: "x"}})
			var got []bool
			err := artifact.Walk(bytes.NewReader(data), artifact.DefaultLimits, func(e artifact.Entry, _ io.Reader) error {
				got = append(got, e.Executable)
				return nil
			})
			if err != nil || !slices.Equal(got, []bool{tc.want}) {
				t.Errorf("got %v, %v; want [%v]", got, err, tc.want)
			}
		})
	}
}

func TestWalkStopsOnVisitError(t *testing.T) {
	stop := errors.New("stop")
	var n int
	data := writeArtifact(t, []file{{name: "a"}, {name: "b"}})
	err := artifact.Walk(bytes.NewReader(data), artifact.DefaultLimits, func(artifact.Entry, io.Reader) error {
		n++
		return stop
	})
	if !errors.Is(err, stop) || n != 1 {
		t.Errorf("got %v after %d visits, want stop after 1", err, n)
	}
}

func TestExtractRefusesBrokenInput(t *testing.T) {
	valid := writeArtifact(t, []file{{name: "a", body: strings.Repeat("abc", 10_000)}})
	for _, tc := range []struct {
		name string
		data []byte
	}{
		{name: "empty", data: nil},
		{name: "text", data: []byte("this is not a tarball")},
		{name: "gzip magic only", data: []byte{0x1f, 0x8b}},
		{name: "uncompressed tar", data: rawTar(t, []raw{reg("a", "1")})},
		{name: "truncated gzip", data: valid[:len(valid)/2]},
		{name: "gzip of text", data: gzipBytes(t, []byte("hello, not a tar header"))},
		{name: "gzip of a truncated tar", data: gzipBytes(t, rawTar(t, []raw{reg("a", strings.Repeat("x", 4096))})[:1024])},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newSandbox(t)
			if err := artifact.Extract(bytes.NewReader(tc.data), s.dest, artifact.DefaultLimits); err == nil {
				t.Errorf("Extract succeeded, want an error")
			}
			err := artifact.Walk(bytes.NewReader(tc.data), artifact.DefaultLimits, func(_ artifact.Entry, body io.Reader) error {
				_, err := io.Copy(io.Discard, body)
				return err
			})
			if err == nil {
				t.Errorf("Walk succeeded, want an error")
			}
			s.checkNothingOutside(t)
		})
	}
}

// TestExtractSymlinkThroughSymlink: a link's target may walk through another link of the
// archive. Checked lexically, "m" -> "l/.." stays at the root, but with "l" -> "." the kernel
// resolves dest/m to the parent of dest.
func TestExtractSymlinkThroughSymlink(t *testing.T) {
	for _, tc := range []struct {
		name    string
		entries []raw
	}{
		{name: "link then link", entries: []raw{symlink("l", "."), symlink("m", "l/..")}},
		{name: "link before the link it goes through", entries: []raw{symlink("m", "l/../sibling/marker"), symlink("l", ".")}},
		{name: "nested", entries: []raw{symlink("a/b/up", "../.."), symlink("x", "a/b/up/..")}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newSandbox(t)
			err := artifact.Extract(bytes.NewReader(rawTarGz(t, tc.entries)), s.dest, artifact.DefaultLimits)
			if err == nil {
				if esc := escapingLinks(t, s.dest); len(esc) > 0 {
					t.Errorf("Extract succeeded and left links out of %s: %q", s.dest, esc)
				}
			} else if !errors.Is(err, artifact.ErrUnsafe) {
				t.Errorf("got %v, want ErrUnsafe", err)
			}
			s.checkNothingOutside(t)
		})
	}
}

// TestExtractByteLimitOverflow: the running total of sizes is an int64 that a huge declared size
// wraps negative, which passes the MaxBytes check; Extract then writes whatever content follows.
func TestExtractByteLimitOverflow(t *testing.T) {
	const limit = 1 << 10
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	for _, hdr := range []*tar.Header{
		{Typeflag: tar.TypeReg, Name: "a", Size: 1, Mode: 0o644},
		{Typeflag: tar.TypeReg, Name: "b", Size: math.MaxInt64, Mode: 0o644, Format: tar.FormatPAX},
	} {
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		n := min(hdr.Size, 1<<20) // then the archive ends: the declared size is a lie
		if _, err := tw.Write(bytes.Repeat([]byte{'z'}, int(n))); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Flush(); err == nil {
		t.Fatal("tar writer accepted a short entry")
	}
	if err := gz.Close(); err != nil {
		t.Fatal(err)
	}

	s := newSandbox(t)
	err := artifact.Extract(bytes.NewReader(buf.Bytes()), s.dest, artifact.Limits{MaxFiles: 10, MaxBytes: limit})
	if !errors.Is(err, artifact.ErrUnsafe) {
		t.Errorf("got %v, want ErrUnsafe", err)
	}
	if info, err := os.Stat(filepath.Join(s.dest, "b")); err == nil && info.Size() > limit {
		t.Errorf("wrote %d bytes to b, over the limit of %d", info.Size(), limit)
	}
}

// TestExtractDetectsCorruption: tar has no checksum over file content, only gzip does, in its
// trailer. Walk returns at the tar end-of-archive marker without reading the gzip stream to its
// end, so the CRC is never checked and corrupted content is extracted without an error.
// (Fetcher is covered by its sha256 check; direct callers of Walk and Extract are not.)
func TestExtractDetectsCorruption(t *testing.T) {
	body := strings.Repeat("payload ", 100)
	tb := rawTar(t, []raw{reg("a", body)})
	for _, tc := range []struct {
		name    string
		corrupt func() []byte
	}{
		{name: "bad CRC", corrupt: func() []byte {
			b := gzipBytes(t, tb)
			b[len(b)-8] ^= 0xff
			return b
		}},
		{name: "flipped content byte in a stored block", corrupt: func() []byte {
			var buf bytes.Buffer
			gz, _ := gzip.NewWriterLevel(&buf, gzip.NoCompression)
			if _, err := gz.Write(tb); err != nil {
				t.Fatal(err)
			}
			if err := gz.Close(); err != nil {
				t.Fatal(err)
			}
			b := buf.Bytes()
			i := bytes.Index(b, []byte(body))
			if i < 0 {
				t.Fatal("content not found in the stored gzip stream")
			}
			b[i] = 'P'
			return b
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newSandbox(t)
			err := artifact.Extract(bytes.NewReader(tc.corrupt()), s.dest, artifact.DefaultLimits)
			if err == nil {
				got, _ := os.ReadFile(filepath.Join(s.dest, "a"))
				t.Errorf("Extract of a corrupted archive succeeded; content intact: %v", string(got) == body)
			}
		})
	}
}

// TestWriterRefusesWhatWalkRefuses: a producer cannot publish an archive its consumers refuse.
func TestWriterRefusesWhatWalkRefuses(t *testing.T) {
	type op struct{ name, target string } // target empty: a file
	cases := []struct {
		name string
		ops  []op
	}{
		{"absolute name", []op{{"/etc/x", ""}}},
		{"dot-dot name", []op{{"a/../../x", ""}}},
		{"unclean name", []op{{"a//x", ""}}},
		{"link out of the root", []op{{"l", "../x"}}},
		{"absolute link", []op{{"l", "/etc/passwd"}}},
		{"file below a link", []op{{"l", "sub"}, {"l/x", ""}}},
		{"link through a link", []op{{"l", "."}, {"m", "l/.."}}},
		{"link becomes a folder another passed through", []op{{"m", "d/x"}, {"d", "."}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			w := artifact.NewWriter(io.Discard)
			var err error
			for _, o := range tc.ops {
				if o.target == "" {
					err = w.File(o.name, false, 1, strings.NewReader("x"))
				} else {
					err = w.Symlink(o.name, o.target)
				}
				if err != nil {
					break
				}
			}
			if !errors.Is(err, artifact.ErrUnsafe) {
				t.Fatalf("got %v, want ErrUnsafe", err)
			}
		})
	}
}
