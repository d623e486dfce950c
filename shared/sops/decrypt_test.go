package sops_test

import (
	"bytes"
	"errors"
	"regexp"
	"strings"
	"testing"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
	"github.com/plumb-dev/plumb/shared/sops"
	"github.com/plumb-dev/plumb/shared/sops/sopstest"
)

const secretYAML = `apiVersion: v1
kind: Secret
metadata:
  name: db
  namespace: apps
stringData:
  password: hunter2-very-secret
`

func decryptor(t *testing.T, ids ...string) *sops.Decryptor {
	t.Helper()
	d, err := sops.New(map[string][]byte{"identity.agekey": []byte("# comment\n" + strings.Join(ids, "\n") + "\n"), "other": []byte("x")})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func contains(vs []string, v string) bool {
	for _, x := range vs {
		if x == v {
			return true
		}
	}
	return false
}

func TestDecryptFormats(t *testing.T) {
	other, _ := sopstest.Identity(t)
	id, rcpt := sopstest.Identity(t)
	d := decryptor(t, other, id)
	for _, c := range []struct {
		name, format, plain, want, value string
	}{
		{"secret.yaml", "yaml", secretYAML, "password: hunter2-very-secret", "hunter2-very-secret"},
		{"secret.json", "json", `{"apiVersion":"v1","kind":"Secret","metadata":{"name":"db"},"stringData":{"token":"tok-123456"}}`, `"token": "tok-123456"`, "tok-123456"},
		{"app.env", "dotenv", "USER=admin\nPASSWORD=s3cr3t-dotenv\n", "PASSWORD=s3cr3t-dotenv", "s3cr3t-dotenv"},
		{"app.ini", "ini", "[db]\npassword = s3cr3t-ini\n", "s3cr3t-ini", "s3cr3t-ini"},
		{"tls.key", "binary", "-----BEGIN KEY-----\nAAAA-binary-secret\n-----END KEY-----\n", "-----BEGIN KEY-----\nAAAA-binary-secret\n-----END KEY-----\n", "-----BEGIN KEY-----\nAAAA-binary-secret\n-----END KEY-----\n"},
	} {
		t.Run(c.format, func(t *testing.T) {
			enc := sopstest.Encrypt(t, c.format, []byte(c.plain), sopstest.Options{}, []string{rcpt})
			if bytes.Contains(enc, []byte(c.value)) {
				t.Fatalf("the encrypted file holds the plaintext:\n%s", enc)
			}
			if f := sops.Detect(c.name, enc); f == sops.NotEncrypted {
				t.Fatalf("Detect(%s) = %v", c.name, f)
			}
			out, values, err := d.Decrypt(c.name, enc)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(string(out), c.want) {
				t.Errorf("plaintext of %s:\n%s\nwant it to contain %q", c.name, out, c.want)
			}
			if !contains(values, c.value) {
				t.Errorf("values to mask %q lack %q", values, c.value)
			}
			if bytes.Contains(out, []byte("sops")) && c.format != "binary" {
				t.Errorf("the plaintext still holds SOPS metadata:\n%s", out)
			}
		})
	}
}

func TestPlainFilesPassThrough(t *testing.T) {
	d := decryptor(t, must(sopstest.Identity(t)))
	for name, data := range map[string]string{
		"a.yaml": secretYAML, "b.json": `{"a":1}`, "c.env": "A=1\n", "d.txt": "just text, sops mentioned", "e.yaml": "x:\n  sops: 1\n",
	} {
		out, values, err := d.Decrypt(name, []byte(data))
		if err != nil || string(out) != data || len(values) != 0 {
			t.Errorf("%s: got %q %q %v, want it unchanged", name, out, values, err)
		}
	}
}

func must(s, _ string) string { return s }

func TestWrongKey(t *testing.T) {
	_, rcpt := sopstest.Identity(t)
	enc := sopstest.Encrypt(t, "yaml", []byte(secretYAML), sopstest.Options{}, []string{rcpt})
	wrong, _ := sopstest.Identity(t)
	_, _, err := decryptor(t, wrong).Decrypt("apps/secret.yaml", enc)
	if !errors.Is(err, sops.ErrNoKey) {
		t.Fatalf("err = %v, want ErrNoKey", err)
	}
	msg := err.Error()
	for _, want := range []string{"apps/secret.yaml", rcpt, "group 1"} {
		if !strings.Contains(msg, want) {
			t.Errorf("message %q lacks %q", msg, want)
		}
	}
	if strings.Contains(msg, wrong) || strings.Contains(msg, "AGE-SECRET-KEY") {
		t.Errorf("message holds key material: %q", msg)
	}
}

func TestTamperedMAC(t *testing.T) {
	id, rcpt := sopstest.Identity(t)
	enc := sopstest.Encrypt(t, "yaml", []byte("a: one\nb: two\n"), sopstest.Options{}, []string{rcpt})
	// Swap the two encrypted values: each still decrypts, but the MAC over the values no
	// longer matches. (SOPS binds each value to its path, so swapping fails before the MAC;
	// instead, drop one key altogether.)
	lines := strings.Split(string(enc), "\n")
	var kept []string
	for _, l := range lines {
		if !strings.HasPrefix(l, "b: ") {
			kept = append(kept, l)
		}
	}
	_, _, err := decryptor(t, id).Decrypt("x.yaml", []byte(strings.Join(kept, "\n")))
	if err == nil || !strings.Contains(err.Error(), "integrity check failed") || !strings.Contains(err.Error(), "x.yaml") {
		t.Fatalf("err = %v, want an integrity failure naming x.yaml", err)
	}
}

func TestNoMatchingKeyGroup(t *testing.T) {
	id, _ := sopstest.Identity(t)
	_, r1 := sopstest.Identity(t)
	_, r2 := sopstest.Identity(t)
	enc := sopstest.Encrypt(t, "json", []byte(`{"k":"value-1234"}`), sopstest.Options{}, []string{r1}, []string{r2})
	_, _, err := decryptor(t, id).Decrypt("k.json", enc)
	if !errors.Is(err, sops.ErrNoKey) || !strings.Contains(err.Error(), "group 2 [age "+r2+"]") {
		t.Fatalf("err = %v, want ErrNoKey naming both groups", err)
	}
}

func TestShamirGroups(t *testing.T) {
	id1, r1 := sopstest.Identity(t)
	id2, r2 := sopstest.Identity(t)
	enc := sopstest.Encrypt(t, "yaml", []byte("k: value-1234\n"), sopstest.Options{}, []string{r1}, []string{r2})
	if _, _, err := decryptor(t, id1).Decrypt("k.yaml", enc); !errors.Is(err, sops.ErrNoKey) {
		t.Fatalf("one part of two: err = %v, want ErrNoKey", err)
	}
	out, _, err := decryptor(t, id1, id2).Decrypt("k.yaml", enc)
	if err != nil || !strings.Contains(string(out), "value-1234") {
		t.Fatalf("both parts: %q %v", out, err)
	}
}

func TestPartiallyEncrypted(t *testing.T) {
	id, rcpt := sopstest.Identity(t)
	enc := sopstest.Encrypt(t, "yaml", []byte(secretYAML), sopstest.Options{EncryptedRegex: "^(data|stringData)$"}, []string{rcpt})
	if !strings.Contains(string(enc), "name: db") || strings.Contains(string(enc), "hunter2") {
		t.Fatalf("encrypted_regex: want metadata in clear and the password encrypted:\n%s", enc)
	}
	out, values, err := decryptor(t, id).Decrypt("s.yaml", enc)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(out), "password: hunter2-very-secret") || !strings.Contains(string(out), "namespace: apps") {
		t.Errorf("plaintext:\n%s", out)
	}
	if len(values) != 1 || values[0] != "hunter2-very-secret" {
		t.Errorf("values to mask = %q, want only the encrypted one", values)
	}
}

func TestNonAgeKeyGroups(t *testing.T) {
	_, rcpt := sopstest.Identity(t)
	enc := string(sopstest.Encrypt(t, "yaml", []byte("k: value-1234\n"), sopstest.Options{}, []string{rcpt}))
	// Turn the age key into a KMS key, as a file encrypted for AWS KMS only would read.
	kms := regexp.MustCompile(`(?s)    age:\n.*?\n    lastmodified`).ReplaceAllString(enc,
		"    kms:\n        - arn: arn:aws:kms:us-east-1:000000000000:key/test\n          created_at: \"2026-01-01T00:00:00Z\"\n          enc: AQICAHg=\n          aws_profile: \"\"\n    lastmodified")
	if kms == enc {
		t.Fatalf("the test could not rewrite the key group:\n%s", enc)
	}
	id, _ := sopstest.Identity(t)
	_, _, err := decryptor(t, id).Decrypt("k.yaml", []byte(kms))
	if !errors.Is(err, sops.ErrNoKey) || !strings.Contains(err.Error(), "arn:aws:kms:us-east-1:000000000000:key/test") || !strings.Contains(err.Error(), "add the entry sops.aws-kms") {
		t.Fatalf("err = %v, want ErrNoKey naming the KMS key and the entry to add", err)
	}
}

func TestNewRefusesBadKeys(t *testing.T) {
	if _, err := sops.New(map[string][]byte{"a.agekey": []byte("AGE-SECRET-KEY-1NOTAKEY")}); err == nil || strings.Contains(err.Error(), "NOTAKEY") {
		t.Errorf("err = %v, want an error without the key", err)
	}
	if _, err := sops.New(map[string][]byte{"token": []byte("x")}); err == nil {
		t.Error("a Secret without keys: want an error")
	}
}

func TestPGPInMemory(t *testing.T) {
	asc, fp, e := sopstest.PGPKey(t)
	other, _, _ := sopstest.PGPKey(t)
	enc := sopstest.Encrypt(t, "yaml", []byte(secretYAML), sopstest.Options{PGP: []*openpgp.Entity{e}}, []string{fp})
	if !strings.Contains(string(enc), "fp: "+fp) || !strings.Contains(string(enc), "-----BEGIN PGP MESSAGE-----") {
		t.Fatalf("want a pgp key entry with the fingerprint and the sealed data key:\n%s", enc)
	}
	d, err := sops.New(map[string][]byte{"other.asc": other, "sops.asc": asc})
	if err != nil {
		t.Fatal(err)
	}
	out, values, err := d.Decrypt("secret.yaml", enc)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(out), "password: hunter2-very-secret") || !contains(values, "hunter2-very-secret") {
		t.Errorf("plaintext:\n%s\nvalues %q", out, values)
	}
}

func TestWrongPGPKey(t *testing.T) {
	_, fp, e := sopstest.PGPKey(t)
	wrong, wrongFP, _ := sopstest.PGPKey(t)
	enc := sopstest.Encrypt(t, "json", []byte(`{"k":"value-1234"}`), sopstest.Options{PGP: []*openpgp.Entity{e}}, []string{fp})
	d, err := sops.New(map[string][]byte{"wrong.asc": wrong})
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = d.Decrypt("k.json", enc)
	if !errors.Is(err, sops.ErrNoKey) {
		t.Fatalf("err = %v, want ErrNoKey", err)
	}
	msg := err.Error()
	for _, want := range []string{"k.json", "pgp " + fp, wrongFP} {
		if !strings.Contains(msg, want) {
			t.Errorf("message %q lacks %q", msg, want)
		}
	}
	if strings.Contains(msg, "PRIVATE KEY") {
		t.Errorf("message holds key material: %q", msg)
	}
	// The Secret holds age identities only: the message says no PGP key was given.
	id, _ := sopstest.Identity(t)
	if _, _, err := decryptor(t, id).Decrypt("k.json", enc); !errors.Is(err, sops.ErrNoKey) || !strings.Contains(err.Error(), "no PGP private key") {
		t.Errorf("err = %v, want ErrNoKey saying the Secret holds no PGP key", err)
	}
}

func TestAgeOrPGP(t *testing.T) {
	asc, fp, e := sopstest.PGPKey(t)
	id, rcpt := sopstest.Identity(t)
	// One key group with both keys: either opens the file (sops --age R --pgp FP).
	enc := sopstest.Encrypt(t, "yaml", []byte("k: value-1234\n"), sopstest.Options{PGP: []*openpgp.Entity{e}}, []string{rcpt, fp})
	byPGP, err := sops.New(map[string][]byte{"k.asc": asc})
	if err != nil {
		t.Fatal(err)
	}
	for name, d := range map[string]*sops.Decryptor{"age": decryptor(t, id), "pgp": byPGP} {
		out, _, err := d.Decrypt("k.yaml", enc)
		if err != nil || !strings.Contains(string(out), "k: value-1234") {
			t.Errorf("%s: %q %v", name, out, err)
		}
	}
	// Two groups (Shamir), one age and one PGP: both are needed, and both together open it.
	enc = sopstest.Encrypt(t, "yaml", []byte("k: value-1234\n"), sopstest.Options{PGP: []*openpgp.Entity{e}}, []string{rcpt}, []string{fp})
	if _, _, err := byPGP.Decrypt("k.yaml", enc); !errors.Is(err, sops.ErrNoKey) {
		t.Errorf("one part of two: err = %v, want ErrNoKey", err)
	}
	both, err := sops.New(map[string][]byte{"k.asc": asc, "k.agekey": []byte(id)})
	if err != nil {
		t.Fatal(err)
	}
	if out, _, err := both.Decrypt("k.yaml", enc); err != nil || !strings.Contains(string(out), "k: value-1234") {
		t.Errorf("both parts: %q %v", out, err)
	}
}

func TestNewRefusesProtectedPGPKey(t *testing.T) {
	_, fp, e := sopstest.PGPKey(t)
	if err := e.EncryptPrivateKeys([]byte("a-passphrase-xyz"), nil); err != nil {
		t.Fatal(err)
	}
	_, err := sops.New(map[string][]byte{"p.asc": sopstest.ArmorPrivate(t, e, true)})
	if err == nil || !strings.Contains(err.Error(), "passphrase") || !strings.Contains(err.Error(), fp) || !strings.Contains(err.Error(), "p.asc") {
		t.Fatalf("err = %v, want a refusal naming the entry, the key and the passphrase", err)
	}
	if strings.Contains(err.Error(), "a-passphrase-xyz") {
		t.Errorf("message holds the passphrase: %q", err)
	}
	for name, data := range map[string]string{"junk.asc": "not a key", "pub.asc": string(publicOnly(t, e))} {
		if _, err := sops.New(map[string][]byte{name: []byte(data)}); err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("%s: err = %v, want a refusal naming the entry", name, err)
		}
	}
}

func publicOnly(t *testing.T, e *openpgp.Entity) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := armor.Encode(&buf, openpgp.PublicKeyType, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Serialize(w); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}
