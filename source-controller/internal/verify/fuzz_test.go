package verify

import (
	"testing"
)

// FuzzParseCosignSignature feeds the parser of a .sig layer (its annotations and payload, which
// come from the registry) with arbitrary input: it never panics, and what it accepts names a
// digest and has a signature.
func FuzzParseCosignSignature(f *testing.F) {
	f.Add("MEUCIQ==", "", "", []byte(`{"critical":{"identity":{"docker-reference":"r"},"image":{"docker-manifest-digest":"sha256:0000000000000000000000000000000000000000000000000000000000000000"},"type":"cosign container image signature"},"optional":null}`))
	f.Add("", "-----BEGIN CERTIFICATE-----\nAA==\n-----END CERTIFICATE-----\n", `{"SignedEntryTimestamp":"AA==","Payload":{"body":"e30=","integratedTime":1,"logIndex":2,"logID":"00"}}`, []byte(`{}`))
	f.Fuzz(func(t *testing.T, sig, cert, bundle string, payload []byte) {
		ann := map[string]string{}
		if sig != "" {
			ann[cosignSignatureAnnotation] = sig
		}
		if cert != "" {
			ann[cosignCertificateAnnotation] = cert
		}
		if bundle != "" {
			ann[cosignBundleAnnotation] = bundle
		}
		s, err := parseCosignSignature(ann, payload)
		if err != nil {
			return
		}
		if s.digest == "" || len(s.sig) == 0 {
			t.Fatalf("accepted a signature without digest or signature: %+v", s)
		}
		if s.rekor != nil {
			_, _ = s.rekor.tlogEntry()
		}
	})
}
