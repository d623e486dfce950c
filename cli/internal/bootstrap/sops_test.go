package bootstrap

import (
	"strings"
	"testing"

	"github.com/go-git/go-billy/v5/memfs"
	. "github.com/onsi/gomega"

	"github.com/plumb-dev/plumb/shared/sops/sopstest"
)

func TestAgeRecipients(t *testing.T) {
	key1, rcpt1 := sopstest.Identity(t)
	key2, rcpt2 := sopstest.Identity(t)
	for _, tc := range []struct {
		name, file string
		want       []string
		err        string
	}{
		{name: "one", file: "# created: today\n" + key1 + "\n", want: []string{rcpt1}},
		{name: "two, for a rotation", file: key1 + "\n\n" + key2 + "\n", want: []string{rcpt1, rcpt2}},
		{name: "a damaged key", file: key1[:len(key1)-2] + "QQ\n", err: "does not parse"},
		{name: "comments only", file: "# nothing\n", err: "no age identity"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			got, err := AgeRecipients([]byte(tc.file))
			if tc.err != "" {
				g.Expect(err).To(MatchError(ContainSubstring(tc.err)))
				g.Expect(err.Error()).NotTo(ContainSubstring("AGE-SECRET-KEY-1Q"))
				return
			}
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(got).To(Equal(tc.want))
		})
	}
}

func TestFindSOPSConfig(t *testing.T) {
	for _, tc := range []struct {
		name  string
		files []string
		want  string
	}{
		{name: "none", files: []string{"clusters/dev/app.yaml"}, want: ""},
		{name: "in the path", files: []string{"clusters/dev/.sops.yaml"}, want: "clusters/dev/.sops.yaml"},
		{name: "at the root", files: []string{".sops.yaml"}, want: ".sops.yaml"},
		{name: "above, .yml", files: []string{"clusters/.sops.yml"}, want: "clusters/.sops.yml"},
		{name: "the nearest", files: []string{".sops.yaml", "clusters/dev/.sops.yaml"}, want: "clusters/dev/.sops.yaml"},
		{name: "below does not count", files: []string{"clusters/dev/apps/.sops.yaml"}, want: ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			fs := memfs.New()
			for _, f := range tc.files {
				g.Expect(write(fs, f, []byte("creation_rules: []\n"))).To(Succeed())
			}
			g.Expect(findSOPSConfig(fs, "clusters/dev")).To(Equal(tc.want))
		})
	}
}

func TestSOPSConfig(t *testing.T) {
	g := NewWithT(t)
	name, data := sopsConfig(Options{Path: "clusters/dev", Namespace: "plumb-system",
		SOPS: &SOPS{SecretName: "sops-age", AgeKey: []byte("AGE-SECRET-KEY-1X"), Recipients: []string{"age1a", "age1b"}}})
	g.Expect(name).To(Equal("clusters/dev/.sops.yaml"))
	g.Expect(string(data)).To(HaveSuffix("creation_rules:\n  - path_regex: .*\\.ya?ml$\n    encrypted_regex: ^(data|stringData)$\n    age: age1a,age1b\n"))
	g.Expect(strings.Contains(string(data), "AGE-SECRET-KEY")).To(BeFalse())
	name, _ = sopsConfig(Options{Path: "clusters/dev", SOPS: &SOPS{SecretName: "team-keys"}})
	g.Expect(name).To(BeEmpty(), "an existing Secret: no public key to write")
}
