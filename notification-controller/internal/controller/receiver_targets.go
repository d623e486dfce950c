package controller

import (
	"context"
	"fmt"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"

	notifyv1 "github.com/plumb-dev/plumb/notification-controller/api/v1beta1"
)

// ReceiverTargetLabel marks the ClusterRoles that notification-controller's aggregated
// ClusterRole gathers: a kind opts in to being a Receiver target by granting get, list and patch
// on it in a ClusterRole with this label set to "true" (config/rbac/receiver_targets.yaml).
const ReceiverTargetLabel = "notification.plumb.dev/receiver-target"

// refusal says why a Receiver may not touch the objects ref selects, or returns "". It needs no
// API call: Kubernetes' own kinds (Secrets, ConfigMaps, RBAC, workloads, ...) are refused outright,
// whatever the RBAC, and so are other namespaces while cross-namespace references are off.
func refusal(rcv *notifyv1.Receiver, ref notifyv1.CrossNamespaceObjectReference, noCrossNamespaceRefs bool) string {
	gv, err := schema.ParseGroupVersion(ref.APIVersion)
	if err != nil {
		return fmt.Sprintf("apiVersion %q: %v", ref.APIVersion, err)
	}
	if builtinGroup(gv.Group) {
		return "a Kubernetes kind, never a Receiver target"
	}
	if noCrossNamespaceRefs && ref.Namespace != "" && ref.Namespace != rcv.Namespace {
		return "another namespace: cross-namespace references are disabled (--no-cross-namespace-refs)"
	}
	return ""
}

// builtinGroup says whether group is one of Kubernetes' own API groups: the core group, groups
// without a dot (apps, batch, policy, ...) and *.k8s.io. A custom resource's group always has a
// dot, so every kind that can opt in is outside these.
func builtinGroup(group string) bool {
	return group == "" || !strings.Contains(group, ".") || group == "k8s.io" || strings.HasSuffix(group, ".k8s.io")
}

// targetName names the objects ref selects, for messages: "GitRepository apps/shop",
// "ClusterRole admin", "ConfigMap b/*".
func targetName(rcv *notifyv1.Receiver, ref notifyv1.CrossNamespaceObjectReference) string {
	name := ref.Name
	if name == "" {
		name = "*"
	}
	ns := ref.Namespace
	if ns == "" {
		ns = rcv.Namespace
	}
	gv, _ := schema.ParseGroupVersion(ref.APIVersion)
	if gv.Group == "rbac.authorization.k8s.io" && strings.HasPrefix(ref.Kind, "Cluster") {
		return ref.Kind + " " + name
	}
	return ref.Kind + " " + ns + "/" + name
}

// refusals lists the Receiver's resources it may not reach, each with the reason: those refused
// outright, and those the API server forbids (a kind that did not opt in). A forbidden kind is
// found by listing at most one object of it, uncached; other errors (a kind not installed yet)
// are left to the webhook call to report.
func refusals(ctx context.Context, r client.Reader, rcv *notifyv1.Receiver, noCrossNamespaceRefs bool) []string {
	var out []string
	for _, ref := range rcv.Spec.Resources {
		if why := refusal(rcv, ref, noCrossNamespaceRefs); why != "" {
			out = append(out, targetName(rcv, ref)+" ("+why+")")
			continue
		}
		ns := ref.Namespace
		if ns == "" {
			ns = rcv.Namespace
		}
		list := &unstructured.UnstructuredList{}
		list.SetAPIVersion(ref.APIVersion)
		list.SetKind(ref.Kind + "List")
		if err := r.List(ctx, list, client.InNamespace(ns), client.Limit(1)); apierrors.IsForbidden(err) {
			out = append(out, targetName(rcv, ref)+" ("+forbidden+")")
		}
	}
	return out
}

// forbidden is the reason given for a kind the API server refuses.
const forbidden = "forbidden: the kind did not opt in to Receivers (label " + ReceiverTargetLabel + ")"
