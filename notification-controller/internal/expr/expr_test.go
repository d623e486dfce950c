package expr

import (
	"context"
	"errors"
	"testing"

	. "github.com/onsi/gomega"
)

func TestCompileChecksVariablesAndType(t *testing.T) {
	g := NewWithT(t)
	for src, want := range map[string]string{
		`res.metadata.name ==`:          "Syntax error",
		`'a string'`:                    "returns string, not bool",
		`resource.metadata.name == 'x'`: "undeclared reference to 'resource'",
	} {
		_, err := Compile(ResourceFilter, src)
		g.Expect(errors.Is(err, ErrCompile)).To(BeTrue(), src)
		g.Expect(err.Error()).To(And(ContainSubstring(src), ContainSubstring(want)), src)
	}
	_, err := Compile(CommitStatusID, `event.involvedObject.name == "x"`)
	g.Expect(err).To(MatchError(ContainSubstring("returns bool, not string")))

	// The examples of docs/api/receiver.md and provider.md compile.
	_, err = Compile(ResourceFilter, `has(res.metadata.annotations) && res.metadata.annotations["image"] == req.repository.repo_name`)
	g.Expect(err).NotTo(HaveOccurred())
	for _, src := range []string{
		`res.metadata.name == req.repository.name`,
		`req.tag.contains('/' + res.metadata.name + ':')`,
		`req.target.repository == res.metadata.name`,
		`has(req.component) && req.component.name == res.metadata.name`,
	} {
		_, err = Compile(ResourceFilter, src)
		g.Expect(err).NotTo(HaveOccurred(), src)
	}
	_, err = Compile(ResourceFilterOIDC, `claims.repository == 'acme/' + res.metadata.name`)
	g.Expect(err).NotTo(HaveOccurred())
	_, err = Compile(CommitStatusID, `(event.involvedObject.kind + '/' + event.involvedObject.name + '/' + event.metadata.env).lowerAscii()`)
	g.Expect(err).NotTo(HaveOccurred())

	e, err := Compile(ResourceFilter, `res.metadata.name == req.repository.name && "app" in res.metadata.labels`)
	g.Expect(err).NotTo(HaveOccurred())
	again, _ := Compile(ResourceFilter, e.String())
	g.Expect(again).To(BeIdenticalTo(e), "kept by its text")
	res := map[string]any{"metadata": map[string]any{"name": "shop", "labels": map[string]any{"app": "shop"}}}
	ok, err := e.Bool(context.Background(), map[string]any{"res": res, "req": map[string]any{"repository": map[string]any{"name": "shop"}}})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(ok).To(BeTrue())
	ok, err = e.Bool(context.Background(), map[string]any{"res": res, "req": map[string]any{"repository": map[string]any{"name": "web"}}})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(ok).To(BeFalse())
	_, err = e.Bool(context.Background(), map[string]any{"res": res, "req": map[string]any{}})
	g.Expect(err).To(MatchError(ContainSubstring("no such key")))
}

// An expression cannot run for long: the cost limit stops it (ten million steps here).
func TestCostLimit(t *testing.T) {
	g := NewWithT(t)
	e, err := Compile(ResourceFilter, `[0, 1, 2, 3, 4, 5, 6, 7, 8, 9].all(a, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9].all(b, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9].all(c, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9].all(d, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9].all(e, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9].all(f, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9].all(h, a + b + c + d + e + f + h >= 0)))))))`)
	g.Expect(err).NotTo(HaveOccurred())
	_, err = e.Bool(context.Background(), map[string]any{"res": map[string]any{}, "req": map[string]any{}})
	g.Expect(err).To(MatchError(ContainSubstring("cost limit")))
}

// claims is declared for generic-oidc's filters only, as Flux does.
func TestClaimsOnlyForOIDC(t *testing.T) {
	g := NewWithT(t)
	const src = `claims.repository == res.metadata.annotations['source-repository']`
	_, err := Compile(ResourceFilter, src)
	g.Expect(err).To(MatchError(ContainSubstring("undeclared reference to 'claims'")))
	_, err = Compile(ResourceFilterOIDC, src)
	g.Expect(err).NotTo(HaveOccurred())
	_, err = Compile(OIDCValidation, `vars.owner`)
	g.Expect(err).NotTo(HaveOccurred(), "a variable's type is known when it runs")
	_, err = Compile(OIDCValidation, `claims.sub + 'x'`)
	g.Expect(err).To(MatchError(ContainSubstring("not bool")))
}
