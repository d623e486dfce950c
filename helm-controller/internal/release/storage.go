package release

import (
	"context"
	"slices"
	"strings"
	"sync"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/resourceversion"
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

// Watched is a watch's view of one release's Secrets (their names and resource versions), the
// resource version the watch has reached, and whether it has synced: what tells storageSecrets
// that another writer changed the storage.
type Watched func() (objs []metav1.Object, resourceVersion string, synced bool)

// storageSecrets is Helm's Secret client of the storage namespace for the length of one
// reconcile. It remembers the fingerprint of what each List returned (Helm's History is one
// List by label), and, given a watch of the storage (Target.Watched), holds the release's
// Secrets from the first List of them, with its own writes since, so that Helm's further
// Lists of the release (three in an install: the name's availability, the history trimmed
// before the new revision, the revision to supersede; one more for status.history) are
// answered without a request. The held Secrets are used only while the watch shows nothing
// that this client did not read or write: a revision another writer made or changed, or a
// deletion not its own, and Lists go to the API server again.
type storageSecrets struct {
	corev1client.SecretInterface
	release string
	watched Watched

	mu   sync.Mutex
	last string
	// held is the release's Secrets by name, as last listed and as written since; nil when
	// there is none to trust (none listed yet, or a write failed).
	held map[string]*corev1.Secret
	// seen is every resource version of each Secret read or written since the List: a watch
	// behind this client's writes shows one of them.
	seen map[string]map[string]bool
	// created holds the resource version each Secret this client created since the List was
	// created at: a watch that has not reached it may not show the Secret yet. deleted are the
	// Secrets it deleted, which a watch may still show, at a version seen.
	created map[string]string
	deleted map[string]bool
	// writes counts this client's writes, so that a List does not replace what a write made
	// while it was under way.
	writes int
}

func newStorageSecrets(c corev1client.SecretInterface, release string, watched Watched) *storageSecrets {
	return &storageSecrets{SecretInterface: c, release: release, watched: watched}
}

// releaseSelector tells whether a label selector picks Secrets of s's release only (Helm's
// History and Query: owner=helm, name=<release> and maybe more), and whether it picks them
// all.
func (s *storageSecrets) releaseSelector(selector string) (sel labels.Selector, ofRelease, all bool) {
	m, err := labels.ConvertSelectorToLabelsMap(selector)
	if err != nil || m["owner"] != "helm" || m["name"] != s.release {
		return nil, false, false
	}
	return labels.SelectorFromSet(m), true, len(m) == 2
}

func (s *storageSecrets) List(ctx context.Context, opts metav1.ListOptions) (*corev1.SecretList, error) {
	sel, ofRelease, all := s.releaseSelector(opts.LabelSelector)
	s.mu.Lock()
	if ofRelease && s.trusted() {
		l := &corev1.SecretList{}
		for _, sec := range s.held {
			if sel.Matches(labels.Set(sec.Labels)) {
				l.Items = append(l.Items, *sec.DeepCopy())
			}
		}
		slices.SortFunc(l.Items, func(a, b corev1.Secret) int { return strings.Compare(a.Name, b.Name) })
		s.last = fingerprintOf(l)
		s.mu.Unlock()
		return l, nil
	}
	writes := s.writes
	s.mu.Unlock()

	l, err := s.SecretInterface.List(ctx, opts)
	if err != nil {
		return l, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.last = fingerprintOf(l)
	if all && s.watched != nil && writes == s.writes {
		s.held, s.seen = map[string]*corev1.Secret{}, map[string]map[string]bool{}
		s.created, s.deleted = map[string]string{}, map[string]bool{}
		for i := range l.Items {
			s.hold(l.Items[i].DeepCopy())
		}
	}
	return l, nil
}

// Get answers from the held Secrets when it holds the one asked for (Helm reads a revision
// before it deletes it).
func (s *storageSecrets) Get(ctx context.Context, name string, opts metav1.GetOptions) (*corev1.Secret, error) {
	s.mu.Lock()
	if sec, ok := s.held[name]; ok && s.trusted() {
		s.mu.Unlock()
		return sec.DeepCopy(), nil
	}
	s.mu.Unlock()
	return s.SecretInterface.Get(ctx, name, opts)
}

func (s *storageSecrets) Create(ctx context.Context, secret *corev1.Secret, opts metav1.CreateOptions) (*corev1.Secret, error) {
	out, err := s.SecretInterface.Create(ctx, secret, opts)
	s.wrote(out, err, func() { s.created[out.Name] = out.ResourceVersion; delete(s.deleted, out.Name) })
	return out, err
}

func (s *storageSecrets) Update(ctx context.Context, secret *corev1.Secret, opts metav1.UpdateOptions) (*corev1.Secret, error) {
	out, err := s.SecretInterface.Update(ctx, secret, opts)
	s.wrote(out, err, func() {})
	return out, err
}

func (s *storageSecrets) Delete(ctx context.Context, name string, opts metav1.DeleteOptions) error {
	err := s.SecretInterface.Delete(ctx, name, opts)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.writes++
	switch {
	case s.held == nil:
	case err != nil:
		s.held = nil // whatever happened is not known: list again
	default:
		delete(s.held, name)
		delete(s.created, name)
		s.deleted[name] = true
	}
	return err
}

// wrote records a Secret the API server answered a write with.
func (s *storageSecrets) wrote(out *corev1.Secret, err error, then func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.writes++
	switch {
	case s.held == nil:
	case err != nil || out == nil:
		s.held = nil // already there (another writer), refused, or unanswered: list again
	case out.Labels["owner"] == "helm" && out.Labels["name"] == s.release:
		s.hold(out.DeepCopy())
		then()
	default:
		delete(s.held, out.Name) // no longer the release's
	}
}

func (s *storageSecrets) hold(sec *corev1.Secret) {
	s.held[sec.Name] = sec
	if s.seen[sec.Name] == nil {
		s.seen[sec.Name] = map[string]bool{}
	}
	s.seen[sec.Name][sec.ResourceVersion] = true
}

// trusted tells whether the held Secrets are the release's storage: the watch has synced; it
// shows each Secret at a version this client read or wrote, held or deleted by it since; and
// every held Secret it lacks is one this client created at a version the watch has not
// reached.
func (s *storageSecrets) trusted() bool {
	if s.held == nil || s.watched == nil {
		return false
	}
	objs, reached, synced := s.watched()
	if !synced {
		return false
	}
	inWatch := map[string]bool{}
	for _, o := range objs {
		name := o.GetName()
		inWatch[name] = true
		if !s.seen[name][o.GetResourceVersion()] {
			return false // another writer's version
		}
		if _, held := s.held[name]; !held && !s.deleted[name] {
			return false
		}
	}
	for name := range s.held {
		if inWatch[name] {
			continue
		}
		at, created := s.created[name]
		if !created {
			return false // deleted by another writer
		}
		if c, err := resourceversion.CompareResourceVersion(reached, at); err != nil || c >= 0 {
			return false // the watch has passed its creation, and no longer has it
		}
	}
	return true
}

func fingerprintOf(l *corev1.SecretList) string {
	objs := make([]metav1.Object, len(l.Items))
	for i := range l.Items {
		objs[i] = &l.Items[i]
	}
	return Fingerprint(objs)
}

// lastList is the fingerprint of the last List.
func (s *storageSecrets) lastList() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.last
}
