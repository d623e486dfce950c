package release

import (
	"context"
	"errors"
	"fmt"
	"time"

	"helm.sh/helm/v3/pkg/action"
	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/kube"
	helmrelease "helm.sh/helm/v3/pkg/release"
	"helm.sh/helm/v3/pkg/storage"
	"helm.sh/helm/v3/pkg/storage/driver"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// Actions are the Helm actions a reconcile runs on one release. Waiting for health and writing
// CRDs are the caller's: both need a client of the cluster, which this package does not make.
type Actions interface {
	// History is every stored revision of the release; none (and no error) when there is none.
	History() ([]*helmrelease.Release, error)
	// StoredFingerprint is the Fingerprint of the release's Secrets as the last History read
	// them; empty before.
	StoredFingerprint() string
	// Last is the newest stored revision; nil (and no error) when there is none.
	Last() (*helmrelease.Release, error)
	// LatestVersion is the newest stored revision number, 0 when there is none or it cannot be
	// read.
	LatestVersion() int
	// Recover marks a revision left pending by a stopped controller as failed, so that the
	// next action can go ahead.
	Recover(rls *helmrelease.Release) error
	// Install installs the chart as the release; it does not wait for health.
	Install(ctx context.Context, ch *chart.Chart, vals map[string]any, opts InstallOptions) (*helmrelease.Release, error)
	// Upgrade upgrades the release to the chart with exactly these values; it does not wait for
	// health.
	Upgrade(ctx context.Context, ch *chart.Chart, vals map[string]any, opts UpgradeOptions) (*helmrelease.Release, error)
	// Written returns the object o (matched by group, kind, namespace and name) as the API
	// server answered the last Install's or Upgrade's write of it (or, for an object the
	// upgrade left as it was, Helm's read of it), or nil when that action did not write it.
	Written(o *unstructured.Unstructured) *unstructured.Unstructured
	// Test runs the chart's test hooks on the newest revision; filters are Helm's (name and
	// !name lists), nil for all.
	Test(timeout time.Duration, filters map[string][]string) error
	// Rollback returns the release to the newest revision deployed before the latest one, and
	// says which revision it asked for (0: Helm's choice, the previous one).
	Rollback(opts RollbackOptions) (int, error)
	// Uninstall removes the release; one that is not there is no error.
	Uninstall(opts UninstallOptions) error
	// MarkHealthy labels a stored revision as having passed its health wait and tests.
	MarkHealthy(rls *helmrelease.Release) error
	// Render renders the chart with the values as the stored revision like would have been
	// made from them, writing nothing.
	Render(ch *chart.Chart, vals map[string]any, like *helmrelease.Release, opts RenderOptions) (*helmrelease.Release, error)
	// Adopt writes labels onto a stored revision, without a new one.
	Adopt(rls *helmrelease.Release, labels map[string]string) error
}

// Target names a release and where it lives.
type Target struct {
	// Name is the Helm release name.
	Name string
	// Namespace is where the chart's objects go.
	Namespace string
	// StorageNamespace holds the release's revisions, as Secrets.
	StorageNamespace string
	// MaxHistory bounds the revisions kept (0: all).
	MaxHistory int
	// Watched, when set, is a watch of the release's Secrets in the storage namespace: Helm's
	// Lists of the release after the first are then answered from what that List returned
	// and what Helm wrote since, while the watch shows no other writer (storageSecrets).
	Watched Watched
}

// InstallOptions tune an install.
type InstallOptions struct {
	// Replace reuses the name of a release that was uninstalled (with its history kept) or whose
	// first install failed.
	Replace bool
	// SkipCRDs leaves the chart's crds/ folder alone.
	SkipCRDs bool
	// CreateNamespace creates the target namespace when it is missing.
	CreateNamespace bool
	// DisableHooks runs none of the chart's hooks.
	DisableHooks bool
	// SkipSchemaValidation does not check the values against values.schema.json.
	SkipSchemaValidation bool
	// Labels go on the stored revision.
	Labels map[string]string
	// PostRenderer, when not nil, changes the rendered manifests.
	PostRenderer *Kustomizer
	// Timeout bounds Helm's own work (hooks).
	Timeout time.Duration
}

// UpgradeOptions tune an upgrade.
type UpgradeOptions struct {
	// DisableHooks runs none of the chart's hooks.
	DisableHooks bool
	// SkipSchemaValidation does not check the values against values.schema.json.
	SkipSchemaValidation bool
	// Force replaces resources that cannot be updated in place.
	Force bool
	// ReuseValues merges the values over the last release's instead of replacing them.
	ReuseValues bool
	// CleanupOnFail deletes the resources this upgrade created when it fails.
	CleanupOnFail bool
	// Labels go on the stored revision.
	Labels map[string]string
	// PostRenderer, when not nil, changes the rendered manifests.
	PostRenderer *Kustomizer
	// Timeout bounds Helm's own work (hooks).
	Timeout time.Duration
}

// RollbackOptions tune a rollback.
type RollbackOptions struct {
	Timeout time.Duration
	// Wait waits, as Helm does, for the objects of the revision rolled back to, and with
	// WaitForJobs for its Jobs too.
	Wait          bool
	WaitForJobs   bool
	Force         bool
	DisableHooks  bool
	Recreate      bool
	CleanupOnFail bool
}

// UninstallOptions tune an uninstall.
type UninstallOptions struct {
	Timeout      time.Duration
	Wait         bool
	KeepHistory  bool
	DisableHooks bool
	// DeletionPropagation: background when empty, foreground or orphan.
	DeletionPropagation string
}

// Helm runs Actions with the Helm SDK, storing revisions in Secrets.
type Helm struct {
	cfg     *action.Configuration
	target  Target
	secrets *storageSecrets
	kube    *writtenClient
}

var _ Actions = (*Helm)(nil)

// NewHelm makes Helm's configuration for one release in the cluster c; logf receives Helm's
// debug lines.
func NewHelm(c Cluster, t Target, logf func(format string, args ...any)) (*Helm, error) {
	cfg := new(action.Configuration)
	if err := cfg.Init(Getter(c, t.Namespace), t.StorageNamespace, "secret", logf); err != nil {
		return nil, err
	}
	// Helm's own Secret driver, over a client that remembers what History read (and holds it
	// for Helm's next reads, given a watch).
	kc, ok := cfg.KubeClient.(*kube.Client)
	if !ok {
		return nil, fmt.Errorf("helm's client is a %T", cfg.KubeClient)
	}
	cs, err := kc.Factory.KubernetesClientSet()
	if err != nil {
		return nil, err
	}
	secrets := newStorageSecrets(cs.CoreV1().Secrets(t.StorageNamespace), t.Name, t.Watched)
	d := driver.NewSecrets(secrets)
	d.Log = logf
	cfg.Releases = storage.Init(d)
	cfg.Releases.MaxHistory = t.MaxHistory
	wc := &writtenClient{Client: kc}
	cfg.KubeClient = wc
	return &Helm{cfg: cfg, target: t, secrets: secrets, kube: wc}, nil
}

// Configuration is Helm's configuration underneath, for tests that change storage directly.
func (h *Helm) Configuration() *action.Configuration { return h.cfg }

func (h *Helm) History() ([]*helmrelease.Release, error) {
	hist, err := h.cfg.Releases.History(h.target.Name)
	if errors.Is(err, driver.ErrReleaseNotFound) {
		return nil, nil
	}
	return hist, err
}

func (h *Helm) StoredFingerprint() string { return h.secrets.lastList() }

func (h *Helm) Last() (*helmrelease.Release, error) {
	rls, err := h.cfg.Releases.Last(h.target.Name)
	if errors.Is(err, driver.ErrReleaseNotFound) {
		return nil, nil
	}
	return rls, err
}

func (h *Helm) LatestVersion() int {
	if rls, err := h.cfg.Releases.Last(h.target.Name); err == nil {
		return rls.Version
	}
	return 0
}

func (h *Helm) Recover(rls *helmrelease.Release) error {
	rls.SetStatus(helmrelease.StatusFailed, fmt.Sprintf("left %s by a stopped controller; recovered by helm-controller", rls.Info.Status))
	return h.cfg.Releases.Update(rls)
}

func (h *Helm) Install(ctx context.Context, ch *chart.Chart, vals map[string]any, opts InstallOptions) (*helmrelease.Release, error) {
	h.kube.reset()
	act := action.NewInstall(h.cfg)
	act.ReleaseName, act.Namespace, act.Replace = h.target.Name, h.target.Namespace, opts.Replace
	// The API server validates every object; Helm's own check would download and parse the
	// cluster's whole OpenAPI document on every action.
	act.DisableOpenAPIValidation = true
	act.Labels = opts.Labels
	if opts.PostRenderer != nil {
		act.PostRenderer = opts.PostRenderer
	}
	act.Timeout = opts.Timeout
	act.SkipCRDs, act.CreateNamespace = opts.SkipCRDs, opts.CreateNamespace
	act.DisableHooks, act.SkipSchemaValidation = opts.DisableHooks, opts.SkipSchemaValidation
	return act.RunWithContext(ctx, ch, vals)
}

func (h *Helm) Upgrade(ctx context.Context, ch *chart.Chart, vals map[string]any, opts UpgradeOptions) (*helmrelease.Release, error) {
	h.kube.reset()
	act := action.NewUpgrade(h.cfg)
	act.Namespace, act.MaxHistory = h.target.Namespace, h.target.MaxHistory
	// The values are the spec's, not merged with the last release's (empty values would
	// otherwise keep the old ones, and the release would never be up to date), unless the spec
	// asks to preserve them.
	act.ResetValues, act.ReuseValues = !opts.ReuseValues, opts.ReuseValues
	act.DisableHooks, act.SkipSchemaValidation = opts.DisableHooks, opts.SkipSchemaValidation
	act.Force, act.CleanupOnFail = opts.Force, opts.CleanupOnFail
	act.DisableOpenAPIValidation = true
	act.Labels = opts.Labels
	if opts.PostRenderer != nil {
		act.PostRenderer = opts.PostRenderer
	}
	act.Timeout = opts.Timeout
	return act.RunWithContext(ctx, h.target.Name, ch, vals)
}

func (h *Helm) Written(o *unstructured.Unstructured) *unstructured.Unstructured {
	return h.kube.written(o)
}

func (h *Helm) Test(timeout time.Duration, filters map[string][]string) error {
	act := action.NewReleaseTesting(h.cfg)
	act.Namespace, act.Timeout = h.target.Namespace, timeout
	if filters != nil {
		act.Filters = filters
	}
	_, err := act.Run(h.target.Name)
	return err
}

func (h *Helm) Rollback(opts RollbackOptions) (int, error) {
	act := action.NewRollback(h.cfg)
	act.Timeout, act.Wait, act.WaitForJobs, act.Force, act.MaxHistory = opts.Timeout, opts.Wait, opts.Wait && opts.WaitForJobs, opts.Force, h.target.MaxHistory
	act.DisableHooks, act.Recreate, act.CleanupOnFail = opts.DisableHooks, opts.Recreate, opts.CleanupOnFail
	if hist, err := h.cfg.Releases.History(h.target.Name); err == nil {
		if prev, err := PreviousDeployed(hist); err == nil {
			act.Version = prev
		}
	}
	err := act.Run(h.target.Name)
	return act.Version, err
}

func (h *Helm) Uninstall(opts UninstallOptions) error {
	act := action.NewUninstall(h.cfg)
	act.Timeout, act.Wait, act.KeepHistory, act.DisableHooks = opts.Timeout, opts.Wait, opts.KeepHistory, opts.DisableHooks
	act.DeletionPropagation = opts.DeletionPropagation
	if act.DeletionPropagation == "" {
		act.DeletionPropagation = "background"
	}
	_, err := act.Run(h.target.Name)
	if errors.Is(err, driver.ErrReleaseNotFound) {
		return nil
	}
	return err
}

func (h *Helm) MarkHealthy(rls *helmrelease.Release) error {
	cur, err := h.cfg.Releases.Get(rls.Name, rls.Version)
	if err != nil {
		return err
	}
	if cur.Labels == nil {
		cur.Labels = map[string]string{}
	}
	cur.Labels[HealthyLabel] = "true"
	return h.cfg.Releases.Update(cur)
}
