package setters

import (
	"bytes"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

// writeTree creates files under dir from slash paths to contents.
func writeTree(t testing.TB, dir string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

type fileState struct {
	data  string
	mtime time.Time
	mode  fs.FileMode
}

// snapshot records every entry under dir, links included, without following links.
func snapshot(t *testing.T, dir string) map[string]fileState {
	t.Helper()
	got := map[string]fileState{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		info, err := os.Lstat(p)
		if err != nil {
			return err
		}
		var data []byte
		if info.Mode().IsRegular() {
			if data, err = os.ReadFile(p); err != nil {
				return err
			}
		}
		rel, _ := filepath.Rel(dir, p)
		got[filepath.ToSlash(rel)] = fileState{string(data), info.ModTime(), info.Mode()}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return got
}

func TestUpdate(t *testing.T) {
	deploy := "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: app\n  namespace: shop\n" +
		"spec:\n  template:\n    spec:\n      containers:\n" +
		"      - name: app\n        image: ghcr.io/acme/app:1.0.0 " + mApp + "\n"
	marked := "image: old " + mWeb + "\n"
	outside := t.TempDir()
	writeTree(t, outside, map[string]string{"target.yaml": marked, "dir/x.yaml": marked})

	root := t.TempDir()
	writeTree(t, root, map[string]string{
		"z.yaml":             marked,
		"a.yaml":             marked,
		"a/b.yml":            marked,
		"apps/deploy.yaml":   deploy,
		"apps/current.yaml":  "image: " + webFull + " " + mWeb + "\n",
		"apps/plain.yaml":    "image: ghcr.io/acme/app:1.0.0 # no marker\n",
		"apps/missing.yaml":  "a: old # {\"$imagepolicy\": \"apps:gone\"}\nb: old " + mWeb + "\n",
		"apps/problem.yaml":  "digest: old # {\"$imagepolicy\": \"apps:web:digest\"}\n",
		"broken.yaml":        "image: [old " + mWeb + "\n",
		"notes.txt":          marked,
		".git/config.yaml":   marked,
		"sub/.git/hook.yaml": marked,
		"UPPER.YAML":         marked,
	})
	if err := os.Symlink(filepath.Join(outside, "target.yaml"), filepath.Join(root, "link.yaml")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(outside, "dir"), filepath.Join(root, "linkdir")); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(root, "a.yaml"), 0o600); err != nil {
		t.Fatal(err)
	}
	big := "image: old " + mWeb + "\n" + strings.Repeat("#\n", MaxFileSize/2)
	writeTree(t, root, map[string]string{"big.yaml": big})
	past := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
	for name, st := range snapshot(t, root) {
		if st.mode.IsRegular() {
			if err := os.Chtimes(filepath.Join(root, filepath.FromSlash(name)), past, past); err != nil {
				t.Fatal(err)
			}
		}
	}
	before := snapshot(t, root)
	outsideBefore := snapshot(t, outside)

	res, err := Update(root, testRefs)
	if err != nil {
		t.Fatal(err)
	}

	wantFiles := []string{"UPPER.YAML", "a.yaml", "a/b.yml", "apps/deploy.yaml", "apps/missing.yaml", "z.yaml"}
	if !reflect.DeepEqual(res.Files, wantFiles) {
		t.Errorf("files:\n got %v\nwant %v", res.Files, wantFiles)
	}
	wantChanges := []Change{
		{File: "UPPER.YAML", Line: 1, Policy: "apps:web", Old: "old", New: webFull},
		{File: "a.yaml", Line: 1, Policy: "apps:web", Old: "old", New: webFull},
		{File: "a/b.yml", Line: 1, Policy: "apps:web", Old: "old", New: webFull},
		{File: "apps/deploy.yaml", Line: 11, Policy: "apps:app", Old: "ghcr.io/acme/app:1.0.0", New: appFull,
			Object: ObjectRef{APIVersion: "apps/v1", Kind: "Deployment", Namespace: "shop", Name: "app"}},
		{File: "apps/missing.yaml", Line: 2, Policy: "apps:web", Old: "old", New: webFull},
		{File: "z.yaml", Line: 1, Policy: "apps:web", Old: "old", New: webFull},
	}
	if !reflect.DeepEqual(res.Changes, wantChanges) {
		t.Errorf("changes:\n got %+v\nwant %+v", res.Changes, wantChanges)
	}
	wantMissing := []Missing{{File: "apps/missing.yaml", Line: 1, Policy: "apps:gone"}}
	if !reflect.DeepEqual(res.Missing, wantMissing) {
		t.Errorf("missing:\n got %+v\nwant %+v", res.Missing, wantMissing)
	}
	var skipped []string
	for _, s := range res.Skipped {
		skipped = append(skipped, fmt.Sprintf("%s:%d %s", s.File, s.Line, s.Reason))
	}
	wantSkipped := []string{
		"apps/problem.yaml:1 policy has no digest",
		"big.yaml:0 larger than",
		"broken.yaml:0 not YAML",
		"link.yaml:0 symbolic link not followed",
	}
	if len(skipped) != len(wantSkipped) {
		t.Fatalf("skipped:\n got %q\nwant %q", skipped, wantSkipped)
	}
	for i := range skipped {
		if !strings.HasPrefix(skipped[i], wantSkipped[i]) {
			t.Errorf("skipped[%d] = %q, want prefix %q", i, skipped[i], wantSkipped[i])
		}
	}

	after := snapshot(t, root)
	if !reflect.DeepEqual(slices.Sorted(maps.Keys(after)), slices.Sorted(maps.Keys(before))) {
		t.Errorf("entries changed:\n got %v\nwant %v", slices.Sorted(maps.Keys(after)), slices.Sorted(maps.Keys(before)))
	}
	for name, b := range before {
		a := after[name]
		written := slices.Contains(wantFiles, name)
		if written {
			if a.data == b.data || a.mode != b.mode {
				t.Errorf("%s: want new content with mode %v, got mode %v", name, b.mode, a.mode)
			}
			continue
		}
		if a != b {
			t.Errorf("%s: touched though not written (mtime %v → %v)", name, b.mtime, a.mtime)
		}
	}
	if got := snapshot(t, outside); !reflect.DeepEqual(got, outsideBefore) {
		t.Errorf("files outside the root changed")
	}
	if got, want := after["apps/deploy.yaml"].data, strings.Replace(deploy, "ghcr.io/acme/app:1.0.0", appFull, 1); got != want {
		t.Errorf("deploy.yaml:\n got %q\nwant %q", got, want)
	}
}

func TestUpdateMissingRoot(t *testing.T) {
	if _, err := Update(filepath.Join(t.TempDir(), "nope"), testRefs); err == nil {
		t.Fatal("want an error for a missing root")
	}
}

func TestUpdateSecondRunIsNoop(t *testing.T) {
	root := t.TempDir()
	writeTree(t, root, map[string]string{"a.yaml": "image: old " + mWeb + "\n"})
	if res, err := Update(root, testRefs); err != nil || len(res.Files) != 1 {
		t.Fatalf("first run: %+v, %v", res, err)
	}
	before, _ := os.ReadFile(filepath.Join(root, "a.yaml"))
	res, err := Update(root, testRefs)
	if err != nil || len(res.Files) != 0 || len(res.Changes) != 0 {
		t.Fatalf("second run: %+v, %v", res, err)
	}
	after, _ := os.ReadFile(filepath.Join(root, "a.yaml"))
	if !bytes.Equal(before, after) {
		t.Errorf("second run changed the file")
	}
}

// benchmarkDeployment is a realistic manifest; marked ones carry one marker.
func benchmarkDeployment(i int, marked bool) string {
	comment := "# pinned by hand"
	if marked {
		comment = fmt.Sprintf(`# {"$imagepolicy": "apps:app%d"}`, i%20)
	}
	return fmt.Sprintf(`# Source: chart/templates/deployment.yaml
apiVersion: apps/v1
kind: Deployment
metadata:
  name: app-%[1]d
  namespace: shop
  labels:
    app.kubernetes.io/name: app-%[1]d
spec:
  replicas: 2
  selector:
    matchLabels:
      app.kubernetes.io/name: app-%[1]d
  template:
    metadata:
      labels:
        app.kubernetes.io/name: app-%[1]d
    spec:
      containers:
        - name: app
          image: ghcr.io/acme/app%[2]d:0.0.1 %[3]s
          ports:
            - containerPort: 8080
          resources:
            limits: {cpu: 500m, memory: 128Mi}
---
apiVersion: v1
kind: Service
metadata:
  name: app-%[1]d
spec:
  ports:
    - port: 80
      targetPort: 8080
`, i, i%20, comment)
}

// BenchmarkUpdate runs over 500 files of which 100 carry a marker, alternating between two
// sets of refs so every iteration rewrites all 100.
func BenchmarkUpdate(b *testing.B) {
	root := b.TempDir()
	files := map[string]string{}
	for i := range 500 {
		files[fmt.Sprintf("apps/dir%02d/app%03d.yaml", i%25, i)] = benchmarkDeployment(i, i%5 == 0)
	}
	writeTree(b, root, files)
	refs := [2]map[string]Ref{{}, {}}
	for i := range 20 {
		key := fmt.Sprintf("apps:app%d", i)
		name := fmt.Sprintf("ghcr.io/acme/app%d", i)
		refs[0][key] = Ref{Name: name, Tag: "1.0.0"}
		refs[1][key] = Ref{Name: name, Tag: "1.0.1", Digest: digest}
	}
	for i := 0; b.Loop(); i++ {
		res, err := Update(root, refs[i%2])
		if err != nil || len(res.Changes) != 100 || len(res.Files) != 100 {
			b.Fatalf("got %d changes in %d files, %d skipped, err %v", len(res.Changes), len(res.Files), len(res.Skipped), err)
		}
	}
}
