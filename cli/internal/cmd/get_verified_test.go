package cmd

import (
	"context"
	"testing"
	"time"

	. "github.com/onsi/gomega"
)

// TestGetVerified: the VERIFIED column shows whom a source's signature is by, the reason of a
// refusal, or "-" without SourceVerified; --verified keeps the verified sources only.
func TestGetVerified(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(g)
	now := time.Now().UTC().Format(time.RFC3339)
	withVerified := func(status, reason, message string) map[string]any {
		return map[string]any{"conditions": append(ready(status, reason, message), map[string]any{
			"type": "SourceVerified", "status": status, "reason": reason, "message": message, "lastTransitionTime": now})}
	}
	spec := map[string]any{"url": "oci://127.0.0.1:5000/app", "interval": "5m"}
	object(g, "source.plumb.dev/v1beta1", "OCIRepository", ns, "signed", spec,
		withVerified("True", "Succeeded", "verified signature of revision v1@sha256:4c1e by cosign key cosign.pub (SHA256:abcd)"))
	object(g, "source.plumb.dev/v1beta1", "OCIRepository", ns, "tampered", spec,
		withVerified("False", "VerificationError", "no cosign signature of sha256:9f9f"))
	gitRepository(g, ns, "plain")

	code, out, errOut := plumb(ctx, "get", "sources", "-n", ns)
	g.Expect(code).To(Equal(0), errOut)
	g.Expect(out).To(MatchRegexp(`SUSPENDED\s+VERIFIED\s+AGE`))
	g.Expect(out).To(MatchRegexp(`OCIRepository/signed\s+True\s+.*false\s+cosign key cosign.pub \(SHA256:abcd\)\s+\d+s`))
	g.Expect(out).To(MatchRegexp(`OCIRepository/tampered\s+False\s+.*false\s+VerificationError\s+\d+s`))
	g.Expect(out).To(MatchRegexp(`GitRepository/plain\s+True\s+.*false\s+-\s+\d+s`))

	code, out, errOut = plumb(ctx, "get", "sources", "-n", ns, "--verified")
	g.Expect(code).To(Equal(0), errOut)
	g.Expect(out).To(ContainSubstring("OCIRepository/signed"))
	g.Expect(out).NotTo(ContainSubstring("tampered"))
	g.Expect(out).NotTo(ContainSubstring("plain"))

	code, _, errOut = plumb(ctx, "get", "gitrepositories", "-n", ns, "--verified")
	g.Expect(code).To(Equal(0))
	g.Expect(errOut).To(Equal("no verified gitrepositories in namespace " + ns))

	kustomization(g, ns, "apps", "True")
	code, out, _ = plumb(ctx, "get", "ks", "-n", ns)
	g.Expect(code).To(Equal(0))
	g.Expect(out).To(ContainSubstring("apps"))
	g.Expect(out).NotTo(ContainSubstring("VERIFIED"), "kinds that verify nothing have no column")

	code, _, errOut = plumb(ctx, "get", "kustomizations", "-n", ns, "--verified")
	g.Expect(code).To(Equal(2))
	g.Expect(errOut).To(Equal("plumb: --verified lists sources; kustomizations has none"))
}
