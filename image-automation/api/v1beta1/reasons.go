package v1beta1

// Reasons of the Ready and Stalled conditions, and of the events.
const (
	// SucceededReason: the last run did what it had to.
	SucceededReason = "Succeeded"
	// ProgressingReason: a run is under way.
	ProgressingReason = "Progressing"
	// InvalidSpecReason: the spec cannot work as written (a bad regex, range or template);
	// Stalled until it changes.
	InvalidSpecReason = "InvalidSpec"
	// AuthenticationFailedReason: credentials are missing, unreadable or refused.
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
	// ScanFailedReason: the registry could not be reached or answered an error.
	ScanFailedReason = "ScanFailed"
	// ImageNotFoundReason: the registry has no such repository.
	ImageNotFoundReason = "ImageNotFound"
	// AccessDeniedReason: an ImageRepository of another namespace does not grant access.
	AccessDeniedReason = "AccessDenied"
	// DependencyNotReadyReason: the ImageRepository or GitRepository is missing or not scanned
	// yet.
	DependencyNotReadyReason = "DependencyNotReady"
	// NoMatchingTagReason: no tag qualifies for the policy.
	NoMatchingTagReason = "NoMatchingTag"
	// DigestFailedReason: the chosen tag's digest could not be looked up.
	DigestFailedReason = "DigestFailed"
	// GitOperationFailedReason: clone, fetch or commit failed.
	GitOperationFailedReason = "GitOperationFailed"
	// PushFailedReason: the Git server refused the push; nothing is forced, and the next run
	// makes the commit again from the branch as it is then.
	PushFailedReason = "PushFailed"
	// HostBusyReason: the registry's host already has --max-per-host scans in flight; the
	// ImageRepository waits and is looked at again shortly.
	HostBusyReason = "HostBusy"
	// UpdateFailedReason: the files under update.path could not be read or written. Markers that
	// are left alone (a missing policy, a value that is not a scalar) are Warning events with
	// this reason, not failures.
	UpdateFailedReason = "UpdateFailed"
)
