package dashboard

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/plumb-dev/plumb/shared/artifact"
	"github.com/plumb-dev/plumb/shared/reconcile"
)

func TestObjectPage(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(g)
	gitRepository(g, ns, "repo", "http://127.0.0.1:1/a.tar.gz", "sha256:00")
	g.Expect(k8s.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: ns}})).To(Succeed())
	kustomization(g, ns, "child", nil, "False", "HealthCheckFailed", "Deployment/web not ready")
	g.Expect(k8s.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "creds", Namespace: ns}, StringData: map[string]string{"token": "s3cr3t"}})).To(Succeed())
	kustomization(g, ns, "apps", map[string]any{"dependsOn": []any{map[string]any{"name": "child"}}}, "True", "ReconciliationSucceeded", "Applied revision: main@sha1:1a2b3c",
		ns+"_web__ConfigMap", ns+"_web_apps_Deployment", ns+"_child_apply.plumb.dev_Kustomization", ns+"_creds__Secret")
	g.Expect(k8s.Create(ctx, &corev1.Event{ObjectMeta: metav1.ObjectMeta{GenerateName: "apps-", Namespace: ns,
		Annotations: map[string]string{"plumb.dev/revision": "main@sha1:1a2b3c"}},
		InvolvedObject: corev1.ObjectReference{APIVersion: "apply.plumb.dev/v1beta1", Kind: "Kustomization", Namespace: ns, Name: "apps"},
		Type:           corev1.EventTypeWarning, Reason: "BuildFailed", Message: "kustomize build failed: boom", Count: 3,
		LastTimestamp: metav1.Now()})).To(Succeed())

	path := "/o/apply.plumb.dev/Kustomization/" + ns + "/apps"
	body := page(g, admin, path, "kustomize build failed: boom")
	for _, want := range []string{
		"<h1>Kustomization",
		"✔</span> Ready</span> <span class=\"reason\">ReconciliationSucceeded</span>",
		"Applied revision: main@sha1:1a2b3c",
		// Conditions, history, the events timeline.
		"<th scope=\"row\">Ready</th><td>True</td><td>ReconciliationSucceeded</td>",
		"<td>main@sha1:1a2b3c</td><td>ReconciliationSucceeded</td><td>1.2s</td>",
		"⚠ Warning</strong> BuildFailed (×3)",
		// The source and the dependencies, with their states.
		`<a href="/o/source.plumb.dev/GitRepository/` + ns + `/repo">GitRepository ` + ns + `/repo</a>`,
		`<a href="/o/apply.plumb.dev/Kustomization/` + ns + `/child">Kustomization ` + ns + `/child</a> <span class="state st-failed">`,
		// The spec.
		"<dt>path</dt><dd>./apps</dd>",
		// The inventory with each object's health.
		"Inventory (4)",
		"Secret/" + ns + "/creds</td><td><span class=\"state st-ready\">✔ Current</span>",
		"ConfigMap/" + ns + "/web</td><td><span class=\"state st-ready\">✔ Current</span>",
		"Deployment/" + ns + "/web</td><td><span class=\"state st-failed\">✖ NotFound</span>",
		`<a href="/o/apply.plumb.dev/Kustomization/` + ns + `/child">Kustomization/` + ns + `/child</a></td><td><span class="state st-failed">✖ Failed</span>`,
		// The admin may act.
		`action="` + path + `/reconcile"`, `action="` + path + `/reconcile-with-source"`, `action="` + path + `/suspend"`,
		path + "/diff",
	} {
		g.Expect(body).To(ContainSubstring(want))
	}
	g.Expect(body).NotTo(ContainSubstring(path + "/resume"))
	// The live parts come alone: the status (refreshed on every change) and the inventory.
	code, frag := get(g, admin, path+"?fragment=inventory")
	g.Expect(code).To(Equal(http.StatusOK))
	g.Expect(frag).To(ContainSubstring("Inventory (4)"))
	g.Expect(frag).NotTo(ContainSubstring("<html"))
	code, frag = get(g, admin, path+"?fragment=object")
	g.Expect(code).To(Equal(http.StatusOK))
	g.Expect(frag).To(ContainSubstring("BuildFailed (×3)"))
	g.Expect(frag).NotTo(ContainSubstring("Inventory ("))

	code, body = get(g, admin, "/o/apply.plumb.dev/Kustomization/"+ns+"/absent")
	g.Expect(code).To(Equal(http.StatusNotFound))
	g.Expect(body).To(ContainSubstring("Kustomization " + ns + "/absent is not here"))
	code, _ = get(g, admin, "/o/apply.plumb.dev/Widget/"+ns+"/apps")
	g.Expect(code).To(Equal(http.StatusNotFound))
}

// csrfOf reads the page's token.
func csrfOf(g Gomega, srv *httptest.Server, path string) string {
	_, body := get(g, srv, path)
	token, err := between(body, `<meta name="csrf-token" content="`, `"`)
	g.Expect(err).NotTo(HaveOccurred())
	return token
}

// post sends an action as the page's JavaScript does (a header token, a JSON answer), as user
// when set (the proxy's header).
func post(g Gomega, srv *httptest.Server, path, token, user string) (int, string) {
	req, err := http.NewRequest(http.MethodPost, srv.URL+path, strings.NewReader(url.Values{"csrf": {token}}.Encode()))
	g.Expect(err).NotTo(HaveOccurred())
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	if user != "" {
		req.Header.Set("X-Forwarded-User", user)
	}
	resp, err := http.DefaultClient.Do(req)
	g.Expect(err).NotTo(HaveOccurred())
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestActions(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(g)
	repo := gitRepository(g, ns, "repo", "http://127.0.0.1:1/a.tar.gz", "sha256:00")
	ks := kustomization(g, ns, "apps", nil, "False", "BuildFailed", "boom")
	path := "/o/apply.plumb.dev/Kustomization/" + ns + "/apps"
	page(g, admin, path, "boom")
	token := csrfOf(g, admin, path)

	// Without the page's token, or from another origin: refused, nothing changes.
	code, _ := post(g, admin, path+"/reconcile", "forged", "")
	g.Expect(code).To(Equal(http.StatusForbidden))
	req, _ := http.NewRequest(http.MethodPost, admin.URL+path+"/reconcile", strings.NewReader("csrf="+token))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", "http://evil.example")
	resp, err := http.DefaultClient.Do(req)
	g.Expect(err).NotTo(HaveOccurred())
	resp.Body.Close()
	g.Expect(resp.StatusCode).To(Equal(http.StatusForbidden))
	g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(ks), ks)).To(Succeed())
	_, requested := reconcile.RequestedAt(ks.GetAnnotations())
	g.Expect(requested).To(BeFalse())

	// Reconcile: the annotation is set, and the page shows the request waiting for its
	// controller until status.lastHandledReconcileAt says it was handled.
	code, body := post(g, admin, path+"/reconcile", token, "")
	g.Expect(code).To(Equal(http.StatusOK), body)
	g.Expect(body).To(ContainSubstring("Reconcile of Kustomization " + ns + "/apps requested."))
	g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(ks), ks)).To(Succeed())
	value, requested := reconcile.RequestedAt(ks.GetAnnotations())
	g.Expect(requested).To(BeTrue())
	page(g, admin, path+"?fragment=object", "waiting for apply-controller to handle it")
	g.Expect(unstructured.SetNestedField(ks.Object, value, "status", "lastHandledReconcileAt")).To(Succeed())
	g.Expect(k8s.Status().Update(ctx, ks)).To(Succeed())
	page(g, admin, path+"?fragment=object", "The last reconcile request ("+value+") was handled.")

	// With its source: the source first; the Kustomization once the source's request is handled.
	code, body = post(g, admin, path+"/reconcile-with-source", token, "")
	g.Expect(code).To(Equal(http.StatusOK), body)
	g.Eventually(func(g Gomega) {
		g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(repo), repo)).To(Succeed())
		_, ok := reconcile.RequestedAt(repo.GetAnnotations())
		g.Expect(ok).To(BeTrue())
	}, timeout, 50*time.Millisecond).Should(Succeed())
	page(g, admin, path+"?fragment=object", "Reconcile of the source GitRepository "+ns+"/repo requested")
	g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(ks), ks)).To(Succeed())
	v, _ := reconcile.RequestedAt(ks.GetAnnotations())
	g.Expect(v).To(Equal(value), "the Kustomization waits for its source")
	srcValue, _ := reconcile.RequestedAt(repo.GetAnnotations())
	g.Expect(unstructured.SetNestedField(repo.Object, srcValue, "status", "lastHandledReconcileAt")).To(Succeed())
	g.Expect(k8s.Status().Update(ctx, repo)).To(Succeed())
	g.Eventually(func(g Gomega) {
		g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(ks), ks)).To(Succeed())
		v, _ := reconcile.RequestedAt(ks.GetAnnotations())
		g.Expect(v).NotTo(Equal(value))
	}, timeout, 50*time.Millisecond).Should(Succeed())

	// Suspend, then resume (which requests a reconcile, as plumb resume does).
	code, body = post(g, admin, path+"/suspend", token, "")
	g.Expect(code).To(Equal(http.StatusOK), body)
	g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(ks), ks)).To(Succeed())
	g.Expect(ks.Object["spec"].(map[string]any)["suspend"]).To(BeTrue())
	body = page(g, admin, path, path+"/resume", "Suspended")
	g.Expect(body).NotTo(ContainSubstring(path + "/reconcile\""))
	code, body = post(g, admin, path+"/reconcile", token, "")
	g.Expect(code).To(Equal(http.StatusConflict))
	g.Expect(body).To(ContainSubstring("is suspended; resume it first"))
	code, body = post(g, admin, path+"/resume", token, "")
	g.Expect(code).To(Equal(http.StatusOK), body)
	g.Expect(body).To(ContainSubstring("resumed; reconcile requested"))
	g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(ks), ks)).To(Succeed())
	g.Expect(ks.Object["spec"].(map[string]any)["suspend"]).To(BeFalse())

	// A form sent without JavaScript gets the object page back.
	form, _ := http.NewRequest(http.MethodPost, admin.URL+path+"/reconcile", strings.NewReader("csrf="+token))
	form.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err = noFollow.Do(form)
	g.Expect(err).NotTo(HaveOccurred())
	resp.Body.Close()
	g.Expect(resp.StatusCode).To(Equal(http.StatusSeeOther))
	g.Expect(resp.Header.Get("Location")).To(Equal(path))
}

// grant gives user read access to Plumb's kinds and Events everywhere, and patch on them in
// the namespaces listed.
func grant(g Gomega, user string, patchIn ...string) {
	ctx := context.Background()
	groups := []string{"source.plumb.dev", "apply.plumb.dev", "helm.plumb.dev", "image.plumb.dev", "notification.plumb.dev"}
	role := &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: "dash-" + user}, Rules: []rbacv1.PolicyRule{
		{APIGroups: groups, Resources: []string{"*"}, Verbs: []string{"get", "list", "watch"}},
		{APIGroups: []string{""}, Resources: []string{"events", "configmaps"}, Verbs: []string{"get", "list", "watch"}},
	}}
	g.Expect(k8s.Create(ctx, role)).To(Succeed())
	g.Expect(k8s.Create(ctx, &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "dash-" + user},
		RoleRef:  rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: role.Name},
		Subjects: []rbacv1.Subject{{APIGroup: "rbac.authorization.k8s.io", Kind: "User", Name: user}}})).To(Succeed())
	for _, ns := range patchIn {
		r := &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: "dash-patch-" + user, Namespace: ns}, Rules: []rbacv1.PolicyRule{
			{APIGroups: groups, Resources: []string{"*"}, Verbs: []string{"patch"}}}}
		g.Expect(k8s.Create(ctx, r)).To(Succeed())
		g.Expect(k8s.Create(ctx, &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: r.Name, Namespace: ns},
			RoleRef:  rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: r.Name},
			Subjects: []rbacv1.Subject{{APIGroup: "rbac.authorization.k8s.io", Kind: "User", Name: user}}})).To(Succeed())
	}
}

// A person whose RBAC forbids patch sees no action buttons, and a forged action is refused; in
// the cluster the same holds for the person the proxy names.
func TestActionsFollowRBAC(t *testing.T) {
	g := NewWithT(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ns := newNamespace(g)
	gitRepository(g, ns, "repo", "http://127.0.0.1:1/a.tar.gz", "sha256:00")
	ks := kustomization(g, ns, "apps", nil, "False", "BuildFailed", "boom")
	grant(g, "viewer")
	grant(g, "editor", ns)
	path := "/o/apply.plumb.dev/Kustomization/" + ns + "/apps"

	// Locally: the dashboard runs with the viewer's kubeconfig.
	cfg := rest.CopyConfig(env.Config)
	cfg.Impersonate = rest.ImpersonationConfig{UserName: "viewer"}
	srv, err := start(ctx, cfg, Config{})
	g.Expect(err).NotTo(HaveOccurred())
	viewer := httptest.NewServer(srv)
	defer viewer.Close()
	body := page(g, viewer, path, "boom")
	g.Expect(body).To(ContainSubstring("None: your RBAC does not allow patching this object."))
	g.Expect(body).NotTo(ContainSubstring("<button"))
	code, _ := post(g, viewer, path+"/reconcile", csrfOf(g, viewer, path), "")
	g.Expect(code).To(Equal(http.StatusForbidden))

	// In the cluster, read-only unless --allow-actions.
	srv, err = start(ctx, env.Config, Config{InCluster: true})
	g.Expect(err).NotTo(HaveOccurred())
	readOnly := httptest.NewServer(srv)
	defer readOnly.Close()
	body = page(g, readOnly, path, "boom")
	g.Expect(body).To(ContainSubstring("Read-only: this dashboard runs in the cluster without --allow-actions."))
	g.Expect(body).NotTo(ContainSubstring("<button"))
	page(g, readOnly, path+"/diff", "no drift view: Read-only")

	// With --allow-actions, as the person the proxy names, impersonated: the dashboard's own
	// identity may read and impersonate, not patch.
	grant(g, "plumb-dashboard")
	g.Expect(k8s.Create(ctx, &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: "dash-impersonate"}, Rules: []rbacv1.PolicyRule{
		{APIGroups: []string{""}, Resources: []string{"users", "groups"}, Verbs: []string{"impersonate"}}}})).To(Succeed())
	g.Expect(k8s.Create(ctx, &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "dash-impersonate"},
		RoleRef:  rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: "dash-impersonate"},
		Subjects: []rbacv1.Subject{{APIGroup: "rbac.authorization.k8s.io", Kind: "User", Name: "plumb-dashboard"}}})).To(Succeed())
	sa, err := env.AddUser("plumb-dashboard")
	g.Expect(err).NotTo(HaveOccurred())
	own, err := client.New(sa, client.Options{Scheme: env.Scheme})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(apierrors.IsForbidden(own.Patch(ctx, ks.DeepCopy(), reconcile.RequestPatch("by-the-dashboard-itself")))).To(BeTrue())
	srv, err = start(ctx, sa, Config{InCluster: true, AllowActions: true})
	g.Expect(err).NotTo(HaveOccurred())
	proxied := httptest.NewServer(srv)
	defer proxied.Close()
	as := func(user string) string {
		req, _ := http.NewRequest(http.MethodGet, proxied.URL+path, nil)
		if user != "" {
			req.Header.Set("X-Forwarded-User", user)
		}
		resp, err := http.DefaultClient.Do(req)
		g.Expect(err).NotTo(HaveOccurred())
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	g.Eventually(func() string { return as("editor") }, timeout, 100*time.Millisecond).Should(ContainSubstring(`action="` + path + `/reconcile"`))
	g.Expect(as("editor")).To(ContainSubstring("reconcile-with-source"), "the editor may patch the source too: same namespace")
	g.Expect(as("viewer")).NotTo(ContainSubstring("<button"))
	g.Expect(as("")).To(ContainSubstring("No signed-in user: the authenticating proxy sent no X-Forwarded-User header."))
	token := csrfOf(g, proxied, path)
	code, _ = post(g, proxied, path+"/reconcile", token, "viewer")
	g.Expect(code).To(Equal(http.StatusForbidden))
	code, body = post(g, proxied, path+"/reconcile", token, "editor")
	g.Expect(code).To(Equal(http.StatusOK), body)
	g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(ks), ks)).To(Succeed())
	_, requested := reconcile.RequestedAt(ks.GetAnnotations())
	g.Expect(requested).To(BeTrue())
}

// The SSE stream delivers a change of an object as it happens.
func TestLiveUpdates(t *testing.T) {
	g := NewWithT(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ns := newNamespace(g)
	ks := kustomization(g, ns, "apps", nil, "True", "ReconciliationSucceeded", "Applied")
	page(g, admin, "/?ns="+ns, "/"+ns+"/apps")

	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, admin.URL+"/events", nil)
	resp, err := http.DefaultClient.Do(req)
	g.Expect(err).NotTo(HaveOccurred())
	defer resp.Body.Close()
	g.Expect(resp.Header.Get("Content-Type")).To(Equal("text/event-stream"))
	lines := make(chan string, 1024)
	go func() {
		defer close(lines)
		buf := make([]byte, 64<<10)
		var acc strings.Builder
		for {
			n, err := resp.Body.Read(buf)
			acc.Write(buf[:n])
			for {
				s := acc.String()
				i := strings.Index(s, "\n\n")
				if i < 0 {
					break
				}
				lines <- s[:i]
				acc.Reset()
				acc.WriteString(s[i+2:])
			}
			if err != nil {
				return
			}
		}
	}()
	g.Eventually(lines, timeout).Should(Receive(ContainSubstring(": connected")))

	g.Expect(unstructured.SetNestedSlice(ks.Object, ready("False", "HealthCheckFailed", "Deployment/web not ready"), "status", "conditions")).To(Succeed())
	g.Expect(k8s.Status().Update(ctx, ks)).To(Succeed())
	key := fmt.Sprintf(`"key":"apply.plumb.dev/Kustomization/%s/apps"`, ns)
	g.Eventually(lines, timeout).Should(Receive(And(HavePrefix("event: object"), ContainSubstring(key),
		ContainSubstring(`"state":"Failed"`), ContainSubstring(`"reason":"HealthCheckFailed"`))))

	g.Expect(k8s.Create(ctx, &corev1.Event{ObjectMeta: metav1.ObjectMeta{GenerateName: "apps-", Namespace: ns},
		InvolvedObject: corev1.ObjectReference{APIVersion: "apply.plumb.dev/v1beta1", Kind: "Kustomization", Namespace: ns, Name: "apps"},
		Type:           corev1.EventTypeWarning, Reason: "HealthCheckFailed", Message: "timeout", LastTimestamp: metav1.Now()})).To(Succeed())
	g.Eventually(lines, timeout).Should(Receive(And(HavePrefix("event: event"), ContainSubstring(key), ContainSubstring(`"eventType":"Warning"`))))

	g.Expect(k8s.Delete(ctx, ks)).To(Succeed())
	g.Eventually(lines, timeout).Should(Receive(And(ContainSubstring(key), ContainSubstring(`"deleted":true`))))
}

// tarball packs files as a source artifact.
func tarball(g Gomega, files map[string]string) []byte {
	var buf bytes.Buffer
	w := artifact.NewWriter(&buf)
	for name, data := range files {
		g.Expect(w.File(name, false, int64(len(data)), strings.NewReader(data))).To(Succeed())
	}
	g.Expect(w.Close()).To(Succeed())
	return buf.Bytes()
}

func TestDriftView(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(g)
	tar := tarball(g, map[string]string{
		"apps/web.yaml":    "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: web\ndata:\n  greeting: hello\n  a: \"1\"\n  b: \"2\"\n  c: \"3\"\n  d: \"4\"\n  e: \"5\"\n",
		"apps/secret.yaml": "apiVersion: v1\nkind: Secret\nmetadata:\n  name: creds\nstringData:\n  token: n3w-s3cr3t\n",
		"apps/new.yaml":    "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: extra\n",
	})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write(tar) }))
	defer srv.Close()
	gitRepository(g, ns, "repo", srv.URL+"/a.tar.gz", fmt.Sprintf("sha256:%x", sha256.Sum256(tar)))
	g.Expect(k8s.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: ns},
		Data: map[string]string{"greeting": "old", "a": "1", "b": "2", "c": "3", "d": "4", "e": "5"}})).To(Succeed())
	g.Expect(k8s.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "creds", Namespace: ns},
		StringData: map[string]string{"token": "0ld-s3cr3t"}})).To(Succeed())
	kustomization(g, ns, "apps", map[string]any{"targetNamespace": ns}, "True", "ReconciliationSucceeded", "Applied",
		ns+"_web__ConfigMap", ns+"_creds__Secret", ns+"_gone__ConfigMap")

	body := page(g, admin, "/o/apply.plumb.dev/Kustomization/"+ns+"/apps/diff", "ConfigMap/"+ns+"/web", "/gone</a> deleted")
	g.Expect(body).To(ContainSubstring("revision <span class=\"rev\">main@sha1:1a2b3c</span>"))
	g.Expect(body).To(MatchRegexp(`<a href="#change-\d+">ConfigMap/` + ns + `/extra</a> created`))
	g.Expect(body).To(MatchRegexp(`<a href="#change-\d+">ConfigMap/` + ns + `/gone</a> deleted`))
	// Side by side: the cluster's line on the left, the build's on the right.
	g.Expect(body).To(MatchRegexp(`<tr class="op-replace">\s*<td class="no">\d+</td><td class="code left"><span class="visually-hidden">removed: </span>  greeting: old</td>\s*<td class="no">\d+</td><td class="code right"><span class="visually-hidden">added: </span>  greeting: hello</td>`))
	g.Expect(body).To(ContainSubstring("Secret/" + ns + "/creds"))
	g.Expect(body).NotTo(ContainSubstring("s3cr3t"), "Secret values are masked")
	g.Expect(body).NotTo(ContainSubstring(base64Of("n3w-s3cr3t")))
	g.Expect(body).NotTo(ContainSubstring(base64Of("0ld-s3cr3t")))
	// A dry run: nothing changed.
	cm := &corev1.ConfigMap{}
	g.Expect(k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "web"}, cm)).To(Succeed())
	g.Expect(cm.Data["greeting"]).To(Equal("old"))

	code, body := get(g, admin, "/o/source.plumb.dev/GitRepository/"+ns+"/repo/diff")
	g.Expect(code).To(Equal(http.StatusNotFound))
	g.Expect(body).To(ContainSubstring("Only a Kustomization has a drift view."))
}

func base64Of(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
