//go:build chaos

package chaos

import (
	"context"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	imagev1 "github.com/plumb-dev/plumb/image-automation/api/v1beta1"
)

// The controllers' wall clock jumps an hour back and an hour forward. The host's clock cannot be
// moved under one process here (Go reads it through the vDSO, which LD_PRELOAD fakes do not
// reach; time namespaces shift the monotonic and boot clocks only; setting the host's clock
// would move every process of the machine), so the jump is made as the controller sees it: a
// time it wrote in status from its wall clock is moved by the hour. Requeues run on the
// monotonic clock (client-go's delaying queue), which no wall-clock jump moves; the wall clock
// decides when requeues come in one place, an ImageRepository's next scan (`scanTime` +
// `interval`), tested here at process level and with a fake clock in image-automation's tests.
func TestClockSkew(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	c := bed.Env.Client
	defer dumpLogs(t)
	const ns = "clock"
	newNamespace(t, ns)
	var lists [2]atomic.Int64 // tag listings of team/back and team/ahead
	regHandler := registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	reg := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/tags/list") {
			if strings.Contains(r.URL.Path, "/team/back/") {
				lists[0].Add(1)
			} else if strings.Contains(r.URL.Path, "/team/ahead/") {
				lists[1].Add(1)
			}
		}
		regHandler.ServeHTTP(w, r)
	}))
	defer reg.Close()
	host := strings.TrimPrefix(reg.URL, "http://")
	pushImage := func(g Gomega, repo, tag string) {
		ref, err := name.NewTag(host+"/team/"+repo+":"+tag, name.Insecure)
		g.Expect(err).NotTo(HaveOccurred())
		img, err := random.Image(128, 1)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(remote.Write(ref, img)).To(Succeed())
	}
	const interval = 10 * time.Second
	repos := map[string]*imagev1.ImageRepository{}
	for _, n := range []string{"back", "ahead"} {
		pushImage(g, n, "1.0.0")
		repos[n] = &imagev1.ImageRepository{ObjectMeta: metav1.ObjectMeta{Name: n, Namespace: ns},
			Spec: imagev1.ImageRepositorySpec{Image: host + "/team/" + n, Insecure: true, Interval: metav1.Duration{Duration: interval}}}
		g.Expect(c.Create(ctx, repos[n])).To(Succeed())
		ready(t, repos[n], func(g Gomega) { g.Expect(repos[n].Status.LastScanResult).NotTo(BeNil()) })
	}
	// jump moves the scan time of obj as a jump of the clock by -d would.
	jump := func(g Gomega, obj *imagev1.ImageRepository, d time.Duration) {
		g.Expect(c.Get(ctx, client.ObjectKeyFromObject(obj), obj)).To(Succeed())
		base := obj.DeepCopy()
		obj.Status.LastScanResult.ScanTime = metav1.NewTime(obj.Status.LastScanResult.ScanTime.Add(d))
		g.Expect(c.Status().Patch(ctx, obj, client.MergeFrom(base))).To(Succeed())
	}

	t.Run("back an hour", func(t *testing.T) {
		tr := record(t, "wall clock an hour back after a scan", "image-automation", "the next scan comes at the interval, not an hour late: a new tag is seen within it")
		g := NewWithT(t)
		obj := repos["back"]
		jump(g, obj, time.Hour)
		since := time.Now()
		pushImage(g, "back", "1.1.0")
		g.Eventually(func(g Gomega) {
			g.Expect(c.Get(ctx, client.ObjectKeyFromObject(obj), obj)).To(Succeed())
			g.Expect(obj.Status.LastScanResult.TagCount).To(Equal(2))
		}, timeout, poll).Should(Succeed())
		tr.recovered(since)
		g.Expect(time.Since(since)).To(BeNumerically("<", 3*interval), "the scan after the jump")
	})

	t.Run("forward an hour", func(t *testing.T) {
		tr := record(t, "wall clock an hour forward after a scan", "image-automation", "one scan at the next requeue, then one per interval again (no scan storm)")
		g := NewWithT(t)
		obj := repos["ahead"]
		before := lists[1].Load()
		jump(g, obj, -time.Hour)
		since := time.Now()
		g.Eventually(func(g Gomega) {
			g.Expect(c.Get(ctx, client.ObjectKeyFromObject(obj), obj)).To(Succeed())
			g.Expect(obj.Status.LastScanResult.ScanTime.Time).To(BeTemporally(">", since.Add(-time.Second)))
		}, timeout, poll).Should(Succeed())
		tr.recovered(since)
		// Over three intervals from here: a scan per interval, and the requeues' jitter.
		listed := lists[1].Load()
		g.Consistently(func() int64 { return lists[1].Load() - listed }, 3*interval, poll).Should(BeNumerically("<=", 4), "tag listings in three intervals after the jump")
		extra := lists[1].Load() - listed
		t.Logf("%d tag listings before the jump, %d in the %s after the first scan that followed it", listed-before, extra, 3*interval)
		g.Expect(extra).To(BeNumerically(">=", 2), "the scans go on at the interval")
	})
}
