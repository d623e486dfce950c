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
	// FeatureGateDisabledReason: spec.decryption.serviceAccountName on a controller without
	// --feature-gates=ObjectLevelWorkloadIdentity=true.
	FeatureGateDisabledReason = "FeatureGateDisabled"
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

	// FluxSSAAnnotation, FluxPruneAnnotation and FluxForceAnnotation are Flux's keys of the
	// same annotations (or labels), honoured alike, so that an object moved from Flux keeps
	// its meaning: one marked "never prune" is not pruned by Plumb.
	FluxSSAAnnotation   = "kustomize.toolkit.fluxcd.io/ssa"
	FluxPruneAnnotation = "kustomize.toolkit.fluxcd.io/prune"
	FluxForceAnnotation = "kustomize.toolkit.fluxcd.io/force"
)

// Selectors of the per-object annotations: each matches the value (in any case, as fluxcd/pkg/ssa
// compares) under Plumb's key or Flux's, in the annotations or the labels.

// SSASelector matches objects whose ssa annotation is value (Ignore, IfNotPresent or Merge).
func SSASelector(value string) map[string]string {
	return map[string]string{SSAAnnotation: value, FluxSSAAnnotation: value}
}

// PruneDisabledSelector matches objects that are never pruned or deleted with their owner.
func PruneDisabledSelector() map[string]string {
	return map[string]string{PruneAnnotation: "Disabled", FluxPruneAnnotation: "Disabled"}
}

// ForceSelector matches objects recreated when an immutable field changed.
func ForceSelector() map[string]string {
	return map[string]string{ForceAnnotation: "Enabled", FluxForceAnnotation: "Enabled"}
}
