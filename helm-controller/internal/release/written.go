package release

import (
	"sync"

	"helm.sh/helm/v3/pkg/kube"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/cli-runtime/pkg/resource"
)

// writtenClient is Helm's client of the cluster, keeping what the API server answered to each
// write of an object: Helm refreshes each object it creates, patches or replaces with the
// answer (and reads again one an upgrade leaves as it was). The controller's health wait judges
// those answers first, instead of reading every object of the release again, and knows from
// them which generation a watch must have seen before it can vouch for an object.
//
// Embedding *kube.Client keeps every optional interface of Helm's client (three-way merge,
// deletion propagation, resources, logs) that Helm's actions look for.
type writtenClient struct {
	*kube.Client

	mu      sync.Mutex
	answers map[writtenKey]*unstructured.Unstructured
}

// writtenKey names an object whatever the version it was written in.
type writtenKey struct {
	gk              schema.GroupKind
	namespace, name string
}

func (c *writtenClient) Create(resources kube.ResourceList) (*kube.Result, error) {
	res, err := c.Client.Create(resources)
	c.note(resources)
	return res, err
}

func (c *writtenClient) Update(original, target kube.ResourceList, force bool) (*kube.Result, error) {
	res, err := c.Client.Update(original, target, force)
	c.note(target)
	return res, err
}

func (c *writtenClient) UpdateThreeWayMerge(original, target kube.ResourceList, force bool) (*kube.Result, error) {
	res, err := c.Client.UpdateThreeWayMerge(original, target, force)
	c.note(target)
	return res, err
}

// note keeps the answers among infos: an object Helm failed to write keeps the manifest's
// object, without a resource version, and is left out.
func (c *writtenClient) note(infos kube.ResourceList) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, info := range infos {
		u := answerOf(info)
		if u == nil {
			continue
		}
		if c.answers == nil {
			c.answers = map[writtenKey]*unstructured.Unstructured{}
		}
		c.answers[writtenKey{gk: u.GroupVersionKind().GroupKind(), namespace: u.GetNamespace(), name: u.GetName()}] = u
	}
}

// answerOf is the object of info as the API server answered, or nil when it is not an answer.
func answerOf(info *resource.Info) *unstructured.Unstructured {
	if info == nil || info.Object == nil {
		return nil
	}
	var u *unstructured.Unstructured
	switch o := info.Object.(type) {
	case *unstructured.Unstructured:
		u = o.DeepCopy()
	default:
		m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(o)
		if err != nil {
			return nil
		}
		u = &unstructured.Unstructured{Object: m}
	}
	if u.GetResourceVersion() == "" {
		return nil
	}
	if info.Mapping != nil {
		u.SetGroupVersionKind(info.Mapping.GroupVersionKind)
	}
	return u
}

// reset forgets the answers of an earlier action.
func (c *writtenClient) reset() {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.answers = nil
}

// written returns the answer kept for o, or nil.
func (c *writtenClient) written(o *unstructured.Unstructured) *unstructured.Unstructured {
	if c == nil {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.answers[writtenKey{gk: o.GroupVersionKind().GroupKind(), namespace: o.GetNamespace(), name: o.GetName()}]
}
