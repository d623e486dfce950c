package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/layout"

	"github.com/plumb-dev/plumb/shared/testing/ocitest"
)

// root is a copy of testdata/root, whose component "tiny" stands in for a controller.
var root string

func TestMain(m *testing.M) {
	os.Exit(func() int {
		dir, err := os.MkdirTemp("", "plumb-images-cmd-test-")
		if err != nil {
			panic(err)
		}
		defer os.RemoveAll(dir)
		if err := os.CopyFS(dir, os.DirFS("testdata/root")); err != nil {
			panic(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module example.com/tiny\n\ngo 1.26.0\n"), 0o644); err != nil {
			panic(err)
		}
		// The copy is its own main module, outside the workspace.
		if err := os.Setenv("GOWORK", "off"); err != nil {
			panic(err)
		}
		root = dir
		return m.Run()
	}())
}

func TestPushPrintsDigestsAndWritesPinnedManifests(t *testing.T) {
	reg := ocitest.NewRegistry(nil)
	defer reg.Close()
	out := t.TempDir()
	var stdout, stderr bytes.Buffer
	err := run(context.Background(), []string{"-root", root, "-components", "tiny", "-ca-certs", "",
		"-push", reg.Host + "/plumb/", "-insecure", "-out", out}, &stdout, &stderr)
	if err != nil {
		t.Fatalf("%v\n%s", err, stderr.String())
	}
	line := regexp.MustCompile(`^tiny (` + regexp.QuoteMeta(reg.Host) + `/plumb/tiny@sha256:[0-9a-f]{64})\n$`).FindStringSubmatch(stdout.String())
	if line == nil {
		t.Fatalf("stdout %q, want one line tiny <repo>@sha256:<hex>", stdout.String())
	}
	manifests, err := os.ReadFile(filepath.Join(out, "tiny.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(manifests), "image: "+line[1]+"\n") {
		t.Errorf("tiny.yaml does not name %s:\n%s", line[1], manifests)
	}
}

func TestWithoutPushWritesOCILayout(t *testing.T) {
	out := t.TempDir()
	var stdout, stderr bytes.Buffer
	err := run(context.Background(), []string{"-root", root, "-components", "tiny", "-platforms", "linux/arm64",
		"-ca-certs", "", "-out", out}, &stdout, &stderr)
	if err != nil {
		t.Fatalf("%v\n%s", err, stderr.String())
	}
	idx, err := layout.ImageIndexFromPath(out)
	if err != nil {
		t.Fatal(err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if len(im.Manifests) != 1 || im.Manifests[0].Annotations["org.opencontainers.image.ref.name"] != "tiny" {
		t.Fatalf("layout index %+v, want one entry named tiny", im.Manifests)
	}
	if want := "tiny " + im.Manifests[0].Digest.String() + "\n"; stdout.String() != want {
		t.Errorf("stdout %q, want %q", stdout.String(), want)
	}
	inner, err := idx.ImageIndex(im.Manifests[0].Digest)
	if err != nil {
		t.Fatal(err)
	}
	m, err := inner.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Manifests) != 1 || m.Manifests[0].Platform.String() != "linux/arm64" {
		t.Errorf("component index %+v, want one linux/arm64 image", m.Manifests)
	}
	if _, err := inner.Image(m.Manifests[0].Digest); err != nil {
		t.Errorf("image not in the layout: %v", err)
	}
}

func TestBadArgumentsAreUsageErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"no out without push", []string{"-root", root, "-components", "tiny"}, "-out is required"},
		{"unknown component", []string{"-root", root, "-components", "nope", "-out", "x"}, `component "nope"`},
		{"empty components", []string{"-root", root, "-components", ",", "-out", "x"}, "-components is empty"},
		{"bad platform", []string{"-root", root, "-components", "tiny", "-platforms", "linux", "-out", "x"}, "-platforms"},
		{"stray argument", []string{"-root", root, "-out", "x", "tiny"}, "unexpected argument"},
		{"unknown flag", []string{"-nope"}, "flag provided but not defined"},
		{"bad push reference", []string{"-root", root, "-components", "tiny", "-push", "Bad Registry"}, "-push"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := run(context.Background(), tc.args, new(bytes.Buffer), new(bytes.Buffer))
			if !errors.As(err, new(usageError)) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want a usage error containing %q", err, tc.want)
			}
		})
	}
}
