package v1beta1

import (
	"time"

	"github.com/fluxcd/pkg/apis/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// GitRepositoryKind is the kind name of GitRepository.
const GitRepositoryKind = "GitRepository"

// GitRepositorySpec says which repository and revision to fetch, and what of it to publish.
// +kubebuilder:validation:XValidation:rule="!has(self.serviceAccountName) || (has(self.provider) && self.provider == 'azure')",message="serviceAccountName can only be set when provider is 'azure'"
type GitRepositorySpec struct {
	// URL of the repository: http://, https:// or ssh:// (ssh://git@host/path or the scp-like
	// git@host:path form).
	// +required
	// +kubebuilder:validation:Pattern="^(https?|ssh)://.*$|^[A-Za-z0-9._-]+@[A-Za-z0-9._-]+:.+$"
	URL string `json:"url"`

	// SecretRef names a Secret in the same namespace with the credentials for the repository:
	// `username` and `password` (HTTP basic auth), or `bearerToken`, optionally `ca.crt` (PEM CA
	// for HTTPS); for SSH `identity` (private key, PEM or OpenSSH), `known_hosts` (required) and
	// optionally `password` (passphrase of the key).
	//
	// With provider github the Secret holds a GitHub App instead: `githubAppID`,
	// `githubAppInstallationID` (or `githubAppInstallationOwner`, an organization or user the
	// app is installed on), `githubAppPrivateKey` (PEM) and optionally `githubAppBaseURL` (the
	// API of GitHub Enterprise Server, e.g. https://github.example.com/api/v3) and `ca.crt`.
	// +optional
	SecretRef *meta.LocalObjectReference `json:"secretRef,omitempty"`

	// Provider of the credentials: generic (from secretRef, or none), github (a GitHub App
	// installation token from secretRef's app, sent as basic auth with x-access-token) or azure
	// (an Entra ID token of the workload identity, for Azure DevOps). Provider github and azure
	// need an http(s) URL.
	// +optional
	// +kubebuilder:validation:Enum=generic;github;azure
	// +kubebuilder:default=generic
	Provider string `json:"provider,omitempty"`

	// ServiceAccountName names a ServiceAccount in the same namespace whose workload identity
	// provider azure uses instead of the controller's. It needs source-controller started with
	// --feature-gates=ObjectLevelWorkloadIdentity=true.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	ServiceAccountName string `json:"serviceAccountName,omitempty"`
	// ProxySecretRef names a Secret in the same namespace with the HTTP(S) proxy that every
	// connection of this object goes through: `address` (http://host:port or https://host:port),
	// and optionally `username` and `password` (proxy basic auth). NO_PROXY of the controller's
	// environment still applies to the remote's host. Without it, the controller's environment
	// proxies (HTTPS_PROXY, HTTP_PROXY) apply as before.
	// Applies to http(s) URLs; an ssh:// URL with a proxy is refused (InvalidSpec).
	// +optional
	ProxySecretRef *meta.LocalObjectReference `json:"proxySecretRef,omitempty"`

	// Ref selects the revision. When several fields are set the most specific wins:
	// commit > name > semver > tag > branch. Empty: the remote's default branch.
	// +optional
	Ref *GitRepositoryRef `json:"ref,omitempty"`

	// Interval between two checks of the remote, e.g. 1m or 10m30s; at least 1s.
	// +required
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern="^([0-9]+(\\.[0-9]+)?(ms|s|m|h))+$"
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('1s')",message="interval must be at least 1s"
	Interval metav1.Duration `json:"interval"`

	// Timeout bounds one attempt: listing refs, fetching and writing the artifact.
	// +optional
	// +kubebuilder:default="60s"
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern="^([0-9]+(\\.[0-9]+)?(ms|s|m|h))+$"
	Timeout *metav1.Duration `json:"timeout,omitempty"`

	// Suspend stops fetching; the last artifact stays served.
	// +optional
	Suspend bool `json:"suspend,omitempty"`

	// Ignore holds patterns in .gitignore syntax of files to leave out of the artifact. When
	// set it replaces the default list (CI and Git metadata: .github/, .gitlab/, .circleci/,
	// .gitlab-ci.yml, .travis.yml, .gitattributes, .gitignore, .gitmodules); the
	// `.sourceignore` files of the repository apply on top of either.
	// +optional
	Ignore *string `json:"ignore,omitempty"`

	// RecurseSubmodules also fetches the repository's submodules and puts their files in place.
	// The credentials are reused for submodules on the same host; only http, https and ssh
	// submodule URLs are fetched.
	// +optional
	RecurseSubmodules bool `json:"recurseSubmodules,omitempty"`

	// SparseCheckout lists folders (relative to the repository root, without '..'); only they go
	// into the artifact.
	// +optional
	// +kubebuilder:validation:MaxItems=100
	// +kubebuilder:validation:items:MinLength=1
	// +kubebuilder:validation:items:MaxLength=1024
	// +kubebuilder:validation:XValidation:rule="self.all(p, !p.startsWith('/') && !p.matches('(^|/)[.][.](/|$)'))",message="sparseCheckout folders must be relative paths without '..'"
	SparseCheckout []string `json:"sparseCheckout,omitempty"`

	// Include copies the artifacts of other GitRepositories in this namespace into this one's.
	// A new artifact of an included GitRepository rebuilds this one.
	// +optional
	// +kubebuilder:validation:MaxItems=50
	Include []GitRepositoryInclude `json:"include,omitempty"`

	// Verification checks the signatures of the fetched commit and/or annotated tag before an
	// artifact is written: OpenPGP and SSH (gpg.format ssh) signatures, against the keys of a
	// Secret. A revision that fails keeps the last verified artifact served.
	// +optional
	Verification *GitRepositoryVerification `json:"verify,omitempty"`
}

// GitVerificationMode says which Git objects must carry a trusted signature.
// +kubebuilder:validation:Enum=head;HEAD;Tag;TagAndHEAD
type GitVerificationMode string

const (
	// ModeGitHEAD verifies the commit the ref resolves to; "head" is the same (Flux's old name).
	ModeGitHEAD GitVerificationMode = "HEAD"
	// ModeGitTag verifies the annotated tag that spec.ref.tag, semver or a refs/tags/ name selects.
	ModeGitTag GitVerificationMode = "Tag"
	// ModeGitTagAndHEAD verifies the annotated tag and the commit it points to.
	ModeGitTagAndHEAD GitVerificationMode = "TagAndHEAD"
)

// GitRepositoryVerification names the trusted keys and what to verify with them.
type GitRepositoryVerification struct {
	// Mode: HEAD verifies the commit (also for a tag ref: the commit the tag points to), Tag the
	// annotated tag that spec.ref.tag, spec.ref.semver or a refs/tags/ spec.ref.name selects,
	// TagAndHEAD both. A tag mode with a ref that is not a tag is refused (InvalidSpec).
	// +optional
	// +kubebuilder:default=HEAD
	Mode GitVerificationMode `json:"mode,omitempty"`

	// SecretRef names a Secret in the same namespace with the trusted public keys: ASCII-armored
	// OpenPGP keys under keys ending in .asc (gpg --export --armor), SSH public keys under keys
	// ending in .sshpub (one authorized_keys line each), and/or an OpenSSH allowed-signers file
	// under allowed_signers (principals, optional namespaces/valid-after/valid-before, key). A
	// signature by any of them passes.
	// +required
	SecretRef meta.LocalObjectReference `json:"secretRef"`
}

// GetMode returns the mode, HEAD when unset or "head".
func (v *GitRepositoryVerification) GetMode() GitVerificationMode {
	if v.Mode == "" || v.Mode == "head" {
		return ModeGitHEAD
	}
	return v.Mode
}

// GitRepositoryRef selects a revision of a repository.
type GitRepositoryRef struct {
	// Branch to follow, e.g. main.
	// +optional
	Branch string `json:"branch,omitempty"`

	// Tag to fetch, e.g. v1.2.0.
	// +optional
	Tag string `json:"tag,omitempty"`

	// SemVer is a range of tags to pick the highest from, e.g. ">=1.0.0 <2.0.0" or "1.x".
	// +optional
	SemVer string `json:"semver,omitempty"`

	// Name is a full reference name, e.g. refs/heads/main, refs/tags/v1 or refs/pull/7/head.
	// +optional
	// +kubebuilder:validation:Pattern="^refs/.+$"
	Name string `json:"name,omitempty"`

	// Commit is a full 40-character SHA-1. With Branch, the branch is fetched and the commit
	// must be in its history.
	// +optional
	// +kubebuilder:validation:Pattern="^[0-9a-f]{40}$"
	Commit string `json:"commit,omitempty"`
}

// GitRepositoryInclude copies another GitRepository's artifact into this one.
// +kubebuilder:validation:XValidation:rule="!has(self.fromPath) || (!self.fromPath.startsWith('/') && !self.fromPath.matches('(^|/)[.][.](/|$)'))",message="fromPath must be a relative path without '..'"
// +kubebuilder:validation:XValidation:rule="!has(self.toPath) || (!self.toPath.startsWith('/') && !self.toPath.matches('(^|/)[.][.](/|$)'))",message="toPath must be a relative path without '..'"
type GitRepositoryInclude struct {
	// Repository names the GitRepository in this namespace to include.
	// +required
	Repository meta.LocalObjectReference `json:"repository"`

	// FromPath is the folder of the included artifact to copy; empty copies all of it.
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	FromPath string `json:"fromPath,omitempty"`

	// ToPath is the folder of this artifact to copy into; empty means the included
	// repository's name. This repository's own files under it are replaced.
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	ToPath string `json:"toPath,omitempty"`
}

// GitRepositoryStatus is what the controller observed and published.
type GitRepositoryStatus struct {
	// ObservedGeneration is the generation of the spec last reconciled.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// Conditions: Ready, Reconciling, Stalled, ArtifactInStorage, FetchFailed, SourceVerified.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// Artifact is the tarball published for the last fetched revision.
	// +optional
	Artifact *meta.Artifact `json:"artifact,omitempty"`

	// IncludedArtifacts are the artifacts of the included GitRepositories, as copied.
	// +optional
	IncludedArtifacts []meta.Artifact `json:"includedArtifacts,omitempty"`

	// ObservedIgnore is the spec.ignore that the artifact was built with.
	// +optional
	ObservedIgnore *string `json:"observedIgnore,omitempty"`

	// ObservedRecurseSubmodules is the spec.recurseSubmodules that the artifact was built with.
	// +optional
	ObservedRecurseSubmodules bool `json:"observedRecurseSubmodules,omitempty"`

	// ObservedSparseCheckout is the spec.sparseCheckout that the artifact was built with.
	// +optional
	// +kubebuilder:validation:MaxItems=100
	ObservedSparseCheckout []string `json:"observedSparseCheckout,omitempty"`

	// ObservedInclude is the spec.include that the artifact was built with.
	// +optional
	// +kubebuilder:validation:MaxItems=50
	ObservedInclude []GitRepositoryInclude `json:"observedInclude,omitempty"`

	// SourceVerificationMode is the spec.verify.mode the artifact's revision was verified with;
	// empty when it was not verified.
	// +optional
	SourceVerificationMode *GitVerificationMode `json:"sourceVerificationMode,omitempty"`

	// ObservedVerification is a digest of spec.verify and the trusted keys of its Secret that
	// the artifact's revision was verified with: while it and the revision stay the same, a
	// reconcile does not verify again.
	// +optional
	ObservedVerification string `json:"observedVerification,omitempty"`

	meta.ReconcileRequestStatus `json:",inline"`
}

// GitRepository fetches a Git repository and publishes a revision of it as a tarball artifact.
// +kubebuilder:object:root=true
// +kubebuilder:validation:XValidation:rule="!has(self.spec.include) || self.spec.include.all(i, i.repository.name != self.metadata.name)",message="a GitRepository cannot include itself"
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=gitrepo,categories=plumb
// +kubebuilder:printcolumn:name="Ready",type="string",JSONPath=".status.conditions[?(@.type==\"Ready\")].status"
// +kubebuilder:printcolumn:name="Status",type="string",JSONPath=".status.conditions[?(@.type==\"Ready\")].message"
// +kubebuilder:printcolumn:name="Revision",type="string",JSONPath=".status.artifact.revision"
// +kubebuilder:printcolumn:name="URL",type="string",JSONPath=".spec.url",priority=1
// +kubebuilder:printcolumn:name="Age",type="date",JSONPath=".metadata.creationTimestamp"
type GitRepository struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// +required
	Spec GitRepositorySpec `json:"spec"`
	// +optional
	Status GitRepositoryStatus `json:"status,omitempty"`
}

// GitRepositoryList is a list of GitRepositories.
// +kubebuilder:object:root=true
type GitRepositoryList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []GitRepository `json:"items"`
}

// GetConditions returns the status conditions.
func (in *GitRepository) GetConditions() []metav1.Condition { return in.Status.Conditions }

// SetConditions replaces the status conditions.
func (in *GitRepository) SetConditions(c []metav1.Condition) { in.Status.Conditions = c }

// GetArtifact returns the published artifact, or nil.
func (in *GitRepository) GetArtifact() *meta.Artifact { return in.Status.Artifact }

// GetTimeout returns spec.timeout, or 60s when unset.
func (in *GitRepository) GetTimeout() time.Duration {
	if in.Spec.Timeout == nil || in.Spec.Timeout.Duration <= 0 {
		return 60 * time.Second
	}
	return in.Spec.Timeout.Duration
}

// GetRequeueAfter returns spec.interval.
func (in *GitRepository) GetRequeueAfter() time.Duration { return in.Spec.Interval.Duration }

// GetRef returns the effective ref: spec.ref, or an empty ref for the default branch.
func (in *GitRepository) GetRef() GitRepositoryRef {
	if in.Spec.Ref == nil {
		return GitRepositoryRef{}
	}
	return *in.Spec.Ref
}
