// Command apply-controller builds Kustomizations from source artifacts and applies them:
// flags, manager and wiring only.
package main

import (
	"context"
	"errors"
	"flag"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	applyv1 "github.com/plumb-dev/plumb/apply-controller/api/v1beta1"
	"github.com/plumb-dev/plumb/apply-controller/internal/controller"
	"github.com/plumb-dev/plumb/shared/artifact"
	"github.com/plumb-dev/plumb/shared/kubeconfig"
	"github.com/plumb-dev/plumb/shared/manager"
	"github.com/plumb-dev/plumb/shared/registry"
)

const controllerName = "apply-controller"

type options struct {
	manager.Options
	defaultSA, defaultDecryptionSA      string
	defaultKubeconfigSA                 string
	noCrossNamespaceRefs, noRemoteBases bool
	kmsWorkloadIdentity                 bool
	concurrentSSA                       int
	cloud                               registry.CloudFlags
}

func main() {
	var o options
	o.Bind(flag.CommandLine)
	o.cloud.Bind(flag.CommandLine)
	flag.BoolVar(&o.noCrossNamespaceRefs, "no-cross-namespace-refs", true, "Refuse sourceRef and dependsOn in other namespaces (set =false to allow them, as Flux does by default).")
	flag.BoolVar(&o.noRemoteBases, "no-remote-bases", false, "Refuse kustomizations that refer to Git or http(s) URLs: everything applied must come from the source artifact.")
	flag.BoolVar(&o.kmsWorkloadIdentity, "sops-kms-workload-identity", false, "Let SOPS keys of AWS KMS, GCP KMS and Azure Key Vault whose credentials the decryption Secret lacks use this controller's own cloud identity (IRSA, GKE or Azure Workload Identity; the SDKs' default chains). Off by default: in a shared cluster every tenant's Kustomization could borrow that identity.")
	flag.StringVar(&o.defaultSA, "default-service-account", "", "ServiceAccount to impersonate when a Kustomization names none.")
	flag.StringVar(&o.defaultDecryptionSA, "default-decryption-service-account", "", "ServiceAccount of a Kustomization's namespace whose cloud identity opens its SOPS KMS keys when spec.decryption names none (Flux's flag; needs --feature-gates=ObjectLevelWorkloadIdentity=true). Set, the controller's own identity is never used for them.")
	flag.IntVar(&o.concurrentSSA, "concurrent-ssa", 4, "Server-side applies (and dry-runs) of one Kustomization sent at once.")
	flag.StringVar(&o.defaultKubeconfigSA, "default-kubeconfig-service-account", "", "ServiceAccount of a Kustomization's namespace that a kubeConfig.configMapRef ConfigMap without serviceAccountName stands for (Flux's flag; needs --feature-gates=ObjectLevelWorkloadIdentity=true). Set, the controller's own identity never reaches a remote cluster.")
	o.Main(controllerName, func(ctx context.Context) error { return run(ctx, o) })
}

func run(ctx context.Context, o options) error {
	// Secrets, ConfigMaps and ServiceAccounts are read when a Kustomization names one: never
	// cached. One token cache for the credentials of every kubeConfig.configMapRef and
	// decryption.serviceAccountName of the process; the feature gate lets a ConfigMap's
	// serviceAccountName and decryption.serviceAccountName be used.
	cloud, err := o.cloud.Cloud()
	if err != nil {
		return err
	}
	if o.defaultKubeconfigSA != "" && !cloud.ObjectLevel() {
		return errors.New("--default-kubeconfig-service-account names an identity of the tenant's namespace, which needs --feature-gates=ObjectLevelWorkloadIdentity=true")
	}
	clusters := kubeconfig.NewClusters(cloud.TokenCache(), cloud.ObjectLevel())
	clusters.DefaultServiceAccount = o.defaultKubeconfigSA
	if o.defaultDecryptionSA != "" && !cloud.ObjectLevel() {
		return errors.New("--default-decryption-service-account names a cloud identity, which needs --feature-gates=ObjectLevelWorkloadIdentity=true")
	}
	mgr, err := o.New(controllerName, applyv1.AddToScheme, []client.Object{&applyv1.Kustomization{}}, []client.Object{&corev1.Secret{}, &corev1.ConfigMap{}, &corev1.ServiceAccount{}})
	if err != nil {
		return err
	}
	r := &controller.KustomizationReconciler{
		Client:                          mgr.GetClient(),
		APIReader:                       mgr.GetAPIReader(),
		Config:                          mgr.GetConfig(),
		Mapper:                          mgr.GetRESTMapper(),
		Events:                          mgr.GetEventRecorder(controllerName),
		ControllerName:                  controllerName,
		Fetcher:                         &artifact.Fetcher{},
		NoCrossNamespaceRefs:            o.noCrossNamespaceRefs,
		DefaultServiceAccount:           o.defaultSA,
		NoRemoteBases:                   o.noRemoteBases,
		KMSWorkloadIdentity:             o.kmsWorkloadIdentity,
		ConcurrentSSA:                   o.concurrentSSA,
		Clusters:                        clusters,
		DecryptionIdentity:              controller.DecryptionIdentity{Enabled: cloud.ObjectLevel(), Cache: cloud.TokenCache()},
		DefaultDecryptionServiceAccount: o.defaultDecryptionSA,
	}
	if err := r.SetupWithManager(ctx, mgr, controller.Options{Concurrent: o.Concurrent}); err != nil {
		return err
	}
	return mgr.Start(ctx)
}
