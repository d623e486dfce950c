package controller

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
	"github.com/fluxcd/pkg/apis/meta"
	"github.com/fluxcd/pkg/runtime/conditions"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	imagev1 "github.com/plumb-dev/plumb/image-automation/api/v1beta1"
)

// A Flux-shaped automation: sourceRef.apiVersion, signingKey {secretRef, type: gpg} with a key
// encrypted by its passphrase, and messageTemplateValues in the commit message. The commit's
// OpenPGP signature verifies against the key's public half.
func TestAutomation_FluxSigningKeyAndTemplateValues(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t, nil)
	image := newImage()
	pushTags(t, image, "1.0.0", "1.2.0")
	manifest := strings.NewReplacer("%s:1.0.0", image+":1.0.0").Replace(deployment)
	manifest = strings.ReplaceAll(manifest, "%s", ns)
	repo := newGitRepo(t, map[string]string{"apps/deploy.yaml": manifest})
	gitRepository(g, ns, "config", repo.URL)

	e, err := openpgp.NewEntity("bot", "", "bot@example.com", nil)
	g.Expect(err).NotTo(HaveOccurred())
	var public bytes.Buffer
	w, err := armor.Encode(&public, openpgp.PublicKeyType, nil)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(e.Serialize(w)).To(Succeed())
	g.Expect(w.Close()).To(Succeed())
	g.Expect(e.EncryptPrivateKeys([]byte("open-sesame"), nil)).To(Succeed())
	var private bytes.Buffer
	w, err = armor.Encode(&private, openpgp.PrivateKeyType, nil)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(e.SerializePrivateWithoutSigning(w, nil)).To(Succeed())
	g.Expect(w.Close()).To(Succeed())
	// The Secret also holds an SSH identity (a GitRepository's SSH Secret, reused): type gpg
	// says which key signs.
	g.Expect(k8s.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "gpg", Namespace: ns},
		Data: map[string][]byte{"git.asc": private.Bytes(), "passphrase": []byte("open-sesame"), "identity": []byte("not used")}})).To(Succeed())

	g.Expect(k8s.Create(ctx, imageRepository(ns, "app", image))).To(Succeed())
	g.Expect(k8s.Create(ctx, semverPolicy(ns, "app", "", "app", "1.x"))).To(Succeed())
	auto := automation(ns, "apps", "config")
	auto.Spec.SourceRef.APIVersion = "source.plumb.dev/v1beta1"
	auto.Spec.Git.Commit.SigningKey = &imagev1.SigningKey{SecretRef: &meta.LocalObjectReference{Name: "gpg"}, Type: imagev1.SigningKeyTypeGPG}
	auto.Spec.Git.Commit.MessageTemplate = `[{{ index .Values "cluster" }}] {{ range .Changes }}{{ .NewValue }}{{ end }} by {{ .Values.team }}`
	auto.Spec.Git.Commit.MessageTemplateValues = map[string]string{"cluster": "prod-eu", "team": "payments"}
	g.Expect(k8s.Create(ctx, auto)).To(Succeed())

	g.Eventually(func(g Gomega) {
		g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(auto), auto)).To(Succeed())
		g.Expect(conditions.IsReady(auto)).To(BeTrue(), conditions.GetMessage(auto, meta.ReadyCondition))
		g.Expect(auto.Status.LastPushCommit).NotTo(BeEmpty())
	}, timeout, 100*time.Millisecond).Should(Succeed())
	content, commit := repo.file("main", "apps/deploy.yaml")
	g.Expect(content).To(ContainSubstring(image + ":1.2.0"))
	g.Expect(commit.Message).To(Equal("[prod-eu] " + image + ":1.2.0 by payments"))
	g.Expect(commit.PGPSignature).NotTo(BeEmpty())
	signer, err := commit.Verify(public.String())
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(signer.PrimaryKey.KeyId).To(Equal(e.PrimaryKey.KeyId))
}

// Flux's signingKey and sourceRef shapes that cannot work are refused before anything is
// cloned, with a message a person can act on.
func TestAutomation_FluxShapesRefused(t *testing.T) {
	ctx := context.Background()
	ns := newNamespace(t, nil)
	must := func(err error) {
		if err != nil {
			t.Fatal(err)
		}
	}
	must(k8s.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "pgp-only", Namespace: ns},
		Data: map[string][]byte{"git.asc": armoredKey(t, "")}}))
	for _, tc := range []struct {
		name    string
		mutate  func(*imagev1.ImageUpdateAutomation)
		stalled bool
		reason  string
		msg     string
	}{
		{"flux apiVersion", func(a *imagev1.ImageUpdateAutomation) { a.Spec.SourceRef.APIVersion = "source.toolkit.fluxcd.io/v1" },
			true, imagev1.InvalidSpecReason, `spec.sourceRef.apiVersion "source.toolkit.fluxcd.io/v1"`},
		{"template value missing", func(a *imagev1.ImageUpdateAutomation) {
			a.Spec.Git.Commit.MessageTemplate = "{{ .Values.cluster }}"
			a.Spec.Git.Commit.MessageTemplateValues = map[string]string{"team": "x"}
		}, true, imagev1.InvalidSpecReason, `map has no entry for key "cluster"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			r := &ImageUpdateAutomationReconciler{Client: k8s, APIReader: k8s}
			auto := automation(ns, "apps", "config")
			tc.mutate(auto)
			_, err := r.prepare(ctx, auto)
			g.Expect(err).To(HaveOccurred())
			g.Expect(conditions.IsStalled(auto)).To(Equal(tc.stalled))
			g.Expect(conditions.GetReason(auto, meta.ReadyCondition)).To(Equal(tc.reason))
			g.Expect(conditions.GetMessage(auto, meta.ReadyCondition)).To(ContainSubstring(tc.msg))
		})
	}

	// The schema takes one of Flux's secretRef and Plumb's earlier name.
	g := NewWithT(t)
	both := automation(ns, "both", "config")
	both.Spec.Git.Commit.SigningKey = &imagev1.SigningKey{SecretRef: &meta.LocalObjectReference{Name: "a"}, Name: "b"}
	err := k8s.Create(ctx, both)
	g.Expect(err).To(HaveOccurred())
	g.Expect(err.Error()).To(ContainSubstring("set secretRef.name (or the older name), not both"))
}

func TestSigner_Type(t *testing.T) {
	plain := armoredKey(t, "")
	if _, _, err := signer(map[string][]byte{"git.asc": plain}, imagev1.SigningKeyTypeSSH); err == nil || !strings.Contains(err.Error(), "no identity (SSH) key, which type ssh needs") {
		t.Fatalf("type ssh without identity: %v", err)
	}
	if _, _, err := signer(map[string][]byte{"identity": []byte("x")}, imagev1.SigningKeyTypeGPG); err == nil || !strings.Contains(err.Error(), "no git.asc (OpenPGP) key, which type gpg needs") {
		t.Fatalf("type gpg without git.asc: %v", err)
	}
	if e, s, err := signer(map[string][]byte{"git.asc": plain, "identity": []byte("x")}, imagev1.SigningKeyTypeGPG); err != nil || e == nil || s != nil {
		t.Fatalf("type gpg with both keys: %v, %v, %v", e, s, err)
	}
}
