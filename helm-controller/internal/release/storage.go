package release

import (
	"context"
	"slices"
	"strings"
	"sync"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	corev1client "k8s.io/client-go/kubernetes/typed/core/v1"
)

// Fingerprint names a release's stored revisions as they were when read: their Secrets' names
// and resource versions. Any write to the release's storage (a new revision, a status or label
// change, a deletion) changes it, so a caller that keeps what it read with the fingerprint
// can tell from a watch of the Secrets' metadata whether it needs to read them again.
func Fingerprint(objs []metav1.Object) string {
	parts := make([]string, 0, len(objs))
	for _, o := range objs {
		parts = append(parts, o.GetName()+"@"+o.GetResourceVersion())
	}
	slices.Sort(parts)
	return strings.Join(parts, ",")
}

// fingerprintSecrets is Helm's Secret client of the storage namespace, remembering the
// fingerprint of the Secrets each List returned (Helm's History is one List by label).
type fingerprintSecrets struct {
	corev1client.SecretInterface

	mu   sync.Mutex
	last string
}

func (s *fingerprintSecrets) List(ctx context.Context, opts metav1.ListOptions) (*corev1.SecretList, error) {
	l, err := s.SecretInterface.List(ctx, opts)
	if err != nil {
		return l, err
	}
	objs := make([]metav1.Object, len(l.Items))
	for i := range l.Items {
		objs[i] = &l.Items[i]
	}
	s.mu.Lock()
	s.last = Fingerprint(objs)
	s.mu.Unlock()
	return l, nil
}

// lastList is the fingerprint of the last List.
func (s *fingerprintSecrets) lastList() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.last
}
