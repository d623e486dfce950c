// Command helm-controller installs, upgrades, tests, remediates and uninstalls HelmReleases with
// the Helm SDK: flags, manager and wiring only.
package main

import (
	"context"
	"errors"
	"flag"
	"time"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	helmv1 "github.com/plumb-dev/plumb/helm-controller/api/v1beta1"
	"github.com/plumb-dev/plumb/helm-controller/internal/controller"
	"github.com/plumb-dev/plumb/shared/artifact"
	"github.com/plumb-dev/plumb/shared/kubeconfig"
	"github.com/plumb-dev/plumb/shared/manager"
	"github.com/plumb-dev/plumb/shared/registry"
)

const controllerName = "helm-controller"

type options struct {
	manager.Options
	defaultSA            string
	defaultKubeconfigSA  string
	noCrossNamespaceRefs bool
	kmsWorkloadIdentity  bool
	requeueDependency    time.Duration
	cloud                registry.CloudFlags
}

func main() {
	var o options
	o.Bind(flag.CommandLine)
	o.cloud.Bind(flag.CommandLine)
	flag.StringVar(&o.defaultSA, "default-service-account", "", "ServiceAccount to impersonate when a HelmRelease names none (local cluster only).")
	flag.BoolVar(&o.noCrossNamespaceRefs, "no-cross-namespace-refs", true, "Refuse chartRef and dependsOn in other namespaces (set =false to allow them, as Flux does by default).")
	flag.BoolVar(&o.kmsWorkloadIdentity, "sops-kms-workload-identity", false, "Let SOPS keys of AWS KMS, GCP KMS and Azure Key Vault whose credentials the decryption Secret lacks use this controller's own cloud identity (IRSA, GKE or Azure Workload Identity; the SDKs' default chains). Off by default: in a shared cluster every tenant's HelmRelease could borrow that identity.")
	flag.DurationVar(&o.requeueDependency, "requeue-dependency", 5*time.Second, "Wait before checking again a chart source or dependency that is not ready.")
	flag.StringVar(&o.defaultKubeconfigSA, "default-kubeconfig-service-account", "", "ServiceAccount of a HelmRelease's namespace that a kubeConfig.configMapRef ConfigMap without serviceAccountName stands for (Flux's flag; needs --feature-gates=ObjectLevelWorkloadIdentity=true). Set, the controller's own identity never reaches a remote cluster.")
	o.Main(controllerName, func(ctx context.Context) error { return run(ctx, o) })
}

func run(ctx context.Context, o options) error {
	// Secrets and ConfigMaps are read when a HelmRelease names one: never cached.
	// One token cache for the credentials of every kubeConfig.configMapRef of the process; the
	// feature gate lets a ConfigMap's serviceAccountName be used.
	cloud, err := o.cloud.Cloud()
	if err != nil {
		return err
	}
	if o.defaultKubeconfigSA != "" && !cloud.ObjectLevel() {
		return errors.New("--default-kubeconfig-service-account names an identity of the tenant's namespace, which needs --feature-gates=ObjectLevelWorkloadIdentity=true")
	}
	clusters := kubeconfig.NewClusters(cloud.TokenCache(), cloud.ObjectLevel())
	clusters.DefaultServiceAccount = o.defaultKubeconfigSA
	mgr, err := o.New(controllerName, helmv1.AddToScheme, []client.Object{&helmv1.HelmRelease{}}, []client.Object{&corev1.Secret{}, &corev1.ConfigMap{}})
	if err != nil {
		return err
	}
	r := &controller.HelmReleaseReconciler{
		Client:                mgr.GetClient(),
		APIReader:             mgr.GetAPIReader(),
		Config:                mgr.GetConfig(),
		Events:                mgr.GetEventRecorder(controllerName),
		ControllerName:        controllerName,
		Fetcher:               &artifact.Fetcher{},
		DefaultServiceAccount: o.defaultSA,
		RequeueDependency:     o.requeueDependency,
		NoCrossNamespaceRefs:  o.noCrossNamespaceRefs,
		KMSWorkloadIdentity:   o.kmsWorkloadIdentity,
		Clusters:              clusters,
	}
	if err := r.SetupWithManager(ctx, mgr, controller.Options{Concurrent: o.Concurrent}); err != nil {
		return err
	}
	return mgr.Start(ctx)
}
