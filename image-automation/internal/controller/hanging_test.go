package controller

import (
	"context"
	"testing"
	"time"

	"github.com/fluxcd/pkg/apis/meta"
	"github.com/fluxcd/pkg/runtime/conditions"
	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	imagev1 "github.com/plumb-dev/plumb/image-automation/api/v1beta1"
	"github.com/plumb-dev/plumb/shared/testing/nettest"
)

// ImageRepositories of a registry that accepts and never answers, with a long spec.timeout,
// must not keep an ImageRepository of a healthy registry from being scanned (2 workers).
func TestImageRepository_HangingRegistryDoesNotStarveOthers(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t, nil)
	hang := nettest.NewHanging(t)
	addr := hang.Addr
	var stuck []*imagev1.ImageRepository
	for _, name := range []string{"stuck-1", "stuck-2", "stuck-3", "stuck-4"} {
		obj := imageRepository(ns, name, addr+"/app")
		obj.Spec.Timeout = &metav1.Duration{Duration: 5 * time.Minute}
		g.Expect(k8s.Create(ctx, obj)).To(Succeed())
		stuck = append(stuck, obj)
		t.Cleanup(func() { _ = k8s.Delete(context.Background(), obj) })
	}
	g.Eventually(hang.Accepted, timeout, 50*time.Millisecond).Should(BeNumerically(">=", 1))

	image := newImage()
	pushTags(t, image, "1.0.0")
	healthy := imageRepository(ns, "healthy", image)
	g.Expect(k8s.Create(ctx, healthy)).To(Succeed())
	g.Eventually(func(g Gomega) {
		g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(healthy), healthy)).To(Succeed())
		g.Expect(conditions.IsReady(healthy)).To(BeTrue(), conditions.GetMessage(healthy, meta.ReadyCondition))
	}, 10*time.Second, 100*time.Millisecond).Should(Succeed(), "the healthy ImageRepository waited behind the hanging registry")

	g.Eventually(func(g Gomega) {
		busy := 0
		for _, obj := range stuck {
			g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(obj), obj)).To(Succeed())
			if conditions.GetReason(obj, meta.ReadyCondition) == imagev1.HostBusyReason {
				g.Expect(conditions.GetMessage(obj, meta.ReadyCondition)).To(Equal("host " + addr + " is busy: 1 operation in flight"))
				busy++
			}
		}
		g.Expect(busy).To(BeNumerically(">=", 1))
	}, timeout, 100*time.Millisecond).Should(Succeed())
}
