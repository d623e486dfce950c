//go:build e2e

package e2e

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fluxcd/pkg/apis/meta"
	"github.com/fluxcd/pkg/runtime/conditions"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	applyv1 "github.com/plumb-dev/plumb/apply-controller/api/v1beta1"
	"github.com/plumb-dev/plumb/hack/internal/local"
	"github.com/plumb-dev/plumb/shared/sops/sopstest"
	sourcev1 "github.com/plumb-dev/plumb/source-controller/api/v1beta1"
)

// A team's SOPS-encrypted Secret, from Git to the cluster: the age key lives only in the
// cluster, the Secret arrives decrypted, the plaintext shows nowhere in status or events, and a
// commit sealed for a key the cluster lacks stops before apply, pruning nothing.
func TestSOPSToCluster(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	c := bed.Env.Client
	defer dumpLogs(t)

	const plaintext = "s3cr3t-db-password"
	identity, recipient := sopstest.Identity(t)
	secretYAML := func(password string) string {
		return "apiVersion: v1\nkind: Secret\nmetadata:\n  name: db\ntype: Opaque\nstringData:\n  password: " + password + "\n"
	}
	sealed := func(recipient string) string {
		return string(sopstest.Encrypt(t, "yaml", []byte(secretYAML(plaintext)), sopstest.Options{EncryptedRegex: "^(data|stringData)$"}, []string{recipient}))
	}
	files := app("hello", false)
	files["apps/web/db.yaml"] = sealed(recipient)
	g.Expect(files["apps/web/db.yaml"]).NotTo(ContainSubstring(plaintext), "Git holds ciphertext only")

	git, err := local.StartGitServer(filepath.Join(bed.Dir, "git-sops"))
	g.Expect(err).NotTo(HaveOccurred())
	defer git.Stop()
	repo, commit, err := git.NewRepo("vault", files)
	g.Expect(err).NotTo(HaveOccurred())

	ns := "sops"
	g.Expect(c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})).To(Succeed())
	g.Expect(c.Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "sops-age", Namespace: ns},
		StringData: map[string]string{"identity.agekey": identity},
	})).To(Succeed())
	gr := &sourcev1.GitRepository{
		ObjectMeta: metav1.ObjectMeta{Name: "vault", Namespace: ns},
		Spec: sourcev1.GitRepositorySpec{
			URL: git.URL("vault"), Ref: &sourcev1.GitRepositoryRef{Branch: "main"},
			Interval: metav1.Duration{Duration: time.Hour},
		},
	}
	g.Expect(c.Create(ctx, gr)).To(Succeed())
	ks := &applyv1.Kustomization{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: ns},
		Spec: applyv1.KustomizationSpec{
			SourceRef:       applyv1.CrossNamespaceSourceReference{Kind: sourcev1.GitRepositoryKind, Name: "vault"},
			Path:            "apps/web",
			TargetNamespace: ns,
			Interval:        metav1.Duration{Duration: time.Hour},
			RetryInterval:   &metav1.Duration{Duration: 2 * time.Second},
			Prune:           true,
			Decryption: &applyv1.Decryption{
				Provider:  applyv1.DecryptionProviderSOPS,
				SecretRef: &meta.LocalObjectReference{Name: "sops-age"},
			},
		},
	}
	g.Expect(c.Create(ctx, ks)).To(Succeed())

	g.Eventually(func(g Gomega) {
		g.Expect(c.Get(ctx, client.ObjectKeyFromObject(ks), ks)).To(Succeed())
		g.Expect(conditions.IsReady(ks)).To(BeTrue(), "Ready: %s", conditions.GetMessage(ks, meta.ReadyCondition))
		g.Expect(ks.Status.LastAppliedRevision).To(Equal("main@sha1:" + commit))
	}, timeout, 200*time.Millisecond).Should(Succeed())
	db := &corev1.Secret{}
	g.Expect(c.Get(ctx, client.ObjectKey{Namespace: ns, Name: "db"}, db)).To(Succeed())
	g.Expect(string(db.Data["password"])).To(Equal(plaintext), "the Secret is applied decrypted")
	g.Expect(db.Annotations).NotTo(HaveKey("sops"), "no SOPS metadata reaches the cluster")

	// A commit sealed for another key: DecryptionFailed names the file, the Secret stays.
	_, otherRecipient := sopstest.Identity(t)
	files["apps/web/db.yaml"] = sealed(otherRecipient)
	files["apps/web/config.yaml"] = "" // would be pruned if the failed build were applied
	broken, err := repo.Commit("seal for a key the cluster lacks", files)
	g.Expect(err).NotTo(HaveOccurred())
	request(g, gr)
	g.Eventually(func(g Gomega) {
		g.Expect(c.Get(ctx, client.ObjectKeyFromObject(ks), ks)).To(Succeed())
		g.Expect(conditions.GetReason(ks, meta.ReadyCondition)).To(Equal(applyv1.DecryptionFailedReason))
		g.Expect(ks.Status.LastAttemptedRevision).To(Equal("main@sha1:" + broken))
	}, timeout, 200*time.Millisecond).Should(Succeed())
	msg := conditions.GetMessage(ks, meta.ReadyCondition)
	g.Expect(msg).To(ContainSubstring("db.yaml"))
	g.Expect(msg).To(ContainSubstring(otherRecipient), "the message names the recipient the file was sealed for")
	g.Expect(ks.Status.LastAppliedRevision).To(Equal("main@sha1:" + commit))
	g.Expect(c.Get(ctx, client.ObjectKey{Namespace: ns, Name: "web"}, &corev1.ConfigMap{})).To(Succeed(), "nothing is pruned after a failed decryption")
	g.Expect(c.Get(ctx, client.ObjectKey{Namespace: ns, Name: "db"}, db)).To(Succeed())
	g.Expect(string(db.Data["password"])).To(Equal(plaintext))

	// The plaintext and the identity appear in no status and no event of the namespace.
	events := &corev1.EventList{}
	g.Expect(c.List(ctx, events, client.InNamespace(ns))).To(Succeed())
	g.Expect(events.Items).NotTo(BeEmpty())
	var seen []string
	for _, e := range events.Items {
		seen = append(seen, e.Message)
	}
	for _, cond := range ks.Status.Conditions {
		seen = append(seen, cond.Message)
	}
	all := strings.Join(seen, "\n")
	g.Expect(all).NotTo(ContainSubstring(plaintext))
	g.Expect(all).NotTo(ContainSubstring(strings.TrimSpace(identity)))
}
