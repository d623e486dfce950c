//go:build chaos

package chaos

import (
	"context"
	"crypto/rand"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fluxcd/pkg/apis/meta"
	"github.com/fluxcd/pkg/runtime/conditions"
	. "github.com/onsi/gomega"
	"sigs.k8s.io/controller-runtime/pkg/client"

	sourcev1 "github.com/plumb-dev/plumb/source-controller/api/v1beta1"
)

// fill takes all but leave bytes of the filesystem of dir with one file, and returns it.
func fill(t *testing.T, dir string, leave int64) string {
	t.Helper()
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		t.Fatal(err)
	}
	free := int64(st.Bavail) * int64(st.Bsize)
	file := filepath.Join(dir, "filler")
	f, err := os.Create(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if free > leave {
		if err := syscall.Fallocate(int(f.Fd()), 0, 0, free-leave); err != nil {
			t.Fatalf("fallocate %d bytes: %v", free-leave, err)
		}
	}
	return file
}

// source-controller's --storage-path full (a tmpfs): a new artifact cannot be written; the
// condition says so, the last artifact stays served, and the new one is written once space
// returns, without a request.
func TestStorageFull(t *testing.T) {
	if !onTmpfs {
		if os.Getenv("CI") != "" {
			t.Fatal("needs root to mount a tmpfs under source-controller's storage (CI is set: run as root rather than skip)")
		}
		t.Skip("needs root to mount a tmpfs under source-controller's storage")
	}
	g := NewWithT(t)
	ctx := context.Background()
	c := bed.Env.Client
	defer dumpLogs(t)
	tr := record(t, "storage volume full (tmpfs)", "source-controller", "Ready=False ArtifactFailed naming the full disk; last artifact kept and served; new one written when space returns")
	const ns = "storage-full"
	newNamespace(t, ns)
	git := startGit(t, "storage-full")
	repo, _, err := git.NewRepo("app", map[string]string{"README.md": "small\n"})
	g.Expect(err).NotTo(HaveOccurred())
	gr := followMain(git, ns, "app")
	g.Expect(c.Create(ctx, gr)).To(Succeed())
	ready(t, gr, nil)
	first := gr.Status.Artifact.DeepCopy()

	filler := fill(t, storageDir, 1<<20)
	defer os.Remove(filler)
	noise := make([]byte, 4<<20)
	_, _ = rand.Read(noise)
	big, err := repo.Commit("4 MiB that do not fit", map[string]string{"data.bin": string(noise)})
	g.Expect(err).NotTo(HaveOccurred())
	request(g, gr)
	g.Eventually(func(g Gomega) {
		g.Expect(c.Get(ctx, client.ObjectKeyFromObject(gr), gr)).To(Succeed())
		g.Expect(conditions.GetReason(gr, meta.ReadyCondition)).To(Equal(sourcev1.ArtifactFailedReason), conditions.GetMessage(gr, meta.ReadyCondition))
	}, timeout, poll).Should(Succeed())
	msg := conditions.GetMessage(gr, meta.ReadyCondition)
	t.Logf("Ready=False: %s", msg)
	g.Expect(msg).To(ContainSubstring("no space left on device"))
	g.Expect(gr.Status.Artifact).To(Equal(first), "status keeps the last artifact")
	fetchArtifact(g, first)
	// Retries fail alike; none leaves its partial file behind: at most the one being written.
	g.Consistently(func(g Gomega) {
		entries, err := os.ReadDir(filepath.Join(storageDir, "gitrepository", ns, "app"))
		g.Expect(err).NotTo(HaveOccurred())
		var partial []string
		for _, e := range entries {
			if strings.HasPrefix(e.Name(), ".tmp-") {
				partial = append(partial, e.Name())
			}
		}
		g.Expect(len(partial)).To(BeNumerically("<=", 1), "failed writes leave no partial files: %v", partial)
	}, time.Second, 50*time.Millisecond).Should(Succeed())

	g.Expect(os.Remove(filler)).To(Succeed())
	since := time.Now()
	ready(t, gr, func(g Gomega) { g.Expect(gr.Status.Artifact.Revision).To(Equal("main@sha1:" + big)) })
	tr.recovered(since)
	fetchArtifact(g, gr.Status.Artifact)
}
