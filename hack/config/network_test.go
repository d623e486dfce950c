package config

import (
	"path/filepath"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"

	"github.com/plumb-dev/plumb/shared/testing/testenv"
)

// plumbLabel is carried by the pods of every Plumb controller: source-controller's NetworkPolicy
// lets only them fetch artifacts.
const plumbLabel, plumbValue = "app.kubernetes.io/part-of", "plumb"

// TestArtifactsServedOnlyToPlumb (security finding 7): artifacts were served to any pod that
// could reach source-controller. Its base must hold a NetworkPolicy that lets only pods with
// the Plumb label, in its own namespace, reach the artifact port, and every controller's pods
// must carry that label.
func TestArtifactsServedOnlyToPlumb(t *testing.T) {
	root, err := testenv.WorkspaceRoot()
	if err != nil {
		t.Fatal(err)
	}
	var source *appsv1.Deployment
	var policies []networkingv1.NetworkPolicy
	for _, c := range []string{"source-controller", "apply-controller", "helm-controller", "notification-controller", "image-automation"} {
		dir := filepath.Join(root, c, "config")
		m, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(filesys.MakeFsOnDisk(), dir)
		if err != nil {
			t.Fatalf("kustomize build %s: %v", dir, err)
		}
		var deployments int
		for _, r := range m.Resources() {
			obj, err := r.Map()
			if err != nil {
				t.Fatal(err)
			}
			switch r.GetKind() {
			case "Deployment":
				deployments++
				var d appsv1.Deployment
				if err := runtime.DefaultUnstructuredConverter.FromUnstructured(obj, &d); err != nil {
					t.Fatal(err)
				}
				if got := d.Spec.Template.Labels[plumbLabel]; got != plumbValue {
					t.Errorf("%s: the pods of Deployment %s have %s=%q, want %q: source-controller would refuse them artifacts", c, d.Name, plumbLabel, got, plumbValue)
				}
				if c == "source-controller" {
					source = &d
				}
			case "NetworkPolicy":
				if c != "source-controller" {
					continue
				}
				var p networkingv1.NetworkPolicy
				if err := runtime.DefaultUnstructuredConverter.FromUnstructured(obj, &p); err != nil {
					t.Fatal(err)
				}
				policies = append(policies, p)
			}
		}
		if deployments == 0 {
			t.Errorf("no Deployment in the %s base", c)
		}
	}
	if source == nil {
		t.Fatal("no source-controller Deployment")
	}
	port := artifactPort(t, source)

	var covering []networkingv1.NetworkPolicy
	for _, p := range policies {
		sel, err := metav1.LabelSelectorAsSelector(&p.Spec.PodSelector)
		if err != nil {
			t.Fatal(err)
		}
		if sel.Matches(labels.Set(source.Spec.Template.Labels)) && hasIngress(p) {
			covering = append(covering, p)
		}
	}
	if len(covering) == 0 {
		t.Fatalf("no NetworkPolicy in the source-controller base restricts ingress to its pods (policies: %d)", len(policies))
	}
	// Policies add up: a port is open to whatever any rule of any of them allows.
	var allowed bool
	for _, p := range covering {
		for i, rule := range p.Spec.Ingress {
			if !rulePort(rule, port) {
				continue
			}
			if len(rule.From) == 0 {
				t.Errorf("NetworkPolicy %s, ingress rule %d: the artifact port is open to everyone", p.Name, i)
			}
			for _, peer := range rule.From {
				switch {
				case peer.IPBlock != nil:
					t.Errorf("NetworkPolicy %s, ingress rule %d: the artifact port is open to %s", p.Name, i, peer.IPBlock.CIDR)
				case peer.NamespaceSelector != nil:
					t.Errorf("NetworkPolicy %s, ingress rule %d: the artifact port is open to other namespaces", p.Name, i)
				case peer.PodSelector == nil || peer.PodSelector.MatchLabels[plumbLabel] != plumbValue:
					t.Errorf("NetworkPolicy %s, ingress rule %d: the artifact port is open to pods without %s=%s", p.Name, i, plumbLabel, plumbValue)
				default:
					allowed = true
				}
			}
		}
	}
	if !allowed {
		t.Errorf("no ingress rule lets Plumb's controllers (%s=%s) reach the artifact port %s", plumbLabel, plumbValue, port.Name)
	}
}

// artifactPort is the container port source-controller serves artifacts on: the one its
// Service exposes, named http.
func artifactPort(t *testing.T, d *appsv1.Deployment) corev1.ContainerPort {
	t.Helper()
	for _, c := range d.Spec.Template.Spec.Containers {
		for _, p := range c.Ports {
			if p.Name == "http" {
				return p
			}
		}
	}
	t.Fatal("source-controller's Deployment has no container port named http")
	return corev1.ContainerPort{}
}

func hasIngress(p networkingv1.NetworkPolicy) bool {
	if len(p.Spec.PolicyTypes) == 0 {
		return true // the default: Ingress
	}
	for _, pt := range p.Spec.PolicyTypes {
		if pt == networkingv1.PolicyTypeIngress {
			return true
		}
	}
	return false
}

// rulePort says whether an ingress rule applies to the port, by name or number.
func rulePort(rule networkingv1.NetworkPolicyIngressRule, port corev1.ContainerPort) bool {
	if len(rule.Ports) == 0 {
		return true
	}
	for _, p := range rule.Ports {
		if p.Protocol != nil && *p.Protocol != corev1.ProtocolTCP {
			continue
		}
		switch {
		case p.Port == nil:
			return true
		case p.Port.StrVal != "" && p.Port.StrVal == port.Name:
			return true
		case p.Port.StrVal == "" && p.Port.IntVal <= port.ContainerPort &&
			(port.ContainerPort == p.Port.IntVal || (p.EndPort != nil && port.ContainerPort <= *p.EndPort)):
			return true
		}
	}
	return false
}
