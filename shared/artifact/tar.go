// Package artifact owns the artifact contract between source producers and their consumers: the
// deterministic tarball format producers write, and the one fetcher consumers use to download,
// verify and safely unpack what a producer published in its status.
package artifact

import (
	"archive/tar"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// epoch is the modification time of every entry, so that equal trees give equal bytes.
var epoch = time.Unix(0, 0).UTC()

// Writer writes a deterministic gzipped tarball: fixed times, owners and modes (0644, or 0755 for
// executables), no folder entries. Equal input in equal order gives equal bytes; callers add
// entries in a deterministic (sorted) order. It refuses, with ErrUnsafe, what Walk would refuse,
// so a producer never publishes an archive its consumers cannot read.
type Writer struct {
	gz    *gzip.Writer
	tw    *tar.Writer
	links linkSet
}

// NewWriter starts a tarball on w. Close must be called to flush it.
func NewWriter(w io.Writer) *Writer {
	// BestSpeed: artifacts are mostly text read once per revision by consumers on the same
	// network; the CPU saved on large repositories matters more than the bytes.
	gz, _ := gzip.NewWriterLevel(w, gzip.BestSpeed)
	return &Writer{gz: gz, tw: tar.NewWriter(gz)}
}

// File adds a regular file; executable files keep their executable bit.
func (w *Writer) File(name string, executable bool, size int64, body io.Reader) error {
	if err := w.checkName(name); err != nil {
		return err
	}
	mode := int64(0o644)
	if executable {
		mode = 0o755
	}
	hdr := &tar.Header{Typeflag: tar.TypeReg, Name: name, Size: size, Mode: mode, ModTime: epoch, Format: tar.FormatPAX}
	if err := w.tw.WriteHeader(hdr); err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	if _, err := io.Copy(w.tw, body); err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	return nil
}

// Symlink adds a symbolic link.
func (w *Writer) Symlink(name, target string) error {
	if err := w.checkName(name); err != nil {
		return err
	}
	if err := w.links.add(name, target); err != nil {
		return err
	}
	hdr := &tar.Header{Typeflag: tar.TypeSymlink, Name: name, Linkname: target, Mode: 0o777, ModTime: epoch, Format: tar.FormatPAX}
	if err := w.tw.WriteHeader(hdr); err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	return nil
}

func (w *Writer) checkName(name string) error {
	if clean, err := cleanName(name); err != nil || clean != name || clean == "." {
		return unsafe("entry name %q is not a clean relative path", name)
	}
	return w.links.checkEntry(name)
}

// Close flushes the tarball.
func (w *Writer) Close() error {
	return errors.Join(w.tw.Close(), w.gz.Close())
}

// Limits bound what an archive may unpack to, and so the work a hostile archive can cause.
type Limits struct {
	// MaxFiles is the most entries an archive may hold.
	MaxFiles int
	// MaxBytes is the most bytes its files may add up to, unpacked.
	MaxBytes int64
	// MaxStreamBytes is the most bytes the whole decompressed stream may hold: content, tar
	// headers, padding and the end of the archive. 0 derives it from the other two (MaxBytes
	// plus 4 KiB per entry MaxFiles allows, plus 16 KiB), and means no bound when either of
	// them is 0.
	MaxStreamBytes int64
}

// DefaultLimits fit a large monorepo and refuse a decompression bomb.
var DefaultLimits = Limits{MaxFiles: 100_000, MaxBytes: 1 << 30}

const (
	// entryOverhead is what Limits allow per entry for its header, PAX records and padding:
	// a header block, a PAX header and records for a long name and link, and up to 511 bytes
	// of padding fit with room to spare.
	entryOverhead = 4 << 10
	// maxTrailingZeros is how many zero bytes may follow the end-of-archive blocks: GNU tar and
	// bsdtar pad an archive to a record of 20 blocks.
	maxTrailingZeros = 20 * 512
)

// streamBound is the most decompressed bytes Walk reads, 0 for no bound.
func (l Limits) streamBound() int64 {
	switch {
	case l.MaxStreamBytes > 0:
		return l.MaxStreamBytes
	case l.MaxFiles <= 0 || l.MaxBytes <= 0:
		return 0
	}
	const end = 16 << 10 // the end-of-archive blocks and a tar writer's padding
	room := (math.MaxInt64 - l.MaxBytes - end) / entryOverhead
	if int64(l.MaxFiles) > room {
		return 0 // beyond anything a stream could hold
	}
	return l.MaxBytes + int64(l.MaxFiles)*entryOverhead + end
}

// Entry is one file or link of an archive, with its name cleaned and checked.
type Entry struct {
	// Name is slash-separated, relative, with no "." or ".." elements.
	Name string
	// Symlink target when the entry is a symbolic link; empty for files.
	Linkname string
	// Executable is set for files with any executable bit.
	Executable bool
	Size       int64
}

// ErrUnsafe is wrapped by every refusal of an archive's content.
var ErrUnsafe = errors.New("unsafe archive")

func unsafe(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrUnsafe, fmt.Sprintf(format, args...))
}

// Walk reads a gzipped tarball and calls visit for each file and symlink, in archive order, after
// checking it: no absolute names, no "..", no links that leave the root or lead through another
// link, nothing below a link, no devices, fifos or hard links, and the limits. Folder entries are
// implied and skipped. body reads the file's content and is valid only during the call. The
// decompressed stream as a whole is bounded too (Limits.MaxStreamBytes), and nothing but a tar
// writer's zero padding may follow the end of the archive. The gzip checksum is verified at
// the end: a caller must treat visited entries as unconfirmed until Walk returns nil.
func Walk(r io.Reader, lim Limits, visit func(e Entry, body io.Reader) error) error {
	gz, err := gzip.NewReader(r)
	if err != nil {
		return fmt.Errorf("read archive: %w", err)
	}
	defer gz.Close()
	stream := io.Reader(gz)
	if max := lim.streamBound(); max > 0 {
		stream = &boundedReader{r: gz, left: max, max: max}
	}
	tr := tar.NewReader(stream)
	var links linkSet
	var files int
	var total int64
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return checkEnd(stream)
		}
		if err != nil {
			return fmt.Errorf("read archive: %w", err)
		}
		name, err := cleanName(hdr.Name)
		if err != nil {
			return err
		}
		if name == "." {
			if hdr.Typeflag == tar.TypeDir {
				continue // "./", as tar -C dir . writes it
			}
			return unsafe("entry name %q", hdr.Name)
		}
		files++
		if lim.MaxFiles > 0 && files > lim.MaxFiles {
			return unsafe("more than %d entries", lim.MaxFiles)
		}
		if err := links.checkEntry(name); err != nil {
			return err
		}
		e := Entry{Name: name}
		switch hdr.Typeflag {
		case tar.TypeDir:
			continue
		case tar.TypeReg:
			if hdr.Size < 0 {
				return unsafe("%s has a negative size", name)
			}
			if lim.MaxBytes > 0 && hdr.Size > lim.MaxBytes-total {
				return unsafe("content larger than %d bytes", lim.MaxBytes)
			}
			total += hdr.Size
			e.Size = hdr.Size
			e.Executable = hdr.Mode&0o111 != 0
		case tar.TypeSymlink:
			if err := links.add(name, hdr.Linkname); err != nil {
				return err
			}
			e.Linkname = hdr.Linkname
		default:
			return unsafe("%s is of type %q; only files, folders and symlinks are allowed", name, string(hdr.Typeflag))
		}
		if err := visit(e, io.LimitReader(tr, e.Size)); err != nil {
			return err
		}
	}
}

// cleanName returns the entry's name cleaned, "." for the root; it refuses absolute names and
// names with ".." elements.
func cleanName(name string) (string, error) {
	n := strings.TrimPrefix(name, "./")
	if strings.HasPrefix(n, "/") || strings.Contains(n, "\\") || strings.ContainsRune(n, 0) {
		return "", unsafe("entry name %q", name)
	}
	for _, el := range strings.Split(n, "/") {
		if el == ".." {
			return "", unsafe("entry name %q leaves the root", name)
		}
	}
	if n == "" {
		return ".", nil
	}
	return path.Clean(n), nil
}

// linkSet holds the symlinks of an archive seen so far, to refuse the combinations that could
// lead outside the root even though each link alone stays inside.
type linkSet struct {
	links map[string]bool
	// through holds every folder some link's target passes through: it must never become a link.
	through map[string]bool
}

// checkEntry refuses an entry below a link.
func (s *linkSet) checkEntry(name string) error {
	for p := path.Dir(name); p != "."; p = path.Dir(p) {
		if s.links[p] {
			return unsafe("%s lies below the symlink %s", name, p)
		}
	}
	return nil
}

// add checks a new link against the root and the links seen so far, and records it.
func (s *linkSet) add(name, target string) error {
	if s.links == nil {
		s.links, s.through = map[string]bool{}, map[string]bool{}
	}
	if s.through[name] {
		return unsafe("symlink %s is a folder another symlink's target passes through", name)
	}
	dirs, err := checkLink(name, target)
	if err != nil {
		return err
	}
	for _, d := range dirs {
		if s.links[d] {
			return unsafe("symlink %s points through the symlink %s", name, d)
		}
	}
	for _, d := range dirs {
		s.through[d] = true
	}
	s.links[name] = true
	return nil
}

// checkLink refuses a link whose target is absolute or, resolved step by step from the link's
// folder, leaves the root. It returns the folders the target passes through (every step but the
// last), which Walk checks against the other links: together with refusing entries below links,
// this makes the lexical check exact.
func checkLink(name, target string) ([]string, error) {
	if target == "" || path.IsAbs(target) || strings.ContainsRune(target, 0) {
		return nil, unsafe("symlink %s points to %q", name, target)
	}
	cur := path.Dir(name)
	var dirs []string
	steps := strings.Split(target, "/")
	for i, step := range steps {
		switch step {
		case "", ".":
			continue
		case "..":
			if cur == "." {
				return nil, unsafe("symlink %s points to %q, outside the root", name, target)
			}
			cur = path.Dir(cur)
		default:
			cur = path.Join(cur, step)
			if i < len(steps)-1 {
				dirs = append(dirs, cur)
			}
		}
	}
	return dirs, nil
}

// checkEnd reads what follows the end of the archive to the end of the gzip stream, which
// verifies the gzip checksum, and refuses anything but a tar writer's zero padding: without
// this, GiB of data after the end of a small archive cost their decompression on every fetch.
func checkEnd(stream io.Reader) error {
	rest, err := io.ReadAll(io.LimitReader(stream, maxTrailingZeros+1))
	if err != nil {
		return fmt.Errorf("read archive: %w", err)
	}
	if len(rest) > maxTrailingZeros {
		return unsafe("more than %d bytes after the end of the archive", maxTrailingZeros)
	}
	if slices.ContainsFunc(rest, func(b byte) bool { return b != 0 }) {
		return unsafe("data after the end of the archive")
	}
	return nil
}

// boundedReader fails with ErrUnsafe once more than max bytes were read through it.
type boundedReader struct {
	r         io.Reader
	left, max int64
}

func (b *boundedReader) Read(p []byte) (int, error) {
	// One byte more than is left tells a stream that ends at the bound from a longer one.
	if int64(len(p)) > b.left+1 {
		p = p[:b.left+1]
	}
	n, err := b.r.Read(p)
	if int64(n) > b.left {
		n, b.left = int(b.left), 0
		return n, unsafe("decompressed stream larger than %d bytes", b.max)
	}
	b.left -= int64(n)
	return n, err
}

// Extract unpacks a gzipped tarball into dir after the checks of Walk, all or nothing. The
// archive is unpacked into a new folder next to dir, which takes the place of dir (and of all
// it held) only once the whole archive was accepted, and is removed on any error: a refused
// archive leaves dir as it was and nothing of itself on the disk, however often it is retried.
// dir must be missing or a folder, not a symlink nor a mount point; its parent is created if
// missing. The writes go through an os.Root, so nothing lands outside the new folder even if a
// check were wrong.
func Extract(r io.Reader, dir string, lim Limits) (err error) {
	dir, err = filepath.Abs(dir)
	if err != nil {
		return err
	}
	if info, err := os.Lstat(dir); err == nil && !info.IsDir() {
		return fmt.Errorf("extract into %s: not a folder", dir)
	} else if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	parent, base := filepath.Dir(dir), filepath.Base(dir)
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return err
	}
	// The new folder is made inside a private one: hidden while incomplete, and both renames
	// below go to a name that does not exist yet, as os.Rename requires of folders.
	work, err := os.MkdirTemp(parent, "."+base+".extract-*")
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, os.RemoveAll(work)) }()
	next := filepath.Join(work, base)
	if err := os.Mkdir(next, 0o755); err != nil {
		return err
	}
	if err := unpack(r, next, lim); err != nil {
		return err
	}
	if _, err := os.Lstat(dir); errors.Is(err, fs.ErrNotExist) {
		return os.Rename(next, dir)
	}
	old := filepath.Join(work, base+".old")
	if err := os.Rename(dir, old); err != nil {
		return err
	}
	if err := os.Rename(next, dir); err != nil {
		return errors.Join(err, os.Rename(old, dir))
	}
	return nil
}

// unpack writes the archive's entries into the empty folder dir.
func unpack(r io.Reader, dir string, lim Limits) error {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return err
	}
	defer root.Close()
	return Walk(r, lim, func(e Entry, body io.Reader) error {
		name := filepath.FromSlash(e.Name)
		if d := filepath.Dir(name); d != "." {
			if err := root.MkdirAll(d, 0o755); err != nil {
				return fmt.Errorf("extract %s: %w", e.Name, err)
			}
		}
		if err := root.Remove(name); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("extract %s: %w", e.Name, err)
		}
		if e.Linkname != "" {
			if err := root.Symlink(e.Linkname, name); err != nil {
				return fmt.Errorf("extract %s: %w", e.Name, err)
			}
			return nil
		}
		mode := fs.FileMode(0o644)
		if e.Executable {
			mode = 0o755
		}
		f, err := root.OpenFile(name, os.O_CREATE|os.O_WRONLY|os.O_EXCL, mode)
		if err != nil {
			return fmt.Errorf("extract %s: %w", e.Name, err)
		}
		_, err = io.Copy(f, body)
		return errors.Join(err, f.Close())
	})
}
