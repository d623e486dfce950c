package setters

import (
	"cmp"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"slices"
	"strings"
)

// MaxFileSize is the largest file Update reads; a manifest bigger than this is more likely
// generated data than something a person marked by hand.
const MaxFileSize = 10 << 20

// Update rewrites the marked values of every .yaml and .yml file under root. refs maps
// "namespace:name" to the policy's latest image.
//
// All access goes through an os.Root, so no path can leave root. Symbolic links are never
// followed, .git directories are not entered, and only files mentioning "$imagepolicy" are
// parsed. Files that cannot be read or parsed, and markers that cannot be applied, are reported
// in Skipped; the error is for failures that make the run as a whole meaningless (root cannot
// be opened or walked, a file cannot be written). Nothing is written unless the whole tree was
// read.
func Update(root string, refs map[string]Ref) (Result, error) {
	r, err := os.OpenRoot(root)
	if err != nil {
		return Result{}, err
	}
	defer r.Close()

	type pending struct {
		name string
		data []byte
		perm fs.FileMode
	}
	var (
		res    Result
		writes []pending
	)
	skip := func(name, reason string) {
		res.Skipped = append(res.Skipped, Skipped{File: name, Reason: reason})
	}
	err = fs.WalkDir(r.FS(), ".", func(name string, d fs.DirEntry, err error) error {
		switch {
		case err != nil && name == ".":
			return err
		case err != nil:
			skip(name, err.Error())
			return nil
		case d.IsDir() && d.Name() == ".git":
			return fs.SkipDir
		case d.IsDir() || !isYAMLName(name):
			return nil
		case d.Type()&fs.ModeSymlink != 0:
			skip(name, "symbolic link not followed")
			return nil
		case !d.Type().IsRegular():
			skip(name, "not a regular file")
			return nil
		}
		data, perm, reason := readCapped(r, name)
		if reason != "" {
			skip(name, reason)
			return nil
		}
		out, changes, missing, err := UpdateBytes(data, refs)
		var problems Problems
		switch {
		case errors.As(err, &problems):
			for _, p := range problems {
				res.Skipped = append(res.Skipped, Skipped{File: name, Line: p.Line, Policy: p.Policy, Reason: p.Reason})
			}
		case err != nil:
			skip(name, err.Error())
			return nil
		}
		for _, m := range missing {
			m.File = name
			res.Missing = append(res.Missing, m)
		}
		if len(changes) == 0 {
			return nil
		}
		for _, c := range changes {
			c.File = name
			res.Changes = append(res.Changes, c)
		}
		writes = append(writes, pending{name, out, perm})
		return nil
	})
	if err != nil {
		return Result{}, fmt.Errorf("walk %s: %w", root, err)
	}

	for _, w := range writes {
		// Written in place: the checkout is scratch space and the caller commits nothing when
		// Update fails, so a temporary file and rename would only cost a create per file.
		if err := r.WriteFile(w.name, w.data, w.perm); err != nil {
			return res, fmt.Errorf("write %s: %w", w.name, err)
		}
		res.Files = append(res.Files, w.name)
	}
	sortResult(&res)
	return res, nil
}

func isYAMLName(name string) bool {
	ext := strings.ToLower(path.Ext(name))
	return ext == ".yaml" || ext == ".yml"
}

// readCapped reads a regular file of at most MaxFileSize bytes, or says why it did not.
func readCapped(r *os.Root, name string) ([]byte, fs.FileMode, string) {
	f, err := r.Open(name)
	if err != nil {
		return nil, 0, err.Error()
	}
	defer f.Close()
	info, err := f.Stat()
	switch {
	case err != nil:
		return nil, 0, err.Error()
	case !info.Mode().IsRegular():
		return nil, 0, "not a regular file"
	case info.Size() > MaxFileSize:
		return nil, 0, fmt.Sprintf("larger than %d bytes", MaxFileSize)
	}
	data, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return nil, 0, err.Error()
	}
	if len(data) > MaxFileSize {
		return nil, 0, fmt.Sprintf("larger than %d bytes", MaxFileSize)
	}
	return data, info.Mode().Perm(), ""
}

func sortResult(res *Result) {
	slices.Sort(res.Files)
	slices.SortStableFunc(res.Changes, func(a, b Change) int {
		return cmp.Or(strings.Compare(a.File, b.File), a.Line-b.Line)
	})
	slices.SortStableFunc(res.Missing, func(a, b Missing) int {
		return cmp.Or(strings.Compare(a.File, b.File), a.Line-b.Line)
	})
	slices.SortStableFunc(res.Skipped, func(a, b Skipped) int {
		return cmp.Or(strings.Compare(a.File, b.File), a.Line-b.Line)
	})
}
