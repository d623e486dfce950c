package v1beta1

// Condition types of HelmRelease, besides Ready, Reconciling and Stalled.
const (
	// ReleasedCondition: the last install or upgrade succeeded.
	ReleasedCondition = "Released"
	// TestSuccessCondition: the tests of the current revision passed.
	TestSuccessCondition = "TestSuccess"
	// RemediatedCondition: a failure was rolled back or uninstalled.
	RemediatedCondition = "Remediated"
	// DriftedCondition: objects of the release differ from its manifest.
	DriftedCondition = "Drifted"
)

// Reasons of the conditions. The event reason equals the condition reason.
const (
	SucceededReason        = "Succeeded"
	ProgressingReason      = "Progressing"
	InstallSucceededReason = "InstallSucceeded"
	InstallFailedReason    = "InstallFailed"
	UpgradeSucceededReason = "UpgradeSucceeded"
	UpgradeFailedReason    = "UpgradeFailed"
	// AdoptSucceededReason: a deployed release that no HelmRelease owned (made by Flux's
	// helm-controller or with helm install) was what this HelmRelease deploys, and was taken
	// over as it is: Plumb's labels on its stored revision, no new revision.
	AdoptSucceededReason     = "AdoptSucceeded"
	TestSucceededReason      = "TestSucceeded"
	TestFailedReason         = "TestFailed"
	RollbackSucceededReason  = "RollbackSucceeded"
	RollbackFailedReason     = "RollbackFailed"
	UninstallSucceededReason = "UninstallSucceeded"
	UninstallFailedReason    = "UninstallFailed"
	// RetriesExhaustedReason: the failures reached the remediation retries; a change of chart,
	// values or spec, or the helm.plumb.dev/resetAt annotation, starts again.
	RetriesExhaustedReason = "RetriesExhausted"
	// ArtifactFailedReason: the chart artifact could not be downloaded, did not verify, or is
	// not a chart.
	ArtifactFailedReason = "ArtifactFailed"
	// SourceNotReadyReason: the chart source is missing or has no artifact.
	SourceNotReadyReason = "SourceNotReady"
	// DependencyCycleReason: dependsOn through HelmReleases leads back to this one (stalled).
	DependencyCycleReason = "DependencyCycle"
	// DependencyNotReadyReason: an object of dependsOn is missing or not Ready.
	DependencyNotReadyReason = "DependencyNotReady"
	// ValuesFailedReason: a valuesFrom object or key is missing, or values are not YAML.
	ValuesFailedReason = "ValuesFailed"
	// DecryptionFailedReason: a SOPS-encrypted valuesFrom document could not be decrypted with
	// the keys of spec.decryption, that Secret is missing, or the HelmRelease has no
	// spec.decryption; nothing was installed or upgraded.
	DecryptionFailedReason = "DecryptionFailed"
	// RenderFailedReason: the chart does not render with the values (schema, templates).
	RenderFailedReason = "RenderFailed"
	// DriftDetectedReason: objects of the release differ from its manifest.
	DriftDetectedReason = "DriftDetected"
	// DriftCorrectedReason: drifted objects were put back.
	DriftCorrectedReason = "DriftCorrected"
	// ClusterNotReadyReason: the cluster to release into cannot be used yet (its kubeconfig
	// Secret is missing, or Helm's client could not be made).
	ClusterNotReadyReason = "ClusterNotReady"
	// InvalidCELExpressionReason: an expression of spec.healthCheckExprs or
	// spec.dependsOn[].readyExpr does not compile (stalled).
	InvalidCELExpressionReason = "InvalidCELExpression"
	// InvalidSpecReason: a value the controller cannot use.
	InvalidSpecReason = "InvalidSpec"
)
