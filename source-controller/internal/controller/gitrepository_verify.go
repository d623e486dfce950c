package controller

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"

	"github.com/fluxcd/pkg/apis/meta"
	"github.com/fluxcd/pkg/runtime/conditions"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"

	sourcev1 "github.com/plumb-dev/plumb/source-controller/api/v1beta1"
	"github.com/plumb-dev/plumb/source-controller/internal/git"
)

// VerifiedMetadataKey is the artifact metadata key that records the signatures a verified
// revision passed, so that every GitRepository sharing the build can report them.
const VerifiedMetadataKey = "source.plumb.dev/verified-signatures"

// gitVerify is spec.verify with the keys of its Secret, read once per reconcile.
type gitVerify struct {
	mode   sourcev1.GitVerificationMode
	secret map[string][]byte
	// key identifies mode and keys: the artifact of a revision verified under the same key is
	// not verified again.
	key string
}

// errVerifySecret marks a keys Secret that cannot be read.
var errVerifySecret = errors.New("verification Secret")

// verifySettings reads spec.verify's Secret; nil without spec.verify.
func (r *GitRepositoryReconciler) verifySettings(ctx context.Context, obj *sourcev1.GitRepository) (*gitVerify, error) {
	v := obj.Spec.Verification
	if v == nil {
		return nil, nil
	}
	secret := &corev1.Secret{}
	key := types.NamespacedName{Namespace: obj.Namespace, Name: v.SecretRef.Name}
	if err := r.Get(ctx, key, secret); err != nil {
		if apierrors.IsNotFound(err) {
			err = fmt.Errorf("%w: spec.verify.secretRef: Secret %s not found", errVerifySecret, key)
		} else {
			err = fmt.Errorf("%w: spec.verify.secretRef: Secret %s: %v", errVerifySecret, key, err)
		}
		return nil, r.failure(obj, "", err)
	}
	mode := v.GetMode()
	h := sha256.Sum256([]byte(string(mode) + "\x00" + git.KeysDigest(secret.Data)))
	return &gitVerify{mode: mode, secret: secret.Data, key: hex.EncodeToString(h[:])}, nil
}

// verification parses the keys for a build; nil without spec.verify.
func (s *gitVerify) verification() (*git.Verification, error) {
	if s == nil {
		return nil, nil
	}
	keys, err := git.ParseKeyring(s.secret)
	if err != nil {
		return nil, err
	}
	return &git.Verification{Mode: string(s.mode), Keys: keys}, nil
}

func (s *gitVerify) cacheKey() string {
	if s == nil {
		return ""
	}
	return s.key
}

// markGitVerified records the verification of the artifact now served, or clears it without
// spec.verify.
func markGitVerified(obj *sourcev1.GitRepository, s *gitVerify) {
	if s == nil {
		obj.Status.SourceVerificationMode = nil
		obj.Status.ObservedVerification = ""
		conditions.Delete(obj, sourcev1.SourceVerifiedCondition)
		return
	}
	mode := s.mode
	obj.Status.SourceVerificationMode = &mode
	obj.Status.ObservedVerification = s.key
	signed := "verified"
	if a := obj.Status.Artifact; a != nil && a.Metadata[VerifiedMetadataKey] != "" {
		signed = a.Metadata[VerifiedMetadataKey]
	}
	conditions.MarkTrue(obj, sourcev1.SourceVerifiedCondition, sourcev1.SucceededReason, "%s", signed)
}

// verifyReason maps a verification failure to its reason, or "" for other errors.
func verifyReason(err error) string {
	switch {
	case errors.Is(err, git.ErrCommitSignature):
		return sourcev1.InvalidCommitSignatureReason
	case errors.Is(err, git.ErrTagSignature):
		return sourcev1.InvalidTagSignatureReason
	case errors.Is(err, git.ErrKeys), errors.Is(err, errVerifySecret):
		return sourcev1.VerificationErrorReason
	}
	return ""
}

// markVerifyFailed sets SourceVerified=False beside Ready=False for a verification failure.
func markVerifyFailed(obj *sourcev1.GitRepository, reason string, err error) {
	conditions.MarkFalse(obj, sourcev1.SourceVerifiedCondition, reason, "%s", err.Error())
}

// validateVerify refuses a tag mode with a ref that does not select a tag: there is no tag
// object to verify.
func validateVerify(obj *sourcev1.GitRepository) error {
	v := obj.Spec.Verification
	if v == nil || !git.WantsTag(string(v.GetMode())) {
		return nil
	}
	ref := obj.GetRef()
	isTag := strings.HasPrefix(ref.Name, "refs/tags/") ||
		ref.Name == "" && ref.Commit == "" && (ref.Tag != "" || ref.SemVer != "")
	if !isTag {
		return fmt.Errorf("spec.verify.mode %s verifies a tag: spec.ref needs a tag, a semver range or a refs/tags/ name (without a commit)", v.GetMode())
	}
	return nil
}

// withVerified records the signatures a build verified in its artifact's metadata.
func withVerified(a *meta.Artifact, v git.Verified) {
	if a == nil || len(v) == 0 {
		return
	}
	if a.Metadata == nil {
		a.Metadata = map[string]string{}
	}
	a.Metadata[VerifiedMetadataKey] = v.String()
}
