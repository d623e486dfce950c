//go:build e2e

package e2e

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fluxcd/pkg/apis/meta"
	"github.com/fluxcd/pkg/runtime/conditions"
	. "github.com/onsi/gomega"
	"sigs.k8s.io/controller-runtime/pkg/client"

	applyv1 "github.com/plumb-dev/plumb/apply-controller/api/v1beta1"
	"github.com/plumb-dev/plumb/hack/internal/local"
	"github.com/plumb-dev/plumb/shared/testing/testenv"
)

// plumb bootstrap git, then the cluster manages Plumb from Git: the controllers running as
// processes (standing in for the Deployments' pods, which have no kubelet here) fetch the commit
// and apply the committed manifests, Plumb's own included.
func TestBootstrapManagesItself(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	c := bed.Env.Client
	defer dumpLogs(t)
	root, err := testenv.WorkspaceRoot()
	g.Expect(err).NotTo(HaveOccurred())
	bin := filepath.Join(bed.Dir, "plumb")
	build := exec.Command("go", "build", "-buildvcs=false", "-o", bin, "./cli/cmd/plumb")
	build.Dir, build.Stdout, build.Stderr = root, os.Stderr, os.Stderr
	g.Expect(build.Run()).To(Succeed())

	git, err := local.StartGitServer(filepath.Join(bed.Dir, "git-bootstrap"))
	g.Expect(err).NotTo(HaveOccurred())
	defer git.Stop()
	if _, _, err := git.NewRepo("fleet", map[string]string{"README.md": "# fleet\n"}); err != nil {
		t.Fatal(err)
	}
	run := func() string {
		cmd := exec.Command(bin, "--kubeconfig", bed.Kubeconfig, "bootstrap", "git", "--url", git.URL("fleet"), "--path", "clusters/e2e",
			"--components", "source-controller,apply-controller", "-n", "plumb-e2e", "--interval", "1h", "--timeout", "90s")
		out, err := cmd.CombinedOutput()
		g.Expect(err).NotTo(HaveOccurred(), string(out))
		return string(out)
	}
	out := run()
	g.Expect(out).To(ContainSubstring("✔ committed clusters/e2e/plumb-e2e to main"))
	g.Expect(out).To(ContainSubstring("✔ Kustomization plumb-e2e/plumb-e2e: "))
	ks := &applyv1.Kustomization{}
	g.Expect(c.Get(ctx, client.ObjectKey{Namespace: "plumb-e2e", Name: "plumb-e2e"}, ks)).To(Succeed())
	g.Expect(conditions.IsReady(ks)).To(BeTrue(), conditions.GetMessage(ks, meta.ReadyCondition))
	// Its inventory holds Plumb itself: the Deployments, CRDs and its own sync objects.
	g.Expect(ks.Status.Inventory.IDs()).To(ContainElements(
		ContainSubstring("plumb-e2e_source-controller_apps_Deployment"),
		ContainSubstring("plumb-e2e_plumb-e2e_apply.plumb.dev_Kustomization"),
		ContainSubstring("gitrepositories.source.plumb.dev"),
	))

	// The everyday commands against the real controllers.
	plumb := func(args ...string) string {
		out, err := exec.Command(bin, append([]string{"--kubeconfig", bed.Kubeconfig}, args...)...).CombinedOutput()
		g.Expect(err).NotTo(HaveOccurred(), string(out))
		return string(out)
	}
	out = plumb("reconcile", "kustomization", "plumb-e2e", "-n", "plumb-e2e", "--with-source", "--timeout", "60s")
	g.Expect(out).To(ContainSubstring("► reconciling GitRepository plumb-e2e/plumb-e2e"))
	g.Expect(out).To(ContainSubstring("✔ Kustomization plumb-e2e/plumb-e2e: "))
	g.Expect(plumb("get", "all", "-n", "plumb-e2e")).To(MatchRegexp(`Kustomization/plumb-e2e\s+True`))
	g.Expect(plumb("tree", "kustomization", "plumb-e2e", "-n", "plumb-e2e")).To(ContainSubstring("── Deployment/plumb-e2e/apply-controller"))

	// Again: nothing to commit, and the cluster stays at the same revision.
	g.Expect(c.Get(ctx, client.ObjectKeyFromObject(ks), ks)).To(Succeed())
	applied := ks.Status.LastAppliedRevision
	out = run()
	g.Expect(out).To(ContainSubstring("is up to date (" + strings.TrimPrefix(applied, "main@sha1:")[:12] + ")"))
	g.Eventually(func(g Gomega) {
		g.Expect(c.Get(ctx, client.ObjectKeyFromObject(ks), ks)).To(Succeed())
		g.Expect(conditions.IsReady(ks)).To(BeTrue())
		g.Expect(ks.Status.LastAppliedRevision).To(Equal(applied))
	}, timeout, 200*time.Millisecond).Should(Succeed())
}
