// Command images builds the container images of Plumb without a Docker daemon: one multi-arch
// OCI image index per component (each controller, and "plumb", the plumb command, whose image
// runs the dashboard of cli/config/dashboard), from its static Go binary.
//
//	go run ./images [-components a,b] [-platforms linux/amd64,linux/arm64] [-version v]
//	                [-push <registry>/<prefix>] [-insecure] [-out dir]
//
// Without -push the images are written as one OCI image layout to -out, one index per component
// named by the org.opencontainers.image.ref.name annotation (skopeo: oci:<out>:<component>).
// With -push each index goes to <prefix>/<component>:<version>, a line "<component>
// <repo>@sha256:<hex>" is printed, and, when -out is set, <out>/<component>.yaml holds the
// component's Kustomize base rendered with its image pinned to that digest.
//
// The images have no git program, so apply-controller cannot clone Kustomize remote bases in them:
// its pinned Deployment gets --no-remote-bases unless -no-remote-bases=false.
package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/plumb-dev/plumb/hack/images/build"
	"github.com/plumb-dev/plumb/shared/testing/testenv"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	switch {
	case errors.Is(err, flag.ErrHelp):
	case errors.As(err, new(usageError)):
		fmt.Fprintln(os.Stderr, "images:", err)
		os.Exit(2)
	case err != nil:
		fmt.Fprintln(os.Stderr, "images:", err)
		os.Exit(1)
	}
}

type usageError struct{ error }

type options struct {
	root, version, source, caCerts string
	push, out                      string
	insecure, noRemoteBases        bool
	components                     []string
	platforms                      []v1.Platform
}

func parse(args []string, stderr io.Writer) (options, error) {
	var o options
	var components, platforms string
	fs := flag.NewFlagSet("images", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.root, "root", "", "Workspace root (default: the folder holding go.work above the working directory).")
	fs.StringVar(&components, "components", strings.Join(build.Components, ","), "Comma-separated components to build.")
	fs.StringVar(&platforms, "platforms", "linux/amd64,linux/arm64", "Comma-separated platforms, os/arch[/variant].")
	fs.StringVar(&o.version, "version", "dev", "Version label of the images, and their tag when pushed.")
	fs.StringVar(&o.source, "source", build.DefaultSource, "Source label of the images.")
	fs.StringVar(&o.caCerts, "ca-certs", build.CABundlePath, "PEM bundle copied into the images for TLS verification (empty: none).")
	fs.StringVar(&o.push, "push", "", "Push to <registry>/<prefix>/<component>:<version> instead of writing an OCI layout.")
	fs.BoolVar(&o.insecure, "insecure", false, "Allow plain HTTP and unverified TLS to the -push registry.")
	fs.StringVar(&o.out, "out", "", "Folder for the OCI layout (without -push, required) or the digest-pinned manifests (with -push).")
	fs.BoolVar(&o.noRemoteBases, "no-remote-bases", true, "Add --no-remote-bases to apply-controller's pinned Deployment: the image has no git program.")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return o, err
		}
		return o, usageError{err}
	}
	if fs.NArg() > 0 {
		return o, usageError{fmt.Errorf("unexpected argument %q", fs.Arg(0))}
	}
	for _, c := range strings.Split(components, ",") {
		if c = strings.TrimSpace(c); c != "" && !slices.Contains(o.components, c) {
			o.components = append(o.components, c)
		}
	}
	if len(o.components) == 0 {
		return o, usageError{errors.New("-components is empty")}
	}
	for _, s := range strings.Split(platforms, ",") {
		p, err := v1.ParsePlatform(s)
		if err != nil || p.OS == "" || p.Architecture == "" {
			return o, usageError{fmt.Errorf("-platforms: %q is not os/arch[/variant]", s)}
		}
		o.platforms = append(o.platforms, *p)
	}
	for _, c := range o.components {
		if _, err := o.tag(c); o.push != "" && err != nil {
			return o, usageError{fmt.Errorf("-push: %w", err)}
		}
	}
	if o.push == "" && o.out == "" {
		return o, usageError{errors.New("-out is required without -push")}
	}
	if o.root == "" {
		root, err := testenv.WorkspaceRoot()
		if err != nil {
			return o, usageError{fmt.Errorf("-root: %w", err)}
		}
		o.root = root
	}
	for _, c := range o.components {
		pkg := build.ComponentOf(c).Package
		if _, err := os.Stat(filepath.Join(o.root, filepath.FromSlash(pkg))); err != nil {
			return o, usageError{fmt.Errorf("component %q: no %s under %s", c, pkg, o.root)}
		}
	}
	return o, nil
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	o, err := parse(args, stderr)
	if err != nil {
		return err
	}
	b := build.Builder{Root: o.root, Version: o.version, Source: o.source, CACerts: o.caCerts, Log: stderr}

	var lay layout.Path
	if o.push == "" {
		if lay, err = layout.Write(o.out, empty.Index); err != nil {
			return fmt.Errorf("OCI layout %s: %w", o.out, err)
		}
	} else if o.out != "" {
		if err := os.MkdirAll(o.out, 0o755); err != nil {
			return err
		}
	}
	remoteOpts := registryOptions(o.insecure)

	start := time.Now()
	// One component at a time: its binaries are held in memory until written.
	for _, name := range o.components {
		c := build.ComponentOf(name)
		idx, err := b.Build(ctx, c, o.platforms)
		if err != nil {
			return err
		}
		if o.push == "" {
			d, err := idx.Digest()
			if err != nil {
				return err
			}
			if err := lay.AppendIndex(idx, layout.WithAnnotations(map[string]string{"org.opencontainers.image.ref.name": name})); err != nil {
				return fmt.Errorf("write %s to %s: %w", name, o.out, err)
			}
			fmt.Fprintf(stdout, "%s %s\n", name, d)
			continue
		}
		tag, err := o.tag(name)
		if err != nil {
			return err
		}
		ref, err := build.Push(ctx, idx, tag, remoteOpts...)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%s %s\n", name, ref)
		if o.out == "" {
			continue
		}
		var extra []string
		if name == "apply-controller" && o.noRemoteBases {
			extra = append(extra, "--no-remote-bases")
		}
		manifests, err := build.Pin(o.root, c, ref, extra...)
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(o.out, name+".yaml"), manifests, 0o644); err != nil {
			return err
		}
	}
	fmt.Fprintf(stderr, "%d component(s) × %d platform(s) in %s\n", len(o.components), len(o.platforms), time.Since(start).Round(100*time.Millisecond))
	return nil
}

// tag is where component is pushed: <push>/<component>:<version>; with -insecure the registry may
// speak plain HTTP (go-containerregistry already does for localhost and loopback addresses).
func (o options) tag(component string) (name.Tag, error) {
	var opts []name.Option
	if o.insecure {
		opts = append(opts, name.Insecure)
	}
	return name.NewTag(strings.TrimSuffix(o.push, "/")+"/"+component+":"+o.version, opts...)
}

// registryOptions: credentials from the Docker config and credential helpers; with insecure, TLS
// certificates are not verified either.
func registryOptions(insecure bool) []remote.Option {
	ropts := []remote.Option{remote.WithAuthFromKeychain(authn.DefaultKeychain)}
	if !insecure {
		return ropts
	}
	t := remote.DefaultTransport.(*http.Transport).Clone()
	t.TLSClientConfig = &tls.Config{InsecureSkipVerify: true} //nolint:gosec // asked for with -insecure
	return append(ropts, remote.WithTransport(t))
}
