//go:build chaos

package chaos

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/fluxcd/pkg/apis/meta"
	"github.com/fluxcd/pkg/runtime/conditions"
	gogit "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/plumb-dev/plumb/hack/internal/local"
	imagev1 "github.com/plumb-dev/plumb/image-automation/api/v1beta1"
)

// commitsSince lists the commits of branch main of the bare repository dir from its tip back to
// (not including) from, newest first, with the file's content at each.
func commitsSince(dir, from, file string) ([]string, []string, error) {
	repo, err := gogit.PlainOpen(dir)
	if err != nil {
		return nil, nil, err
	}
	ref, err := repo.Reference(plumbing.NewBranchReferenceName("main"), true)
	if err != nil {
		return nil, nil, err
	}
	var hashes, contents []string
	for h := ref.Hash(); h.String() != from; {
		c, err := repo.CommitObject(h)
		if err != nil {
			return nil, nil, err
		}
		f, err := c.File(file)
		if err != nil {
			return nil, nil, err
		}
		text, err := f.Contents()
		if err != nil {
			return nil, nil, err
		}
		hashes, contents = append(hashes, h.String()), append(contents, text)
		if c.NumParents() == 0 {
			break // from is not in the history: everything is listed
		}
		h = c.ParentHashes[0]
	}
	return hashes, contents, nil
}

// image-automation killed after it committed an image update and before its push landed, then
// started again: the update is pushed exactly once (one commit on the branch for it, none lost,
// none doubled) and the ImageUpdateAutomation names that commit. The push is held by the Git
// server, which has read all of it; the process is killed; then the server either drops the
// push (it never landed) or applies it (it landed, but the process died before the answer).
func TestKillImageAutomationBetweenCommitAndPush(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	c := bed.Env.Client
	defer dumpLogs(t)
	p := procs["image-automation"]
	keepRunning(t, p)
	const ns = "kill-image"
	newNamespace(t, ns)

	reg := local.StartImageRegistry()
	defer reg.Close()
	image := reg.Image
	g.Expect(reg.Push("1.0.0")).To(Succeed())
	git := startGit(t, "kill-image")
	const file = "apps/web/deployment.yaml"
	manifest := func(tag string) string { return local.WebDeployment(image, tag, ns+":web") }
	_, head, err := git.NewRepo("fleet", map[string]string{file: manifest("1.0.0")})
	g.Expect(err).NotTo(HaveOccurred())
	bare := filepath.Join(git.Root(), "fleet.git")

	gr := followMain(git, ns, "fleet")
	imgRepo := &imagev1.ImageRepository{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: ns},
		Spec: imagev1.ImageRepositorySpec{Image: image, Insecure: true, Interval: metav1.Duration{Duration: time.Hour}}}
	pol := &imagev1.ImagePolicy{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: ns},
		Spec: imagev1.ImagePolicySpec{ImageRepositoryRef: meta.NamespacedObjectReference{Name: "web"},
			Policy: imagev1.ImagePolicyChoice{SemVer: &imagev1.SemVerPolicy{Range: "1.x"}}}}
	auto := &imagev1.ImageUpdateAutomation{ObjectMeta: metav1.ObjectMeta{Name: "fleet", Namespace: ns},
		Spec: imagev1.ImageUpdateAutomationSpec{SourceRef: imagev1.SourceReference{Kind: "GitRepository", Name: "fleet"},
			Git:      imagev1.GitSpec{Commit: imagev1.CommitSpec{Author: imagev1.CommitUser{Name: "plumb", Email: "plumb@example.invalid"}}},
			Interval: metav1.Duration{Duration: time.Hour}}}
	for _, o := range []client.Object{gr, imgRepo, pol, auto} {
		g.Expect(c.Create(ctx, o)).To(Succeed())
	}
	ready(t, auto, nil)

	for _, tc := range []struct {
		name, fault, tag string
		land             bool
	}{
		{"push dropped", "SIGKILL between commit and push (the push never lands)", "1.1.0", false},
		{"push landed", "SIGKILL between commit and push (the push lands, the answer is lost)", "1.2.0", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tr := record(t, tc.fault, "image-automation", "exactly one commit on the branch for the update, none lost, none doubled; status names it")
			g := NewWithT(t)
			hold := git.HoldPush()
			g.Expect(reg.Push(tc.tag)).To(Succeed())
			request(g, imgRepo)
			select {
			case <-hold.Held():
			case <-time.After(timeout):
				t.Fatal("image-automation never pushed the update")
			}
			p.Kill()
			<-p.Exited()
			hold.Release(tc.land)
			since := restart(t, p)
			var pushed []string
			g.Eventually(func(g Gomega) {
				g.Expect(c.Get(ctx, client.ObjectKeyFromObject(auto), auto)).To(Succeed())
				g.Expect(conditions.IsReady(auto)).To(BeTrue(), "Ready: %s", conditions.GetMessage(auto, meta.ReadyCondition))
				hashes, contents, err := commitsSince(bare, head, file)
				g.Expect(err).NotTo(HaveOccurred())
				g.Expect(contents).To(Equal([]string{manifest(tc.tag)}), "the commits since %s", head)
				g.Expect(auto.Status.LastPushCommit).To(Equal(hashes[0]))
				pushed = hashes
			}, timeout, poll).Should(Succeed())
			tr.recovered(since)
			head = pushed[0]
		})
	}
}
