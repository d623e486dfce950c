package v1beta1

import (
	"crypto/sha256"
	"encoding/hex"
	"regexp"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestGetReleaseName(t *testing.T) {
	// Helm's rule for release names.
	valid := regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`)
	long := strings.Repeat("a", 39) + ".b"
	cases := []struct {
		name, releaseName, targetNamespace string
		want                               string
	}{
		{name: "web", want: "web"},
		{name: "web", targetNamespace: "shop", want: "shop-web"},
		{name: "web", releaseName: "mine", targetNamespace: "shop", want: "mine"},
		{name: strings.Repeat("x", 60), want: strings.Repeat("x", 40) + "-"},
		{name: long + strings.Repeat("c", 20), want: strings.Repeat("a", 39) + "-"},
	}
	for _, tc := range cases {
		t.Run(tc.want, func(t *testing.T) {
			hr := &HelmRelease{ObjectMeta: metav1.ObjectMeta{Name: tc.name}, Spec: HelmReleaseSpec{ReleaseName: tc.releaseName, TargetNamespace: tc.targetNamespace}}
			got := hr.GetReleaseName()
			if !strings.HasPrefix(got, tc.want) || len(got) > 53 || !valid.MatchString(got) {
				t.Errorf("GetReleaseName() = %q, want %q… within 53 characters and valid for Helm", got, tc.want)
			}
			if len(tc.name) <= 53 && tc.targetNamespace == "" && tc.releaseName == "" && got != tc.name {
				t.Errorf("a short name changed: %q", got)
			}
		})
	}
	// Flux's name for a long one (fluxcd/helm-controller internal/release.ShortenName), also
	// when the cut ends in "-": a release Flux made is found under it.
	for _, name := range []string{strings.Repeat("x", 60), strings.Repeat("y", 39) + "-" + strings.Repeat("z", 20)} {
		hr := &HelmRelease{ObjectMeta: metav1.ObjectMeta{Name: "web"}, Spec: HelmReleaseSpec{TargetNamespace: name}}
		full := name + "-web"
		sum := sha256.Sum256([]byte(full))
		if got, want := hr.GetReleaseName(), full[:40]+"-"+hex.EncodeToString(sum[:])[:12]; got != want {
			t.Errorf("GetReleaseName() = %q, want Flux's %q", got, want)
		}
	}
	a := &HelmRelease{ObjectMeta: metav1.ObjectMeta{Name: strings.Repeat("x", 60)}}
	b := &HelmRelease{ObjectMeta: metav1.ObjectMeta{Name: strings.Repeat("x", 61)}}
	if a.GetReleaseName() == b.GetReleaseName() {
		t.Error("two long names shortened to the same release name")
	}
}
