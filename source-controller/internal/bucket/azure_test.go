package bucket

import (
	"errors"
	"net/url"
	"strings"
	"testing"
)

func TestAzureAccountURL(t *testing.T) {
	for _, tc := range []struct {
		endpoint string
		insecure bool
		url      string
		account  string
	}{
		{"https://acct.blob.core.windows.net", false, "https://acct.blob.core.windows.net", "acct"},
		{"https://acct.blob.core.windows.net/", false, "https://acct.blob.core.windows.net", "acct"},
		{"acct.blob.core.windows.net", false, "https://acct.blob.core.windows.net", "acct"},
		{"127.0.0.1:10000/devstoreaccount1", true, "http://127.0.0.1:10000/devstoreaccount1", "devstoreaccount1"},
		{"http://127.0.0.1:10000/devstoreaccount1/", false, "http://127.0.0.1:10000/devstoreaccount1", "devstoreaccount1"},
	} {
		u, err := AzureAccountURL(tc.endpoint, tc.insecure)
		if err != nil {
			t.Fatalf("%s: %v", tc.endpoint, err)
		}
		if u.String() != tc.url || AzureAccountName(u) != tc.account {
			t.Errorf("%s: got %s, account %s; want %s, %s", tc.endpoint, u, AzureAccountName(u), tc.url, tc.account)
		}
	}
	for _, bad := range []string{
		"https://acct.blob.core.windows.net/?sv=2020&sig=abc", "ftp://acct.blob.core.windows.net",
		"https://acct.blob.core.windows.net/acct/container", "https://user:pw@acct.blob.core.windows.net", "https://",
	} {
		if _, err := AzureAccountURL(bad, false); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: got %v, want ErrInvalid", bad, err)
		}
	}
}

// A transport error names the URL without its query, and the SAS and its signature are
// redacted from any other text.
func TestAzureClassifyRedactsTheSAS(t *testing.T) {
	const sas = "sv=2024-08-04&sr=c&sp=rl&sig=Zm9vYmFy%2Bc2VjcmV0%3D"
	s := &azureStore{where: "container c at https://acct.blob.core.windows.net", sas: sas}
	uerr := &url.Error{Op: "Get", URL: "https://acct.blob.core.windows.net/c?restype=container&" + sas, Err: errors.New("connection refused")}
	msg := s.Classify(uerr, "listing objects").Error()
	if want := "listing objects of container c at https://acct.blob.core.windows.net: Get https://acct.blob.core.windows.net/c: connection refused"; msg != want {
		t.Errorf("got %q, want %q", msg, want)
	}
	msg = s.Classify(errors.New("odd answer for "+sas+" and sig Zm9vYmFy+c2VjcmV0="), "listing objects").Error()
	for _, secret := range []string{sas, "Zm9vYmFy%2Bc2VjcmV0%3D", "Zm9vYmFy+c2VjcmV0="} {
		if strings.Contains(msg, secret) {
			t.Errorf("%q holds %q", msg, secret)
		}
	}
}
