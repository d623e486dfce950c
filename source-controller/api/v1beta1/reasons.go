package v1beta1

// Conditions every source kind sets beside Ready, Reconciling and Stalled.
const (
	// ArtifactInStorageCondition is True while an artifact is stored and served, with its
	// revision in the message: a failed fetch leaves the last good artifact in service.
	ArtifactInStorageCondition = "ArtifactInStorage"
	// FetchFailedCondition is True while the last fetch from the remote failed, with the
	// failure's reason; it is removed once a fetch succeeds.
	FetchFailedCondition = "FetchFailed"
)

// Reasons of the Ready and Stalled conditions. The event reason equals the Ready reason.
const (
	// SucceededReason: the artifact for the wanted revision is stored and served.
	SucceededReason = "Succeeded"
	// ProgressingReason: a reconcile is under way.
	ProgressingReason = "Progressing"
	// GitOperationFailedReason: listing, cloning or reading the repository failed.
	GitOperationFailedReason = "GitOperationFailed"
	// AuthenticationFailedReason: the remote refused the credentials, or the credentials Secret
	// is missing or incomplete.
	AuthenticationFailedReason = "AuthenticationFailed"
	// ProxyFailedReason: the proxySecretRef Secret is missing or its address is not a proxy
	// URL, or the proxy cannot be reached or refused the credentials (407); the message names
	// the proxy host, never the credentials.
	ProxyFailedReason = "ProxyFailed"
	// FeatureGateDisabledReason: the spec needs a feature the controller runs without (Flux's
	// reason); serviceAccountName as a cloud identity needs
	// --feature-gates=ObjectLevelWorkloadIdentity=true. Stalled until the spec or the flag
	// changes.
	FeatureGateDisabledReason = "FeatureGateDisabled"
	// RefNotFoundReason: the branch, tag, semver range, reference name or commit does not exist.
	RefNotFoundReason = "RefNotFound"
	// InvalidSpecReason: the spec holds a value the controller cannot use; fix the spec.
	InvalidSpecReason = "InvalidSpec"
	// BuildFailedReason: the content cannot be published as it is (a symlink that leaves it, a
	// broken .gitmodules, an OCI manifest without the selected layer, a layer with unsafe paths
	// or over the size limit); retried, so a fixed revision is picked up.
	BuildFailedReason = "BuildFailed"
	// IncludeFailedReason: an included GitRepository has no artifact yet, or copying it failed.
	IncludeFailedReason = "IncludeFailed"
	// OCIOperationFailedReason: talking to the registry failed (unreachable, an error answer).
	OCIOperationFailedReason = "OCIOperationFailed"
	// NoMatchingVersionReason: no tag matches the semver range (the message lists the nearest
	// versions found), or the tag or digest does not exist.
	NoMatchingVersionReason = "NoMatchingVersion"
	// IndexFetchFailedReason: the repository's index.yaml could not be downloaded (unreachable,
	// an error answer).
	IndexFetchFailedReason = "IndexFetchFailed"
	// IndexInvalidReason: the index.yaml is not a usable chart index (broken YAML, no
	// apiVersion or entries, over the size limit).
	IndexInvalidReason = "IndexInvalid"
	// ChartPullFailedReason: downloading the chart (or a dependency) failed.
	ChartPullFailedReason = "ChartPullFailed"
	// SourceNotReadyReason: the HelmChart's source is missing or has no artifact yet; it is
	// reconciled again when the source publishes one.
	SourceNotReadyReason = "SourceNotReady"
	// ChartPackageFailedReason: the chart cannot be loaded or packaged (an invalid Chart.yaml,
	// a missing values file, a dependency that cannot be resolved, unsafe paths).
	ChartPackageFailedReason = "ChartPackageFailed"
	// HostBusyReason: the remote's host already has --max-per-host operations in flight; the
	// object waits and is looked at again shortly.
	HostBusyReason = "HostBusy"
	// BucketOperationFailedReason: talking to the bucket's endpoint failed (unreachable, an
	// error answer other than a refusal of the credentials or a missing bucket).
	BucketOperationFailedReason = "BucketOperationFailed"
	// BucketNotFoundReason: the endpoint answered that spec.bucketName does not exist; retried,
	// so a bucket created later is picked up.
	BucketNotFoundReason = "BucketNotFound"
	// ProviderNotSupportedReason: the Bucket's provider is not one this controller implements
	// (generic, aws, gcp, azure): only seen with a CRD newer than the controller; Stalled until
	// the spec changes.
	ProviderNotSupportedReason = "ProviderNotSupported"
	// ArtifactFailedReason: writing the artifact to, or deleting it from, storage failed.
	ArtifactFailedReason = "ArtifactFailed"
)

// Signature verification (spec.verify of GitRepository, OCIRepository and HelmChart).
const (
	// SourceVerifiedCondition is True while the served artifact passed spec.verify, with the
	// signer in the message (key fingerprints for Git; key fingerprint or certificate issuer
	// and subject for OCI artifacts); False with the failure's reason when the latest revision
	// did not; absent without spec.verify.
	SourceVerifiedCondition = "SourceVerified"
	// InvalidCommitSignatureReason: the commit is unsigned, or no key of spec.verify's Secret
	// made its signature (Flux's reason); retried, so a new signed commit is picked up.
	InvalidCommitSignatureReason = "InvalidCommitSignature"
	// InvalidTagSignatureReason: the tag is unsigned or lightweight, or no key of spec.verify's
	// Secret made its signature (Flux's reason); retried.
	InvalidTagSignatureReason = "InvalidTagSignature"
	// VerificationErrorReason: for Git, the keys Secret of spec.verify is missing or holds no
	// usable key; for OCI artifacts, no signature of the artifact's digest verifies with the
	// trusted material (none found, another key or identity, an expired certificate, a
	// signature of another digest), or that material is missing or unusable. The last verified
	// artifact stays served, and it is retried (Flux's reason).
	VerificationErrorReason = "VerificationError"
	// VerificationRequiredReason: source-controller runs with --require-verification naming
	// this kind, and the object has no spec.verify (or, for a HelmChart, its chart comes from a
	// HelmRepository that is not OCI, whose charts cannot be verified). Stalled until the object
	// changes; an artifact served before stays served. A HelmChart packaged from a GitRepository
	// or OCIRepository whose artifact is not verified waits with this reason instead, retried.
	VerificationRequiredReason = "VerificationRequired"
)

// SourceFinalizer is set on every source so that its artifacts are deleted with it.
const SourceFinalizer = "plumb.dev/finalizer"
