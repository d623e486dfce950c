package controller

import (
	"fmt"
	"slices"
	"strings"

	"github.com/fluxcd/pkg/runtime/conditions"

	sourcev1 "github.com/plumb-dev/plumb/source-controller/api/v1beta1"
)

// verifiableKinds are the kinds --require-verification may name: the ones with spec.verify.
var verifiableKinds = []string{sourcev1.GitRepositoryKind, sourcev1.OCIRepositoryKind, sourcev1.HelmChartKind}

// ParseRequireVerification reads the value of --require-verification, a comma-separated list of
// kinds, into the set of kinds whose objects must verify their source. An empty value requires
// nothing; a kind that cannot be verified is an error, so that a typo does not silently leave a
// kind unguarded.
func ParseRequireVerification(value string) (map[string]bool, error) {
	kinds := map[string]bool{}
	for k := range strings.SplitSeq(value, ",") {
		k = strings.TrimSpace(k)
		if k == "" {
			continue
		}
		if !slices.Contains(verifiableKinds, k) {
			return nil, fmt.Errorf("--require-verification: %q is not a kind that can be verified; use a comma-separated list of %s", k, strings.Join(verifiableKinds, ", "))
		}
		kinds[k] = true
	}
	return kinds, nil
}

// verificationRequiredMessage says that the cluster requires verification of kind and what to
// add to the object.
func verificationRequiredMessage(kind, howTo string) string {
	return fmt.Sprintf("this cluster requires every %s to verify its source (source-controller's --require-verification includes %s): %s", kind, kind, howTo)
}

// refuseUnverified stalls obj, which the policy requires to be verified and cannot be:
// Stalled=True and Ready=False with VerificationRequired, SourceVerified=False. Nothing is
// fetched, and the artifact served before, if any, stays served: a consumer of a Ready source
// keeps what it applied, and sees Ready=False.
func (h statusHelper) refuseUnverified(obj sourceObject, msg string) error {
	conditions.MarkFalse(obj, sourcev1.SourceVerifiedCondition, sourcev1.VerificationRequiredReason, "%s", msg)
	return h.stall(obj, sourcev1.VerificationRequiredReason, msg)
}

// The ways to satisfy the policy, by kind.
const (
	gitVerifyHowTo  = "add spec.verify with a mode (HEAD, Tag or TagAndHEAD) and a secretRef to a Secret of the signers' OpenPGP public keys or SSH allowed signers"
	ociVerifyHowTo  = "add spec.verify with provider cosign (a secretRef to a Secret of .pub keys, or matchOIDCIdentity for keyless signatures) or notation (a secretRef to the trust policy and certificates)"
	helmVerifyHowTo = "add spec.verify (provider cosign or notation) to a chart from an OCI HelmRepository; for a HelmRelease, spec.chart.spec.verify"
)
