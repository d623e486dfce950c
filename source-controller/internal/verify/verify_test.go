package verify_test

import (
	"context"
	"encoding/pem"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/plumb-dev/plumb/shared/cosign"
	"github.com/plumb-dev/plumb/shared/testing/ocitest"
	"github.com/plumb-dev/plumb/shared/testing/signtest"
	"github.com/plumb-dev/plumb/source-controller/internal/oci"
	"github.com/plumb-dev/plumb/source-controller/internal/verify"
)

func isNotFound(err error) bool { return errors.Is(err, oci.ErrNotFound) }

func push(t *testing.T, reg *ocitest.Registry, repo, tag, content string) string {
	t.Helper()
	d, err := ocitest.Push(reg.Host, repo, tag, []ocitest.Layer{{MediaType: ocitest.ContentType, Data: ocitest.Tarball(map[string]string{"cm.yaml": content})}})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func remoteOf(t *testing.T, reg *ocitest.Registry, repo string) *oci.Remote {
	t.Helper()
	r, err := oci.NewRemote("oci://"+reg.Host+"/"+repo, oci.Credentials{Insecure: true})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func must[T any](t *testing.T) func(T, error) T {
	return func(v T, err error) T {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}

func TestCosignKeyed(t *testing.T) {
	reg := ocitest.NewRegistry(nil)
	defer reg.Close()
	repo := reg.Host + "/org/app"
	good := must[*cosign.Key](t)(cosign.NewKey())
	other := must[*cosign.Key](t)(cosign.NewKey())

	signed := push(t, reg, "org/app", "v1", "a: 1\n")
	if err := cosign.Sign(repo, signed, []cosign.Signature{{Key: other.Private}, {Key: good.Private}}); err != nil {
		t.Fatal(err)
	}
	byOther := push(t, reg, "org/app", "v2", "a: 2\n")
	if err := cosign.Sign(repo, byOther, []cosign.Signature{{Key: other.Private}}); err != nil {
		t.Fatal(err)
	}
	unsigned := push(t, reg, "org/app", "v3", "a: 3\n")
	// The signature of the signed digest copied onto another digest's tag: a replay.
	replayed := push(t, reg, "org/app", "v4", "a: 4\n")
	if err := cosign.Sign(repo, replayed, []cosign.Signature{{Key: good.Private, SignedDigest: signed}}); err != nil {
		t.Fatal(err)
	}

	s := verify.Settings{Provider: "cosign", Keys: map[string][]byte{"cosign.pub": good.PublicPEM(), "old.pub": must[*cosign.Key](t)(cosign.NewKey()).PublicPEM()}, KeysFrom: "Secret ns/keys"}
	r := remoteOf(t, reg, "org/app")
	ctx := context.Background()
	res, err := verify.Verify(ctx, r, signed, s, isNotFound)
	if err != nil {
		t.Fatalf("signed digest: %v", err)
	}
	if !strings.HasPrefix(res.Signer, "cosign key cosign.pub (SHA256:") {
		t.Errorf("signer %q", res.Signer)
	}

	cases := []struct {
		name, digest, msg string
	}{
		{"another key", byOther, "no signature of " + byOther + " verifies with the public keys of Secret ns/keys (cosign.pub, old.pub): signed by another key"},
		{"unsigned", unsigned, "no cosign signature of " + unsigned + " (the repository has no tag sha256-"},
		{"signature of another digest", replayed, "is for another digest, " + signed},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := verify.Verify(ctx, r, c.digest, s, isNotFound)
			if !errors.Is(err, verify.ErrVerification) || !strings.Contains(err.Error(), c.msg) {
				t.Fatalf("got %v, want ErrVerification with %q", err, c.msg)
			}
		})
	}

	t.Run("not a key", func(t *testing.T) {
		bad := verify.Settings{Provider: "cosign", Keys: map[string][]byte{"cosign.pub": []byte("not pem")}, KeysFrom: "Secret ns/keys"}
		_, err := verify.Verify(ctx, r, signed, bad, isNotFound)
		if !errors.Is(err, verify.ErrMaterial) || !strings.Contains(err.Error(), "cosign.pub of Secret ns/keys is not a PEM public key") {
			t.Fatalf("got %v", err)
		}
	})
}

func TestCosignKeyless(t *testing.T) {
	reg := ocitest.NewRegistry(nil)
	defer reg.Close()
	repo := reg.Host + "/org/app"
	ca := must[*signtest.CA](t)(signtest.NewCA())
	trusted := must[[]byte](t)(ca.TrustedRoot())
	const issuer = "https://token.actions.example.test"
	const subject = "https://git.example.test/org/app/.github/workflows/release.yml@refs/heads/main"
	now := time.Now()

	leaf, key, err := ca.Leaf(issuer, subject, now.Add(-time.Minute), now.Add(10*time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	good := push(t, reg, "org/app", "v1", "a: 1\n")
	if err := cosign.Sign(repo, good, []cosign.Signature{{Key: key, Certificate: leaf}}); err != nil {
		t.Fatal(err)
	}
	expiredLeaf, expiredKey, err := ca.Leaf(issuer, subject, now.Add(-time.Hour), now.Add(-50*time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	expired := push(t, reg, "org/app", "v2", "a: 2\n")
	if err := cosign.Sign(repo, expired, []cosign.Signature{{Key: expiredKey, Certificate: expiredLeaf}}); err != nil {
		t.Fatal(err)
	}
	otherCA := must[*signtest.CA](t)(signtest.NewCA())
	strangerLeaf, strangerKey, err := otherCA.Leaf(issuer, subject, now.Add(-time.Minute), now.Add(10*time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	stranger := push(t, reg, "org/app", "v3", "a: 3\n")
	if err := cosign.Sign(repo, stranger, []cosign.Signature{{Key: strangerKey, Certificate: strangerLeaf}}); err != nil {
		t.Fatal(err)
	}
	replayed := push(t, reg, "org/app", "v4", "a: 4\n")
	if err := cosign.Sign(repo, replayed, []cosign.Signature{{Key: key, Certificate: leaf, SignedDigest: good}}); err != nil {
		t.Fatal(err)
	}
	keyed := push(t, reg, "org/app", "v5", "a: 5\n")
	if err := cosign.Sign(repo, keyed, []cosign.Signature{{Key: must[*cosign.Key](t)(cosign.NewKey()).Private}}); err != nil {
		t.Fatal(err)
	}

	s := verify.Settings{Provider: "cosign", TrustedRoot: trusted, Identities: []verify.Identity{
		{Issuer: "^https://nowhere$", Subject: ".*"},
		{Issuer: `^https://token\.actions\.example\.test$`, Subject: `^https://git\.example\.test/org/app/`},
	}}
	r := remoteOf(t, reg, "org/app")
	ctx := context.Background()
	res, err := verify.Verify(ctx, r, good, s, isNotFound)
	if err != nil {
		t.Fatalf("good: %v", err)
	}
	if want := "certificate of issuer " + issuer + ", subject " + subject; res.Signer != want {
		t.Errorf("signer %q, want %q", res.Signer, want)
	}

	wrongID := s
	wrongID.Identities = []verify.Identity{{Issuer: issuer, Subject: "^https://git\\.example\\.test/org/other/"}}
	cases := []struct {
		name   string
		s      verify.Settings
		digest string
		msg    string
	}{
		{"wrong identity", wrongID, good, `its certificate identity (issuer "` + issuer + `", subject "` + subject + `") matches no matchOIDCIdentity entry`},
		{"expired certificate", s, expired, "its certificate expired at " + expiredLeaf.NotAfter.UTC().Format(time.RFC3339)},
		{"another CA", s, stranger, "failed to verify leaf certificate"},
		{"signature of another digest", s, replayed, "the signature is for another digest, " + good},
		{"signed with a key", s, keyed, "a signature has no certificate"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := verify.Verify(ctx, r, c.digest, c.s, isNotFound)
			if !errors.Is(err, verify.ErrVerification) || !strings.Contains(err.Error(), c.msg) {
				t.Fatalf("got %v, want ErrVerification with %q", err, c.msg)
			}
		})
	}

	t.Run("bad regexp", func(t *testing.T) {
		bad := s
		bad.Identities = []verify.Identity{{Issuer: "(", Subject: ".*"}}
		_, err := verify.Verify(ctx, r, good, bad, isNotFound)
		if !errors.Is(err, verify.ErrInvalid) || !strings.Contains(err.Error(), `matchOIDCIdentity[0].issuer "("`) {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("no identity", func(t *testing.T) {
		_, err := verify.Verify(ctx, r, good, verify.Settings{Provider: "cosign", TrustedRoot: trusted}, isNotFound)
		if !errors.Is(err, verify.ErrInvalid) {
			t.Fatalf("got %v", err)
		}
	})
}

func TestCache(t *testing.T) {
	c := verify.NewCache(2)
	c.Put("r", "d1", "s", verify.Result{Signer: "a"})
	if r, ok := c.Get("r", "d1", "s"); !ok || r.Signer != "a" {
		t.Fatal("not remembered")
	}
	if _, ok := c.Get("r", "d1", "other settings"); ok {
		t.Fatal("other settings must verify again")
	}
	c.Put("r", "d2", "s", verify.Result{})
	c.Put("r", "d3", "s", verify.Result{})
	if _, ok := c.Get("r", "d1", "s"); ok {
		t.Fatal("the cache grows past its bound")
	}
}

func TestNotation(t *testing.T) {
	reg := ocitest.NewRegistry(nil)
	defer reg.Close()
	repo := reg.Host + "/org/app"
	ca := must[*signtest.CA](t)(signtest.NewCA())
	now := time.Now()
	cert, key, err := ca.CodeSigning("release signer", now.Add(-time.Minute), now.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	signed := push(t, reg, "org/app", "v1", "a: 1\n")
	if err := ca.NotationSign(repo, signed, cert, key); err != nil {
		t.Fatal(err)
	}
	unsigned := push(t, reg, "org/app", "v2", "a: 2\n")
	otherCA := must[*signtest.CA](t)(signtest.NewCA())
	strangerCert, strangerKey, err := otherCA.CodeSigning("stranger", now.Add(-time.Minute), now.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	byStranger := push(t, reg, "org/app", "v3", "a: 3\n")
	if err := otherCA.NotationSign(repo, byStranger, strangerCert, strangerKey); err != nil {
		t.Fatal(err)
	}
	// A signature of v1's digest pushed as v4's: its envelope names another digest.
	replayed := push(t, reg, "org/app", "v4", "a: 4\n")
	if err := ca.NotationSignAs(repo, replayed, signed, cert, key); err != nil {
		t.Fatal(err)
	}

	s := verify.Settings{Provider: "notation", KeysFrom: "Secret ns/notation", TrustPolicy: []byte(signtest.NotationTrustPolicy),
		Certificates: map[string][]byte{"ca.crt": pemCert(ca)}}
	r := remoteOf(t, reg, "org/app")
	ctx := context.Background()
	res, err := verify.Verify(ctx, r, signed, s, isNotFound)
	if err != nil {
		t.Fatalf("signed: %v", err)
	}
	if !strings.Contains(res.Signer, `notation certificate "CN=release signer`) {
		t.Errorf("signer %q", res.Signer)
	}
	cases := []struct{ name, digest, msg string }{
		{"unsigned", unsigned, "no notation signature of " + unsigned},
		{"another CA", byStranger, "no notation signature of " + byStranger + " verifies with the trust policy of Secret ns/notation: signature verification failed; failed to verify signature with digest sha256:"},
		{"another CA names no trusted certificate", byStranger, "the signature's certificate chain does not contain any trusted certificate"},
		{"signature of another digest", replayed, "content descriptor mismatch"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := verify.Verify(ctx, r, c.digest, s, isNotFound)
			if !errors.Is(err, verify.ErrVerification) || !strings.Contains(err.Error(), c.msg) {
				t.Fatalf("got %v, want ErrVerification with %q", err, c.msg)
			}
		})
	}
	t.Run("bad trust policy", func(t *testing.T) {
		bad := s
		bad.TrustPolicy = []byte(`{"version":"1.0","trustPolicies":[]}`)
		_, err := verify.Verify(ctx, r, signed, bad, isNotFound)
		if !errors.Is(err, verify.ErrMaterial) || !strings.Contains(err.Error(), "trustpolicy.json of Secret ns/notation") {
			t.Fatalf("got %v", err)
		}
	})
}

func pemCert(ca *signtest.CA) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.Cert.Raw})
}
