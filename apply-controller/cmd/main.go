// Command apply-controller builds Kustomizations from source artifacts and applies them:
// flags, manager and wiring only.
package main

import (
	"context"
	"errors"
	"flag"
	"os"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	applyv1 "github.com/plumb-dev/plumb/apply-controller/api/v1beta1"
	"github.com/plumb-dev/plumb/apply-controller/internal/controller"
	"github.com/plumb-dev/plumb/shared/artifact"
	"github.com/plumb-dev/plumb/shared/manager"
)

const controllerName = "apply-controller"

type options struct {
	manager.Options
	defaultSA                           string
	noCrossNamespaceRefs, noRemoteBases bool
}

func main() {
	var o options
	o.Bind(flag.CommandLine)
	flag.BoolVar(&o.noCrossNamespaceRefs, "no-cross-namespace-refs", false, "Refuse sourceRef and dependsOn in other namespaces.")
	flag.BoolVar(&o.noRemoteBases, "no-remote-bases", false, "Refuse kustomizations that refer to Git or http(s) URLs: everything applied must come from the source artifact.")
	flag.StringVar(&o.defaultSA, "default-service-account", "", "ServiceAccount to impersonate when a Kustomization names none.")
	flag.Parse()
	o.SetLogger()
	if err := run(ctrl.SetupSignalHandler(), o); err != nil {
		ctrl.Log.WithName(controllerName).Error(err, "exiting")
		os.Exit(1)
	}
}

func run(ctx context.Context, o options) error {
	scheme := runtime.NewScheme()
	if err := errors.Join(clientgoscheme.AddToScheme(scheme), applyv1.AddToScheme(scheme)); err != nil {
		return err
	}
	// Secrets and ConfigMaps are read when a Kustomization names one: never cached.
	mgr, err := o.New(controllerName, scheme, []client.Object{&applyv1.Kustomization{}}, []client.Object{&corev1.Secret{}, &corev1.ConfigMap{}})
	if err != nil {
		return err
	}
	r := &controller.KustomizationReconciler{
		Client:                mgr.GetClient(),
		APIReader:             mgr.GetAPIReader(),
		Config:                mgr.GetConfig(),
		Mapper:                mgr.GetRESTMapper(),
		Events:                mgr.GetEventRecorder(controllerName),
		ControllerName:        controllerName,
		Fetcher:               &artifact.Fetcher{},
		NoCrossNamespaceRefs:  o.noCrossNamespaceRefs,
		DefaultServiceAccount: o.defaultSA,
		NoRemoteBases:         o.noRemoteBases,
	}
	if err := r.SetupWithManager(ctx, mgr, controller.Options{Concurrent: o.Concurrent}); err != nil {
		return err
	}
	return mgr.Start(ctx)
}
