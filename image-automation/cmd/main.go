// Command image-automation scans image repositories for tags (ImageRepository), chooses the
// latest image (ImagePolicy) and commits it back to Git (ImageUpdateAutomation): flags, manager
// and wiring only.
package main

import (
	"context"
	"flag"
	"path/filepath"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	imagev1 "github.com/plumb-dev/plumb/image-automation/api/v1beta1"
	"github.com/plumb-dev/plumb/image-automation/internal/controller"
	"github.com/plumb-dev/plumb/image-automation/internal/tags"
	"github.com/plumb-dev/plumb/shared/hostlimit"
	plumbmanager "github.com/plumb-dev/plumb/shared/manager"
	"github.com/plumb-dev/plumb/shared/registry"
)

const controllerName = "image-automation"

type options struct {
	plumbmanager.Options
	hosts       hostlimit.Options
	cloud       registry.CloudFlags
	storagePath string
	// noCrossNamespaceRefs refuses an automation's sourceRef in another namespace.
	noCrossNamespaceRefs bool
}

func main() {
	var o options
	o.Bind(flag.CommandLine)
	o.hosts.Bind(flag.CommandLine)
	o.cloud.Bind(flag.CommandLine)
	flag.StringVar(&o.storagePath, "storage-path", "/data", "Folder of the scanned tag lists and the automations' Git working copies.")
	flag.BoolVar(&o.noCrossNamespaceRefs, "no-cross-namespace-refs", true, "Refuse an ImageUpdateAutomation's sourceRef in another namespace (set =false to allow it, as Flux does by default).")
	o.Main(controllerName, func(ctx context.Context) error { return run(ctx, o) })
}

func run(ctx context.Context, o options) error {
	// Credentials are read when needed: Secrets are never cached.
	mgr, err := o.New(controllerName, imagev1.AddToScheme,
		[]client.Object{&imagev1.ImageRepository{}, &imagev1.ImagePolicy{}, &imagev1.ImageUpdateAutomation{}},
		[]client.Object{&corev1.Secret{}, &corev1.ServiceAccount{}})
	if err != nil {
		return err
	}
	store, err := tags.New(filepath.Join(o.storagePath, "tags"))
	if err != nil {
		return err
	}
	rec := mgr.GetEventRecorder(controllerName)
	// A registry that hangs costs its own slots and fails at the first-byte deadline.
	registry.SetDeadlines(o.hosts.Deadlines)
	// One token cache for the scans and the digest look-ups of the process.
	cloud, err := o.cloud.Cloud()
	if err != nil {
		return err
	}
	scans := controller.Options{Concurrent: o.Concurrent, Hosts: o.hosts.Limiter(), HostBusyRetry: o.hosts.BusyRetry}
	if err := (&controller.ImageRepositoryReconciler{Client: mgr.GetClient(), APIReader: mgr.GetAPIReader(), Events: rec, Tags: store,
		ControllerName: controllerName, Cloud: cloud}).SetupWithManager(ctx, mgr, scans); err != nil {
		return err
	}
	if err := (&controller.ImagePolicyReconciler{Client: mgr.GetClient(), APIReader: mgr.GetAPIReader(), Events: rec, Tags: store,
		ControllerName: controllerName, Cloud: cloud}).SetupWithManager(ctx, mgr, controller.Options{Concurrent: o.Concurrent}); err != nil {
		return err
	}
	if err := (&controller.ImageUpdateAutomationReconciler{Client: mgr.GetClient(), APIReader: mgr.GetAPIReader(), Events: rec,
		WorkDir: filepath.Join(o.storagePath, "git"), ControllerName: controllerName, NoCrossNamespaceRefs: o.noCrossNamespaceRefs}).SetupWithManager(ctx, mgr, controller.Options{Concurrent: o.Concurrent}); err != nil {
		return err
	}
	return mgr.Start(ctx)
}
