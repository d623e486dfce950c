package verify_test

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/sigstore/sigstore-go/pkg/root"
	"github.com/sigstore/sigstore-go/pkg/testing/ca"
	"github.com/sigstore/sigstore-go/pkg/tlog"

	"github.com/plumb-dev/plumb/shared/cosign"
	"github.com/plumb-dev/plumb/shared/testing/ocitest"
	"github.com/plumb-dev/plumb/source-controller/internal/verify"
)

// rekorBundle is cosign's dev.sigstore.cosign/bundle annotation for a signed entity's Rekor
// entry.
func rekorBundle(t *testing.T, vs *ca.VirtualSigstore, e *ca.TestEntity, tamperSET bool) []byte {
	t.Helper()
	entries, err := e.TlogEntries()
	if err != nil || len(entries) != 1 {
		t.Fatalf("tlog entries: %v", err)
	}
	tle := entries[0].TransparencyLogEntry()
	// The signed entry timestamp is the log's signature of the canonical payload, as Rekor
	// makes it.
	payload := tlog.RekorPayload{Body: base64.StdEncoding.EncodeToString(tle.GetCanonicalizedBody()), IntegratedTime: tle.GetIntegratedTime(),
		LogIndex: tle.GetLogIndex(), LogID: hex.EncodeToString(tle.GetLogId().GetKeyId())}
	set, err := vs.RekorSignPayload(payload)
	if err != nil {
		t.Fatal(err)
	}
	if tamperSET {
		set[len(set)/2] ^= 1
	}
	b, err := json.Marshal(map[string]any{"SignedEntryTimestamp": set, "Payload": payload})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Keyless signatures of a Sigstore instance with a Rekor log (sigstore-go's virtual instance,
// made in the test): the trusted root lists the log, so a signature needs its Rekor bundle,
// whose signed entry timestamp is verified and whose integrated time the certificate is checked
// at.
func TestCosignKeylessWithRekor(t *testing.T) {
	reg := ocitest.NewRegistry(nil)
	defer reg.Close()
	repo := reg.Host + "/org/app"
	vs, err := ca.NewVirtualSigstore()
	if err != nil {
		t.Fatal(err)
	}
	// The virtual instance names its log by the hex string's bytes; a trusted_root.json holds
	// the raw key ID.
	logs := map[string]*root.TransparencyLog{}
	for id, l := range vs.RekorLogs() {
		if l.ID, err = hex.DecodeString(id); err != nil {
			t.Fatal(err)
		}
		logs[id] = l
	}
	tr, err := root.NewTrustedRoot(root.TrustedRootMediaType01, vs.FulcioCertificateAuthorities(), nil, nil, logs)
	if err != nil {
		t.Fatal(err)
	}
	trusted, err := tr.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	const issuer, subject = "https://issuer.example.test", "ci@example.test"
	sign := func(digest string, withBundle, tamperSET bool) {
		t.Helper()
		payload := cosign.Payload(repo, digest)
		e, err := vs.SignAtTime(subject, issuer, payload, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		vc, _ := e.VerificationContent()
		sc, _ := e.SignatureContent()
		raw := cosign.RawSignature{Payload: payload, Signature: sc.Signature(), Certificate: vc.Certificate()}
		if withBundle {
			raw.RekorBundle = rekorBundle(t, vs, e, tamperSET)
		}
		if err := cosign.Push(repo, digest, []cosign.RawSignature{raw}); err != nil {
			t.Fatal(err)
		}
	}
	logged := push(t, reg, "org/app", "v1", "a: 1\n")
	sign(logged, true, false)
	unlogged := push(t, reg, "org/app", "v2", "a: 2\n")
	sign(unlogged, false, false)
	forged := push(t, reg, "org/app", "v3", "a: 3\n")
	sign(forged, true, true)

	s := verify.Settings{Provider: "cosign", TrustedRoot: trusted, Identities: []verify.Identity{{Issuer: "^https://issuer\\.example\\.test$", Subject: "^ci@example\\.test$"}}}
	r := remoteOf(t, reg, "org/app")
	res, err := verify.Verify(context.Background(), r, logged, s, isNotFound)
	if err != nil {
		t.Fatalf("logged: %v", err)
	}
	if want := "certificate of issuer " + issuer + ", subject " + subject; res.Signer != want {
		t.Errorf("signer %q, want %q", res.Signer, want)
	}
	_, err = verify.Verify(context.Background(), r, unlogged, s, isNotFound)
	if !errors.Is(err, verify.ErrVerification) || !strings.Contains(err.Error(), "has no transparency log entry, which the trusted root's Rekor log requires") {
		t.Fatalf("unlogged: %v", err)
	}
	_, err = verify.Verify(context.Background(), r, forged, s, isNotFound)
	if !errors.Is(err, verify.ErrVerification) || !strings.Contains(err.Error(), "not enough verified log entries") {
		t.Fatalf("forged log entry: %v", err)
	}
}
