package v1beta1

import (
	"time"

	"github.com/fluxcd/pkg/apis/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// ImageUpdateAutomationKind is the kind name of ImageUpdateAutomation.
const ImageUpdateAutomationKind = "ImageUpdateAutomation"

// UpdateStrategySetters rewrites the values marked by `# {"$imagepolicy": "<ns>:<name>"}`.
const UpdateStrategySetters = "Setters"

// ImageUpdateAutomationSpec says which repository to update, where, and how to commit.
type ImageUpdateAutomationSpec struct {
	// SourceRef names the GitRepository (source.plumb.dev) to clone and push to, with its URL
	// and credentials; one of another namespace only when the controller runs with
	// --no-cross-namespace-refs=false.
	// +required
	SourceRef SourceReference `json:"sourceRef"`
	// Git says what to check out, how to commit and where to push.
	// +required
	Git GitSpec `json:"git"`
	// Update says which files to rewrite.
	// +optional
	// +kubebuilder:default={"strategy":"Setters"}
	Update *UpdateStrategy `json:"update,omitempty"`
	// PolicySelector selects the ImagePolicies of this namespace whose markers are rewritten;
	// empty selects all of them.
	// +optional
	PolicySelector *metav1.LabelSelector `json:"policySelector,omitempty"`
	// Interval between two runs, e.g. 5m; at least 10s. A policy that chooses a new image runs
	// the automation at once.
	// +required
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern="^([0-9]+(\\.[0-9]+)?(ms|s|m|h))+$"
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('10s')",message="interval must be at least 10s"
	Interval metav1.Duration `json:"interval"`
	// Timeout bounds one run: fetch, update, commit and push; default 2m.
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern="^([0-9]+(\\.[0-9]+)?(ms|s|m|h))+$"
	Timeout *metav1.Duration `json:"timeout,omitempty"`
	// Suspend stops the automation.
	// +optional
	Suspend bool `json:"suspend,omitempty"`
}

// SourceReference names the Git repository of an automation.
type SourceReference struct {
	// APIVersion of the source: source.plumb.dev/v1beta1, the default; any other is refused
	// (Stalled, InvalidSpec).
	// +optional
	APIVersion string `json:"apiVersion,omitempty"`
	// Kind of the source; only GitRepository.
	// +optional
	// +kubebuilder:default=GitRepository
	// +kubebuilder:validation:Enum=GitRepository
	Kind string `json:"kind,omitempty"`
	// Name of the GitRepository.
	// +required
	Name string `json:"name"`
	// Namespace of the GitRepository; default the automation's. Another namespace is refused
	// (Stalled, AccessDenied) unless the controller runs with --no-cross-namespace-refs=false;
	// the GitRepository's Secrets and service account are then read in its own namespace.
	// +optional
	// +kubebuilder:validation:MaxLength=63
	Namespace string `json:"namespace,omitempty"`
}

// GitSpec says what to check out, how to commit and where to push.
// +kubebuilder:validation:XValidation:rule="!has(self.checkout) || (has(self.checkout.ref.branch) && !has(self.checkout.ref.tag) && !has(self.checkout.ref.semver) && !has(self.checkout.ref.name) && !has(self.checkout.ref.commit)) || (has(self.push) && has(self.push.branch))",message="push.branch is required when checkout.ref is not a branch alone"
type GitSpec struct {
	// Checkout overrides the GitRepository's ref: the branch, tag, highest tag of a semver
	// range, reference name or commit to start from. Unset: the GitRepository's branch.
	// +optional
	Checkout *GitCheckout `json:"checkout,omitempty"`
	// Commit says how commits are written.
	// +required
	Commit CommitSpec `json:"commit"`
	// Push says where commits go. Unset: back to the checked-out branch.
	// +optional
	Push *PushSpec `json:"push,omitempty"`
}

// GitCheckout names what to check out.
type GitCheckout struct {
	// Ref to check out.
	// +required
	Ref GitCheckoutRef `json:"ref"`
}

// GitCheckoutRef is what to start from; the first set of commit, name, semver, tag and branch
// wins, as in a GitRepository. A commit with a branch must be in the branch's history.
// +kubebuilder:validation:XValidation:rule="has(self.branch) || has(self.tag) || has(self.semver) || has(self.name) || has(self.commit)",message="set one of branch, tag, semver, name and commit"
type GitCheckoutRef struct {
	// Branch to check out, e.g. main.
	// +optional
	// +kubebuilder:validation:MinLength=1
	Branch string `json:"branch,omitempty"`
	// Tag to check out, e.g. v1.2.0.
	// +optional
	Tag string `json:"tag,omitempty"`
	// SemVer is a range of tags to check out the highest of, e.g. ">=1.0.0 <2.0.0" or "1.x".
	// +optional
	SemVer string `json:"semver,omitempty"`
	// Name is a full reference name, e.g. refs/heads/main, refs/tags/v1 or refs/pull/7/head.
	// +optional
	// +kubebuilder:validation:Pattern="^refs/.+$"
	Name string `json:"name,omitempty"`
	// Commit is a full 40-character SHA-1. Without branch, every branch is fetched (with its
	// history) to find it.
	// +optional
	// +kubebuilder:validation:Pattern="^[0-9a-f]{40}$"
	Commit string `json:"commit,omitempty"`
}

// CommitSpec says how commits are written.
type CommitSpec struct {
	// Author of the commits (also their committer).
	// +required
	Author CommitUser `json:"author"`
	// SigningKey names the Secret of this namespace whose key signs the commits.
	// +optional
	SigningKey *SigningKey `json:"signingKey,omitempty"`
	// MessageTemplate is a Go text/template of the commit message over .AutomationObject
	// (namespace/name), .Changes (each with .File, .Object (.APIVersion, .Kind, .Namespace,
	// .Name), .Policy, .OldValue, .NewValue), .Files and .Objects (the distinct ones, sorted).
	// Paths are from the repository's root. Unset: a summary of the changes.
	// +optional
	MessageTemplate string `json:"messageTemplate,omitempty"`
	// MessageTemplateValues are extra values the template sees as .Values, as in Flux: e.g.
	// {{ index .Values "cluster" }} (empty for a key not here), or {{ .Values.cluster }} (a
	// key not here is then InvalidSpec, before anything is cloned).
	// +optional
	MessageTemplateValues map[string]string `json:"messageTemplateValues,omitempty"`
}

// Types of signing keys.
const (
	// SigningKeyTypeGPG is an armored OpenPGP private key in `git.asc`.
	SigningKeyTypeGPG = "gpg"
	// SigningKeyTypeSSH is an SSH private key in `identity`.
	SigningKeyTypeSSH = "ssh"
)

// SigningKey names a Secret whose key signs commits: Flux's shape, {secretRef: {name}, type},
// or Plumb's earlier {name}, which is still taken.
// +kubebuilder:validation:XValidation:rule="has(self.secretRef) != has(self.name)",message="set secretRef.name (or the older name), not both"
type SigningKey struct {
	// SecretRef names a Secret in the same namespace holding `git.asc`, an armored OpenPGP
	// private key (the first key of the ring signs), or `identity`, an OpenSSH or PEM private
	// key (Ed25519, ECDSA or RSA) for SSH signatures (git's gpg.format=ssh). `passphrase`
	// decrypts either; for an SSH key `password` does too, as in Flux (the keys of a
	// GitRepository's SSH Secret). A Secret with both git.asc and identity is refused unless
	// type says which one signs.
	// +optional
	SecretRef *meta.LocalObjectReference `json:"secretRef,omitempty"`
	// Type of the key: gpg (git.asc) or ssh (identity). Unset: the key the Secret holds (Flux
	// takes gpg).
	// +optional
	// +kubebuilder:validation:Enum=gpg;ssh
	Type string `json:"type,omitempty"`
	// Name of the Secret: Plumb's earlier shape, the same as secretRef.name. Deprecated: use
	// secretRef.
	// +optional
	Name string `json:"name,omitempty"`
}

// SecretName returns the name of the signing key's Secret, in either shape.
func (in *SigningKey) SecretName() string {
	if in.SecretRef != nil {
		return in.SecretRef.Name
	}
	return in.Name
}

// CommitUser is a name and an email address.
type CommitUser struct {
	// Name of the author.
	// +optional
	// +kubebuilder:default=plumb
	Name string `json:"name,omitempty"`
	// Email of the author.
	// +required
	// +kubebuilder:validation:MinLength=3
	Email string `json:"email"`
}

// PushSpec says where commits are pushed.
type PushSpec struct {
	// Branch to push to; created from the checked-out commit when it does not exist. Unset: the
	// checked-out branch.
	// +optional
	Branch string `json:"branch,omitempty"`
	// Refspec is pushed in addition to branch, e.g. refs/heads/main:refs/heads/auto/update.
	// +optional
	Refspec string `json:"refspec,omitempty"`
	// Options are git push options, each sent as `key=value` (`git push -o key=value`), e.g.
	// GitLab's merge_request.create: "true". They are sent when the server advertises push
	// options and dropped otherwise, as Flux does.
	// +optional
	// +kubebuilder:validation:MaxProperties=32
	Options map[string]string `json:"options,omitempty"`
}

// UpdateStrategy says which files to rewrite.
type UpdateStrategy struct {
	// Strategy: Setters.
	// +optional
	// +kubebuilder:default=Setters
	// +kubebuilder:validation:Enum=Setters
	Strategy string `json:"strategy,omitempty"`
	// Path of the folder in the repository whose YAML files are updated; default the root.
	// +optional
	Path string `json:"path,omitempty"`
}

// ImageUpdateAutomationStatus is what the controller did last.
type ImageUpdateAutomationStatus struct {
	// ObservedGeneration is the generation of the spec last reconciled.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// Conditions: Ready, Reconciling, Stalled.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
	// LastAutomationRunTime is when the automation last ran to its end.
	// +optional
	LastAutomationRunTime *metav1.Time `json:"lastAutomationRunTime,omitempty"`
	// LastPushCommit is the hex SHA-1 of the last commit pushed.
	// +optional
	LastPushCommit string `json:"lastPushCommit,omitempty"`
	// LastPushTime is when it was pushed.
	// +optional
	LastPushTime *metav1.Time `json:"lastPushTime,omitempty"`
	// ObservedPolicies are the images of the selected policies at the last run, by policy
	// name.
	// +optional
	ObservedPolicies            map[string]ImageRef `json:"observedPolicies,omitempty"`
	meta.ReconcileRequestStatus `json:",inline"`
}

// ImageUpdateAutomation commits the images its ImagePolicies choose to a Git repository.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=imageupdate,categories=plumb
// +kubebuilder:printcolumn:name="Last run",type="date",JSONPath=".status.lastAutomationRunTime"
// +kubebuilder:printcolumn:name="Last push",type="string",JSONPath=".status.lastPushCommit"
// +kubebuilder:printcolumn:name="Ready",type="string",JSONPath=".status.conditions[?(@.type==\"Ready\")].status"
// +kubebuilder:printcolumn:name="Status",type="string",JSONPath=".status.conditions[?(@.type==\"Ready\")].message"
type ImageUpdateAutomation struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// +required
	Spec ImageUpdateAutomationSpec `json:"spec"`
	// +optional
	Status ImageUpdateAutomationStatus `json:"status,omitempty"`
}

// ImageUpdateAutomationList is a list of ImageUpdateAutomations.
// +kubebuilder:object:root=true
type ImageUpdateAutomationList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []ImageUpdateAutomation `json:"items"`
}

// GetConditions returns the status conditions.
func (in *ImageUpdateAutomation) GetConditions() []metav1.Condition { return in.Status.Conditions }

// SetConditions replaces the status conditions.
func (in *ImageUpdateAutomation) SetConditions(c []metav1.Condition) { in.Status.Conditions = c }

// GetTimeout returns spec.timeout, or 2m.
func (in *ImageUpdateAutomation) GetTimeout() time.Duration {
	if in.Spec.Timeout == nil || in.Spec.Timeout.Duration <= 0 {
		return 2 * time.Minute
	}
	return in.Spec.Timeout.Duration
}
