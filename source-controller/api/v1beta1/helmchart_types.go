package v1beta1

import (
	"time"

	"github.com/fluxcd/pkg/apis/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// HelmChartKind is the kind name of HelmChart.
const HelmChartKind = "HelmChart"

// Reconcile strategies of HelmChart.
const (
	// ReconcileStrategyChartVersion builds a new artifact when the chart's version changes.
	ReconcileStrategyChartVersion = "ChartVersion"
	// ReconcileStrategyRevision builds a new artifact when the source's revision changes, and
	// adds the revision's short digest to the version (1.2.0+a1b2c3d4e5f6).
	ReconcileStrategyRevision = "Revision"
)

// HelmChartSpec says which chart to package, from which source.
type HelmChartSpec struct {
	// Chart is the chart's name in a HelmRepository, or the folder of the chart in a
	// GitRepository's or OCIRepository's artifact (e.g. ./charts/web).
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=2048
	Chart string `json:"chart"`
	// Version is a semver range of the chart versions of a HelmRepository to pick the highest
	// from, e.g. "1.x" or ">=1.2.0 <2.0.0"; default "*" (the highest release). Ignored for
	// charts from Git and OCI artifacts, whose Chart.yaml says the version.
	// +optional
	// +kubebuilder:default:="*"
	Version string `json:"version,omitempty"`
	// SourceRef names a HelmRepository, GitRepository or OCIRepository in the same namespace.
	// +required
	SourceRef LocalHelmChartSourceReference `json:"sourceRef"`
	// ValuesFiles are values files of the chart (paths inside it, e.g. values-prod.yaml),
	// merged in order over values.yaml; the result becomes the packaged chart's values.yaml.
	// +optional
	// +kubebuilder:validation:MaxItems=20
	ValuesFiles []string `json:"valuesFiles,omitempty"`
	// IgnoreMissingValuesFiles skips values files that the chart does not have, instead of
	// failing.
	// +optional
	IgnoreMissingValuesFiles bool `json:"ignoreMissingValuesFiles,omitempty"`
	// ReconcileStrategy: ChartVersion (default) packages again when the chart's version
	// changes; Revision also when the source's revision changes (for charts from Git whose
	// version is not bumped on every change).
	// +optional
	// +kubebuilder:default:=ChartVersion
	// +kubebuilder:validation:Enum=ChartVersion;Revision
	ReconcileStrategy string `json:"reconcileStrategy,omitempty"`
	// Interval between two checks of the source, e.g. 10m; at least 1s.
	// +required
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern="^([0-9]+(\\.[0-9]+)?(ms|s|m|h))+$"
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('1s')",message="interval must be at least 1s"
	Interval metav1.Duration `json:"interval"`
	// Timeout bounds one attempt: downloading, loading and packaging the chart.
	// +optional
	// +kubebuilder:default="60s"
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern="^([0-9]+(\\.[0-9]+)?(ms|s|m|h))+$"
	Timeout *metav1.Duration `json:"timeout,omitempty"`
	// Verify checks the signature of the chart's manifest digest before it is packaged, for
	// charts from an OCI HelmRepository (type oci) only; ignored for other sources, as in Flux.
	// +optional
	Verify *OCIArtifactVerification `json:"verify,omitempty"`
	// Suspend stops packaging; the last artifact stays served.
	// +optional
	Suspend bool `json:"suspend,omitempty"`
}

// LocalHelmChartSourceReference names the source of a chart in the same namespace.
type LocalHelmChartSourceReference struct {
	// APIVersion of the source: source.plumb.dev/v1beta1, the default; any other is refused
	// (Stalled, InvalidSpec).
	// +optional
	APIVersion string `json:"apiVersion,omitempty"`
	// Kind of the source.
	// +required
	// +kubebuilder:validation:Enum=HelmRepository;GitRepository;OCIRepository
	Kind string `json:"kind"`
	// Name of the source.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`
}

// HelmChartStatus is what the controller observed and published.
type HelmChartStatus struct {
	// ObservedGeneration is the generation of the spec last reconciled.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// Conditions: Ready, Reconciling, Stalled, ArtifactInStorage, FetchFailed, and
	// SourceVerified with spec.verify.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
	// Artifact is the packaged chart (.tgz); its revision is the chart's version.
	// +optional
	Artifact *meta.Artifact `json:"artifact,omitempty"`
	// ObservedSourceArtifactRevision is the revision of the GitRepository's or OCIRepository's
	// artifact last checked for the chart (empty for charts from a HelmRepository).
	// +optional
	ObservedSourceArtifactRevision string `json:"observedSourceArtifactRevision,omitempty"`
	// ObservedChartName is the name of the packaged chart.
	// +optional
	ObservedChartName string `json:"observedChartName,omitempty"`
	// ObservedValuesFiles are the values files merged into the package.
	// +optional
	ObservedValuesFiles         []string `json:"observedValuesFiles,omitempty"`
	meta.ReconcileRequestStatus `json:",inline"`
}

// HelmChart packages a chart from a HelmRepository, GitRepository or OCIRepository as an
// artifact that helm-controller installs.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=hc,categories=plumb
// +kubebuilder:printcolumn:name="Chart",type="string",JSONPath=".spec.chart"
// +kubebuilder:printcolumn:name="Version",type="string",JSONPath=".status.artifact.revision"
// +kubebuilder:printcolumn:name="Ready",type="string",JSONPath=".status.conditions[?(@.type==\"Ready\")].status"
// +kubebuilder:printcolumn:name="Status",type="string",JSONPath=".status.conditions[?(@.type==\"Ready\")].message"
// +kubebuilder:printcolumn:name="Age",type="date",JSONPath=".metadata.creationTimestamp"
type HelmChart struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// +required
	Spec HelmChartSpec `json:"spec"`
	// +optional
	Status HelmChartStatus `json:"status,omitempty"`
}

// HelmChartList is a list of HelmCharts.
// +kubebuilder:object:root=true
type HelmChartList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []HelmChart `json:"items"`
}

// GetConditions returns the status conditions.
func (in *HelmChart) GetConditions() []metav1.Condition { return in.Status.Conditions }

// SetConditions replaces the status conditions.
func (in *HelmChart) SetConditions(c []metav1.Condition) { in.Status.Conditions = c }

// GetArtifact returns the published artifact, or nil.
func (in *HelmChart) GetArtifact() *meta.Artifact { return in.Status.Artifact }

// GetTimeout returns spec.timeout, or 60s when unset.
func (in *HelmChart) GetTimeout() time.Duration {
	if in.Spec.Timeout == nil || in.Spec.Timeout.Duration <= 0 {
		return 60 * time.Second
	}
	return in.Spec.Timeout.Duration
}

// GetRequeueAfter returns spec.interval.
func (in *HelmChart) GetRequeueAfter() time.Duration { return in.Spec.Interval.Duration }

// GetVersion returns spec.version, or "*" when unset.
func (in *HelmChart) GetVersion() string {
	if in.Spec.Version == "" {
		return "*"
	}
	return in.Spec.Version
}
