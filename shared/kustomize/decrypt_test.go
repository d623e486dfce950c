package kustomize

import (
	"encoding/base64"
	"errors"
	"strings"
	"testing"

	. "github.com/onsi/gomega"

	"github.com/plumb-dev/plumb/shared/redact"
	"github.com/plumb-dev/plumb/shared/sops"
	"github.com/plumb-dev/plumb/shared/sops/sopstest"
)

const encSecret = `apiVersion: v1
kind: Secret
metadata:
  name: db
stringData:
  password: manifest-secret-1
`

// TestBuildDecrypts builds a folder holding an encrypted manifest and a kustomization whose
// secretGenerator reads an encrypted dotenv file and an encrypted binary file: the objects hold
// the plaintext, the tree keeps the ciphertext, and the values come back to be masked.
func TestBuildDecrypts(t *testing.T) {
	g := NewWithT(t)
	id, rcpt := sopstest.Identity(t)
	enc := func(format, plain string) string {
		return string(sopstest.Encrypt(t, format, []byte(plain), sopstest.Options{}, []string{rcpt}))
	}
	files := map[string]string{
		"/plain/secret.yaml": enc("yaml", encSecret),
		"/gen/kustomization.yaml": `resources: [secret.json]
secretGenerator:
  - name: app
    envs: [app.env]
    files: [tls.key]
generatorOptions: {disableNameSuffixHash: true}
`,
		"/gen/secret.json": enc("json", `{"apiVersion":"v1","kind":"Secret","metadata":{"name":"js"},"stringData":{"token":"json-secret-2"}}`),
		"/gen/app.env":     enc("dotenv", "PASSWORD=dotenv-secret-3\n"),
		"/gen/tls.key":     enc("binary", "binary-secret-4\n"),
	}
	d, err := sops.New(map[string][]byte{"k.agekey": []byte(id)})
	g.Expect(err).NotTo(HaveOccurred())
	tree := NewTree(memFS(t, files))

	r, err := tree.Build(Options{Path: "plain", Decryptor: d})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(r.Objects).To(HaveLen(1))
	g.Expect(r.Objects[0].Object["stringData"]).To(HaveKeyWithValue("password", "manifest-secret-1"))
	g.Expect(r.Secrets).To(ContainElement("manifest-secret-1"))

	r, err = tree.Build(Options{Path: "gen", Decryptor: d})
	g.Expect(err).NotTo(HaveOccurred())
	byName := map[string]map[string]any{}
	for _, o := range r.Objects {
		byName[o.GetName()] = o.Object
	}
	g.Expect(byName["js"]["stringData"]).To(HaveKeyWithValue("token", "json-secret-2"))
	g.Expect(byName["app"]["data"]).To(HaveKeyWithValue("PASSWORD", base64.StdEncoding.EncodeToString([]byte("dotenv-secret-3"))))
	g.Expect(byName["app"]["data"]).To(HaveKeyWithValue("tls.key", base64.StdEncoding.EncodeToString([]byte("binary-secret-4\n"))))
	g.Expect(r.Secrets).To(ContainElements("json-secret-2", "dotenv-secret-3", "binary-secret-4\n"))
	// The digest does not tell the values.
	g.Expect(r.Digest).NotTo(Equal(redact.Digest([]byte("x"), nil)))

	// The shared tree still holds ciphertext only.
	data, err := tree.fs.ReadFile(srcRoot + "/gen/app.env")
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(string(data)).NotTo(ContainSubstring("dotenv-secret-3"))

	// Without a decryptor, the encrypted dotenv feeds ENC[...] strings; the controller only
	// decrypts when asked.
	r, err = tree.Build(Options{Path: "gen"})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(r.Secrets).To(BeEmpty())
}

func TestBuildDecryptionFails(t *testing.T) {
	g := NewWithT(t)
	_, rcpt := sopstest.Identity(t)
	wrong, _ := sopstest.Identity(t)
	d, err := sops.New(map[string][]byte{"k.agekey": []byte(wrong)})
	g.Expect(err).NotTo(HaveOccurred())
	for _, tc := range []struct{ name, path string }{
		{"folder without kustomization", "plain"},
		{"kustomization resource", "k"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			files := map[string]string{
				"/" + tc.path + "/secret.yaml": string(sopstest.Encrypt(t, "yaml", []byte(encSecret), sopstest.Options{}, []string{rcpt})),
			}
			if tc.path == "k" {
				files["/k/kustomization.yaml"] = "resources: [secret.yaml]\n"
			}
			_, err := NewTree(memFS(t, files)).Build(Options{Path: tc.path, Decryptor: d})
			g.Expect(errors.Is(err, ErrDecryption)).To(BeTrue(), "%v", err)
			g.Expect(err.Error()).To(ContainSubstring(tc.path + "/secret.yaml"))
			g.Expect(err.Error()).To(ContainSubstring(rcpt))
			g.Expect(strings.Contains(err.Error(), wrong)).To(BeFalse())
		})
	}
}

// An encrypted YAML file that is no manifest (values for another tool, maybe for other keys) in
// a folder without kustomization is left out, not decrypted.
func TestBuildLeavesEncryptedNonManifests(t *testing.T) {
	g := NewWithT(t)
	id, rcpt := sopstest.Identity(t)
	_, other := sopstest.Identity(t)
	files := map[string]string{
		"/plain/secret.yaml": string(sopstest.Encrypt(t, "yaml", []byte(encSecret), sopstest.Options{}, []string{rcpt})),
		"/plain/values.yaml": string(sopstest.Encrypt(t, "yaml", []byte("password: other-team\n"), sopstest.Options{}, []string{other})),
	}
	d, err := sops.New(map[string][]byte{"k.agekey": []byte(id)})
	g.Expect(err).NotTo(HaveOccurred())
	r, err := NewTree(memFS(t, files)).Build(Options{Path: "plain", Decryptor: d})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(r.Objects).To(HaveLen(1))
}

// TestDigestMasksDecryptedValues builds the same files encrypted with different values: the
// digests are equal, in every form a decrypted value takes in the output (a number as JSON
// writes it, a generated Secret's base64).
func TestDigestMasksDecryptedValues(t *testing.T) {
	id, rcpt := sopstest.Identity(t)
	d, err := sops.New(map[string][]byte{"k.agekey": []byte(id)})
	if err != nil {
		t.Fatal(err)
	}
	digest := func(t *testing.T, files map[string]string, vars map[string]string) string {
		for name, plain := range files {
			if name != "/app/kustomization.yaml" {
				format := map[string]string{".yaml": "yaml", ".env": "dotenv"}[name[strings.LastIndex(name, "."):]]
				files[name] = string(sopstest.Encrypt(t, format, []byte(plain), sopstest.Options{}, []string{rcpt}))
			}
		}
		r, err := NewTree(memFS(t, files)).Build(Options{Path: "app", Decryptor: d, Vars: vars})
		if err != nil {
			t.Fatal(err)
		}
		return r.Digest
	}
	number := func(v string) map[string]string {
		return map[string]string{"/app/cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: n\ndata:\n  n: " + v + "\n"}
	}
	generated := func(v string) map[string]string {
		return map[string]string{
			"/app/kustomization.yaml": "secretGenerator:\n  - name: app\n    envs: [app.env]\ngeneratorOptions: {disableNameSuffixHash: true}\n",
			"/app/app.env":            "PASSWORD=" + v + "\n",
		}
	}
	multiline := func(v string) map[string]string {
		return map[string]string{"/app/secret.yaml": "apiVersion: v1\nkind: Secret\nmetadata:\n  name: s\n  labels:\n    region: ${REGION}\nstringData:\n  key: |\n" + v}
	}
	substitute := map[string]string{"REGION": "eu"}
	cases := []struct {
		name string
		a, b map[string]string
		vars map[string]string
	}{
		{"an integer JSON cannot hold", number("12345678901234567"), number("12345678901234599"), nil},
		{"a float JSON writes otherwise", number("1.5e-7"), number("2.5e-7"), nil},
		{"a generated Secret's data", generated("hunter2hunter2"), generated("correcthorse99"), nil},
		{"a multi-line value, substituted", multiline("    line one\n    line two\n"), multiline("    other one\n    other two\n"), substitute},
		{"a number, substituted", number("0123"), number("0456"), substitute},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if a, b := digest(t, tc.a, tc.vars), digest(t, tc.b, tc.vars); a != b {
				t.Errorf("digests differ (%s, %s): a guess of the value could be tested against them", a, b)
			}
		})
	}
}
