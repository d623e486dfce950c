package v1beta1

// Reasons of the Ready, Healthy and Stalled conditions. The event reason equals the Ready reason.
const (
	// SucceededReason: the build of the source revision is applied (and healthy, when waited for).
	SucceededReason = "Succeeded"
	// ProgressingReason: a reconcile is under way.
	ProgressingReason = "Progressing"
	// SourceNotReadyReason: the source is missing, not Ready, or has no artifact yet.
	SourceNotReadyReason = "SourceNotReady"
	// DependencyNotReadyReason: an object of spec.dependsOn is missing or not Ready.
	DependencyNotReadyReason = "DependencyNotReady"
	// ArtifactFailedReason: downloading, verifying or unpacking the artifact failed.
	ArtifactFailedReason = "ArtifactFailed"
	// BuildFailedReason: kustomize build or variable substitution failed; nothing was applied.
	BuildFailedReason = "BuildFailed"
	// DecryptionFailedReason: a SOPS-encrypted file of the source could not be decrypted with
	// the keys of spec.decryption.secretRef, or that Secret is missing; nothing was applied.
	DecryptionFailedReason = "DecryptionFailed"
	// ApplyFailedReason: the API server refused an object; nothing was pruned.
	ApplyFailedReason = "ApplyFailed"
	// PruneFailedReason: deleting objects that left the build failed.
	PruneFailedReason = "PruneFailed"
	// HealthCheckFailedReason: applied objects did not become healthy within spec.timeout.
	HealthCheckFailedReason = "HealthCheckFailed"
	// HealthCheckCanceledReason: a newer revision arrived while the health checks waited; the
	// checks start again for it.
	HealthCheckCanceledReason = "HealthCheckCanceled"
	// DriftDetectedReason: objects differ from Git and spec.driftPolicy is Warn.
	DriftDetectedReason = "DriftDetected"
	// InvalidSpecReason: the spec holds a value the controller cannot use; fix the spec.
	InvalidSpecReason = "InvalidSpec"
	// DependencyCycleReason: spec.dependsOn leads back to this Kustomization.
	DependencyCycleReason = "DependencyCycle"
	// AccessDeniedReason: a reference the controller's flags forbid (cross-namespace).
	AccessDeniedReason = "AccessDenied"
	// InvalidCELExpressionReason: an expression of spec.healthCheckExprs or
	// spec.dependsOn[].readyExpr does not compile; the message names it.
	InvalidCELExpressionReason = "InvalidCELExpression"
	// TerminationTimeoutReason: with deletionPolicy WaitForTermination, deleted objects were
	// still there after spec.timeout; the Kustomization was let go without them being gone.
	TerminationTimeoutReason = "TerminationTimeout"
)

// Finalizer is set on Kustomizations that must clean up what they applied when deleted.
const Finalizer = "plumb.dev/finalizer"

// Per-object annotations read from the built manifests.
const (
	// SSAAnnotation: "Ignore" never applies the object, "IfNotPresent" creates it only,
	// "Merge" applies without taking ownership of fields set by others.
	SSAAnnotation = "apply.plumb.dev/ssa"
	// PruneAnnotation: "Disabled" keeps the object when it leaves the build.
	PruneAnnotation = "apply.plumb.dev/prune"
	// ForceAnnotation: "Enabled" recreates the object when an immutable field changed.
	ForceAnnotation = "apply.plumb.dev/force"
)
