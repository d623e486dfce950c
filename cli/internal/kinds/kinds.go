// Package kinds knows Plumb's kinds as the CLI meets them: names and aliases people type, the
// group each belongs to, and how to read Ready, the revision and suspension from any of them
// without importing the controllers' APIs.
package kinds

import (
	"fmt"
	"sort"
	"strings"

	"github.com/fluxcd/pkg/apis/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// Kind is one of Plumb's kinds.
type Kind struct {
	GVK schema.GroupVersionKind
	// Names a person may type for it: plural, singular, short name.
	Names []string
	// Component is the controller that reconciles it.
	Component string
	// Category is what `plumb get <category>` lists it under.
	Category string
	// Suspendable: the kind has spec.suspend.
	Suspendable bool
	// SourceRef: the kind names a source in spec.sourceRef (or spec.chart.spec.sourceRef).
	SourceRef bool
}

func gvk(group, kind string) schema.GroupVersionKind {
	return schema.GroupVersionKind{Group: group, Version: "v1beta1", Kind: kind}
}

// All are Plumb's kinds, in the order `plumb get all` shows them.
var All = []Kind{
	{GVK: gvk("source.plumb.dev", "GitRepository"), Names: []string{"gitrepositories", "gitrepository", "gitrepo"}, Component: "source-controller", Category: "sources", Suspendable: true},
	{GVK: gvk("source.plumb.dev", "OCIRepository"), Names: []string{"ocirepositories", "ocirepository", "ocirepo"}, Component: "source-controller", Category: "sources", Suspendable: true},
	{GVK: gvk("source.plumb.dev", "HelmRepository"), Names: []string{"helmrepositories", "helmrepository", "helmrepo"}, Component: "source-controller", Category: "sources", Suspendable: true},
	{GVK: gvk("source.plumb.dev", "Bucket"), Names: []string{"buckets", "bucket"}, Component: "source-controller", Category: "sources", Suspendable: true},
	{GVK: gvk("source.plumb.dev", "HelmChart"), Names: []string{"helmcharts", "helmchart", "hc"}, Component: "source-controller", Category: "sources", Suspendable: true, SourceRef: true},
	{GVK: gvk("apply.plumb.dev", "Kustomization"), Names: []string{"kustomizations", "kustomization", "ks"}, Component: "apply-controller", Category: "kustomizations", Suspendable: true, SourceRef: true},
	{GVK: gvk("helm.plumb.dev", "HelmRelease"), Names: []string{"helmreleases", "helmrelease", "hr"}, Component: "helm-controller", Category: "helmreleases", Suspendable: true, SourceRef: true},
	{GVK: gvk("image.plumb.dev", "ImageRepository"), Names: []string{"imagerepositories", "imagerepository", "imagerepo"}, Component: "image-automation", Category: "images", Suspendable: true},
	{GVK: gvk("image.plumb.dev", "ImagePolicy"), Names: []string{"imagepolicies", "imagepolicy", "imagepol"}, Component: "image-automation", Category: "images"},
	{GVK: gvk("image.plumb.dev", "ImageUpdateAutomation"), Names: []string{"imageupdateautomations", "imageupdateautomation", "imageupdate"}, Component: "image-automation", Category: "images", Suspendable: true},
	{GVK: gvk("notification.plumb.dev", "Provider"), Names: []string{"providers", "provider"}, Component: "notification-controller", Category: "alerts", Suspendable: true},
	{GVK: gvk("notification.plumb.dev", "Alert"), Names: []string{"alerts", "alert"}, Component: "notification-controller", Category: "alerts", Suspendable: true},
	{GVK: gvk("notification.plumb.dev", "Receiver"), Names: []string{"receivers", "receiver"}, Component: "notification-controller", Category: "alerts", Suspendable: true},
}

// Categories are the names that list several kinds.
var Categories = []string{"sources", "kustomizations", "helmreleases", "images", "alerts", "all"}

// Lookup returns the kinds a name stands for: a category, or one kind by any of its names or its
// Kind (case-insensitive).
func Lookup(name string) ([]Kind, error) {
	n := strings.ToLower(name)
	if n == "all" {
		return All, nil
	}
	var out []Kind
	for _, k := range All {
		if k.Category == n && n != "kustomizations" && n != "helmreleases" {
			out = append(out, k)
		}
	}
	if len(out) > 0 {
		return out, nil
	}
	for _, k := range All {
		if strings.EqualFold(k.GVK.Kind, name) {
			return []Kind{k}, nil
		}
		for _, a := range k.Names {
			if a == n {
				return []Kind{k}, nil
			}
		}
	}
	return nil, fmt.Errorf("unknown kind %q; known: %s", name, strings.Join(Known(), ", "))
}

// Known lists the names Lookup takes, for messages and completion.
func Known() []string {
	names := append([]string(nil), Categories...)
	for _, k := range All {
		names = append(names, k.Names[0], k.Names[len(k.Names)-1])
	}
	sort.Strings(names)
	return dedup(names)
}

func dedup(s []string) []string {
	out := s[:0]
	for i, v := range s {
		if i == 0 || v != s[i-1] {
			out = append(out, v)
		}
	}
	return out
}

// Conditions returns status.conditions.
func Conditions(o *unstructured.Unstructured) []metav1.Condition {
	// Read without a copy: pages and tables read the conditions of thousands of objects.
	field, _, _ := unstructured.NestedFieldNoCopy(o.Object, "status", "conditions")
	raw, _ := field.([]any)
	out := make([]metav1.Condition, 0, len(raw))
	for _, r := range raw {
		m, ok := r.(map[string]any)
		if !ok {
			continue
		}
		c := metav1.Condition{}
		c.Type, _ = m["type"].(string)
		s, _ := m["status"].(string)
		c.Status = metav1.ConditionStatus(s)
		c.Reason, _ = m["reason"].(string)
		c.Message, _ = m["message"].(string)
		if g, ok := m["observedGeneration"].(int64); ok {
			c.ObservedGeneration = g
		}
		if t, ok := m["lastTransitionTime"].(string); ok {
			_ = c.LastTransitionTime.UnmarshalQueryParameter(t)
		}
		out = append(out, c)
	}
	return out
}

// Condition returns the condition of a type, or nil.
func Condition(o *unstructured.Unstructured, typ string) *metav1.Condition {
	for _, c := range Conditions(o) {
		if c.Type == typ {
			return &c
		}
	}
	return nil
}

// State sums an object up: "True", "False" or "Unknown" for Ready, and its message.
func State(o *unstructured.Unstructured) (ready, message string) {
	c := Condition(o, meta.ReadyCondition)
	if c == nil {
		return "Unknown", "not reconciled yet"
	}
	if st := Condition(o, meta.StalledCondition); st != nil && st.Status == metav1.ConditionTrue {
		return string(c.Status), "stalled: " + c.Message
	}
	return string(c.Status), c.Message
}

// Reason names the step that keeps an object from Ready (docs/contracts/conditions.md): the
// Stalled reason when retrying cannot help, else Ready's reason; empty before the first
// reconcile.
func Reason(o *unstructured.Unstructured) string {
	if st := Condition(o, meta.StalledCondition); st != nil && st.Status == metav1.ConditionTrue {
		return st.Reason
	}
	if c := Condition(o, meta.ReadyCondition); c != nil {
		return c.Reason
	}
	return ""
}

// Revision is what an object is at: an artifact's revision, the last applied revision, a
// policy's latest image, or a release's chart version.
func Revision(o *unstructured.Unstructured) string {
	for _, path := range [][]string{
		{"status", "artifact", "revision"},
		{"status", "lastAppliedRevision"},
		{"status", "lastAttemptedRevision"},
		{"status", "lastPushCommit"},
	} {
		if v, ok, _ := unstructured.NestedString(o.Object, path...); ok && v != "" {
			return v
		}
	}
	if name, ok, _ := unstructured.NestedString(o.Object, "status", "latestRef", "name"); ok {
		tag, _, _ := unstructured.NestedString(o.Object, "status", "latestRef", "tag")
		return name + ":" + tag
	}
	if n, ok, _ := unstructured.NestedInt64(o.Object, "status", "lastScanResult", "tagCount"); ok {
		return fmt.Sprintf("%d tags", n)
	}
	return ""
}

// Suspended says whether spec.suspend is true.
func Suspended(o *unstructured.Unstructured) bool {
	v, _, _ := unstructured.NestedBool(o.Object, "spec", "suspend")
	return v
}

// LastHandled is status.lastHandledReconcileAt.
func LastHandled(o *unstructured.Unstructured) string {
	v, _, _ := unstructured.NestedString(o.Object, "status", "lastHandledReconcileAt")
	return v
}

// SourceOf returns the kind, namespace and name of an object's source (spec.sourceRef, or a
// HelmRelease's spec.chart.spec.sourceRef / spec.chartRef), or ok false.
func SourceOf(o *unstructured.Unstructured) (kind, namespace, name string, ok bool) {
	for _, path := range [][]string{{"spec", "sourceRef"}, {"spec", "chartRef"}, {"spec", "chart", "spec", "sourceRef"}} {
		ref, found, _ := unstructured.NestedStringMap(o.Object, path...)
		if found && ref["kind"] != "" && ref["name"] != "" {
			ns := ref["namespace"]
			if ns == "" {
				ns = o.GetNamespace()
			}
			return ref["kind"], ns, ref["name"], true
		}
	}
	return "", "", "", false
}

// Dependency is an object named in another's spec.dependsOn.
type Dependency struct {
	Kind, Namespace, Name string
}

// DependsOn returns the objects o's spec.dependsOn names, read as the controllers read them: an
// entry without a kind is of o's kind, one without a namespace in o's namespace. Entries without
// a name are left out.
func DependsOn(o *unstructured.Unstructured) []Dependency {
	deps, _, _ := unstructured.NestedSlice(o.Object, "spec", "dependsOn")
	var out []Dependency
	for _, d := range deps {
		m, _ := d.(map[string]any)
		name, _ := m["name"].(string)
		if name == "" {
			continue
		}
		kind, _ := m["kind"].(string)
		ns, _ := m["namespace"].(string)
		if kind == "" {
			kind = o.GetKind()
		}
		if ns == "" {
			ns = o.GetNamespace()
		}
		out = append(out, Dependency{Kind: kind, Namespace: ns, Name: name})
	}
	return out
}

// ByKind returns the Kind of a kind name (GitRepository), or false.
func ByKind(kind string) (Kind, bool) {
	for _, k := range All {
		if k.GVK.Kind == kind {
			return k, true
		}
	}
	return Kind{}, false
}

// SourceVerifiedCondition is the condition a source with spec.verify reports its signature
// check in.
const SourceVerifiedCondition = "SourceVerified"

// Verified sums up a source's signature check: whom the signature is by when SourceVerified is
// True ("cosign key cosign.pub (SHA256:…)", "SSH key SHA256:… (alice@example.com)"), the reason
// when it is False, "-" without the condition (no spec.verify, or a kind that verifies
// nothing). ok is true only when the check passed.
func Verified(o *unstructured.Unstructured) (summary string, ok bool) {
	c := Condition(o, SourceVerifiedCondition)
	switch {
	case c == nil:
		return "-", false
	case c.Status != metav1.ConditionTrue:
		return c.Reason, false
	}
	// The messages name the signer after "by": "verified signature of revision … by cosign key
	// …", "commit 1a2b… signed by OpenPGP key …".
	if _, signer, found := strings.Cut(c.Message, " by "); found && signer != "" {
		return signer, true
	}
	return c.Message, true
}
