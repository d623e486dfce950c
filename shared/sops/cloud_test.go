package sops_test

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/credentials"

	"github.com/plumb-dev/plumb/shared/sops"
	"github.com/plumb-dev/plumb/shared/sops/sopstest"
)

// vaultServer is a loopback HashiCorp Vault transit engine mounted at transit/: POST
// /v1/transit/encrypt/<key> and /v1/transit/decrypt/<key>, authenticated by X-Vault-Token.
type vaultServer struct {
	*httptest.Server
	token string
	box   sopstest.SealBox
	mu    sync.Mutex
	seen  []string // tokens of decrypt requests
}

func newVault(t *testing.T, token string) *vaultServer {
	v := &vaultServer{token: token, box: sopstest.NewSealBox(t)}
	v.Server = httptest.NewServer(http.HandlerFunc(v.serve))
	t.Cleanup(v.Close)
	return v
}

func (v *vaultServer) serve(w http.ResponseWriter, r *http.Request) {
	var body map[string]string
	if r.Method != http.MethodPost && r.Method != http.MethodPut || json.NewDecoder(r.Body).Decode(&body) != nil {
		http.Error(w, `{"errors":["bad request"]}`, http.StatusBadRequest)
		return
	}
	if strings.HasPrefix(r.URL.Path, "/v1/transit/decrypt/") {
		v.mu.Lock()
		v.seen = append(v.seen, r.Header.Get("X-Vault-Token"))
		v.mu.Unlock()
	}
	if r.Header.Get("X-Vault-Token") != v.token {
		w.WriteHeader(http.StatusForbidden)
		_, _ = w.Write([]byte(`{"errors":["permission denied"]}`))
		return
	}
	var data map[string]string
	switch {
	case r.URL.Path == "/v1/transit/encrypt/sops":
		plain, err := base64.StdEncoding.DecodeString(body["plaintext"])
		if err != nil {
			http.Error(w, `{"errors":["plaintext is not base64"]}`, http.StatusBadRequest)
			return
		}
		data = map[string]string{"ciphertext": "vault:v1:" + base64.StdEncoding.EncodeToString(v.box.Seal(plain))}
	case r.URL.Path == "/v1/transit/decrypt/sops":
		c, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(body["ciphertext"], "vault:v1:"))
		plain, err2 := v.box.Open(c)
		if err != nil || err2 != nil {
			http.Error(w, `{"errors":["invalid ciphertext: unable to decrypt"]}`, http.StatusBadRequest)
			return
		}
		data = map[string]string{"plaintext": base64.StdEncoding.EncodeToString(plain)}
	default:
		http.Error(w, `{"errors":["no handler for route"]}`, http.StatusNotFound)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"data": data})
}

func (v *vaultServer) tokens() []string {
	v.mu.Lock()
	defer v.mu.Unlock()
	return append([]string(nil), v.seen...)
}

func TestVaultTransit(t *testing.T) {
	const token = "hvs.test-token-0123456789"
	v := newVault(t, token)
	uri := v.URL + "/v1/transit/keys/sops"
	enc := sopstest.Encrypt(t, "yaml", []byte(secretYAML), sopstest.Options{VaultToken: token}, []string{uri})
	if !strings.Contains(string(enc), "vault_address: "+v.URL) || strings.Contains(string(enc), "hunter2") {
		t.Fatalf("want an hc_vault key recording the address, and no plaintext:\n%s", enc)
	}
	d, err := sops.New(map[string][]byte{sops.VaultTokenEntry: []byte(token + "\n")})
	if err != nil {
		t.Fatal(err)
	}
	out, values, err := d.Decrypt("apps/secret.yaml", enc)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(out), "password: hunter2-very-secret") || !contains(values, "hunter2-very-secret") {
		t.Errorf("plaintext:\n%s\nvalues %q", out, values)
	}
	if got := v.tokens(); len(got) != 1 || got[0] != token {
		t.Errorf("tokens sent to Vault = %q, want the Secret's, once", got)
	}

	// A wrong token: Vault refuses, the message names the file and the key, not the token.
	wrong, err := sops.New(map[string][]byte{sops.VaultTokenEntry: []byte("hvs.wrong-token-secret")})
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = wrong.Decrypt("apps/secret.yaml", enc)
	if !errors.Is(err, sops.ErrNoKey) || !strings.Contains(err.Error(), "apps/secret.yaml") || !strings.Contains(err.Error(), "hc_vault "+uri) || !strings.Contains(err.Error(), "permission denied") {
		t.Errorf("err = %v, want ErrNoKey naming the file, the Vault key and Vault's answer", err)
	}
	if strings.Contains(err.Error(), "wrong-token-secret") {
		t.Errorf("the message holds the token: %v", err)
	}

	// No token: nothing is sent (the Vault client would read ~/.vault-token), the message
	// names the entry to add, even with the workload identity allowed.
	id, _ := sopstest.Identity(t)
	noToken, err := sops.New(map[string][]byte{"k.agekey": []byte(id)}, sops.WithWorkloadIdentity(true))
	if err != nil {
		t.Fatal(err)
	}
	before := len(v.tokens())
	_, _, err = noToken.Decrypt("apps/secret.yaml", enc)
	if !errors.Is(err, sops.ErrNoKey) || !strings.Contains(err.Error(), "add the entry sops.vault-token") {
		t.Errorf("err = %v, want a message naming sops.vault-token", err)
	}
	if len(v.tokens()) != before {
		t.Error("a request reached Vault without a token")
	}
}

const arn = sopstest.KMSKeyARN

// TestAWSKMS decrypts a file sealed for an AWS KMS key with the access key of the Secret, through
// the SDK's own endpoint override, and checks that the request was signed with it.
func TestAWSKMS(t *testing.T) {
	k := sopstest.NewKMS(t)
	t.Setenv("AWS_ENDPOINT_URL_KMS", k.URL)
	// The environment's credentials are never used: the Secret's are.
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIDFROMENV")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "env-secret")
	const secret = "wJalrXUtnFEMI-plumb-test-secret"
	enc := sopstest.Encrypt(t, "json", []byte(`{"token":"tok-123456"}`), sopstest.Options{AWS: credentials.NewStaticCredentialsProvider("AKIDPLUMBTEST", secret, "")}, []string{arn})
	if !strings.Contains(string(enc), `"arn": "`+arn+`"`) {
		t.Fatalf("want a kms key entry:\n%s", enc)
	}
	entry := "aws_access_key_id: AKIDPLUMBTEST\naws_secret_access_key: " + secret + "\naws_session_token: session-token-xyz\n"
	d, err := sops.New(map[string][]byte{sops.AWSKMSEntry: []byte(entry)})
	if err != nil {
		t.Fatal(err)
	}
	out, _, err := d.Decrypt("token.json", enc)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(out), `"token": "tok-123456"`) {
		t.Errorf("plaintext: %s", out)
	}
	h := k.Headers()
	if len(h) != 1 || !strings.Contains(h[0], "Credential=AKIDPLUMBTEST/") || strings.Contains(h[0], secret) {
		t.Errorf("Authorization headers = %q, want one SigV4 signature by AKIDPLUMBTEST", h)
	}

	// Another access key: KMS refuses; the message names the file, the key and the refusal, and
	// holds neither the secret key nor the session token.
	bad := "aws_access_key_id: AKIDOTHER\naws_secret_access_key: other-secret-key-123\naws_session_token: other-session-456\n"
	d, err = sops.New(map[string][]byte{sops.AWSKMSEntry: []byte(bad)})
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = d.Decrypt("token.json", enc)
	if !errors.Is(err, sops.ErrNoKey) || !strings.Contains(err.Error(), "token.json") || !strings.Contains(err.Error(), "kms "+arn) || !strings.Contains(err.Error(), "AccessDenied") {
		t.Errorf("err = %v, want ErrNoKey naming the file, the key and AccessDenied", err)
	}
	for _, s := range []string{"other-secret-key-123", "other-session-456"} {
		if strings.Contains(err.Error(), s) {
			t.Errorf("the message holds a credential: %v", err)
		}
	}

	// No credentials in the Secret and no workload identity: nothing is sent, the message
	// names the entry to add and the flag.
	id, _ := sopstest.Identity(t)
	d, err = sops.New(map[string][]byte{"k.agekey": []byte(id)})
	if err != nil {
		t.Fatal(err)
	}
	before := len(k.Headers())
	_, _, err = d.Decrypt("token.json", enc)
	if !errors.Is(err, sops.ErrNoKey) || !strings.Contains(err.Error(), "add the entry sops.aws-kms") || !strings.Contains(err.Error(), "--sops-kms-workload-identity") {
		t.Errorf("err = %v, want a message naming sops.aws-kms and the flag", err)
	}
	if len(k.Headers()) != before {
		t.Error("a request reached KMS without credentials from the Secret")
	}

	// With the workload identity, the SDK's default chain is used: here, the environment's.
	d, err = sops.New(nil, sops.WithWorkloadIdentity(true))
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err = d.Decrypt("token.json", enc); !errors.Is(err, sops.ErrNoKey) {
		t.Errorf("err = %v, want the environment's key refused", err)
	}
	if h := k.Headers(); len(h) != before+1 || !strings.Contains(h[len(h)-1], "Credential=AKIDFROMENV/") {
		t.Errorf("Authorization headers = %q, want the last signed by the default chain's AKIDFROMENV", h)
	}
}

func TestCloudEntriesRefused(t *testing.T) {
	for _, c := range []struct {
		name, entry, data string
		want              []string
		secret            string
	}{
		{"aws not yaml", sops.AWSKMSEntry, "aws_secret_access_key: [s3cret-aws", []string{"sops.aws-kms", "not YAML"}, "s3cret-aws"},
		{"aws unknown field", sops.AWSKMSEntry, "aws_access_key: AKID\naws_secret_access_key: s3cret-aws\n", []string{"sops.aws-kms", "unknown field"}, "s3cret-aws"},
		{"aws no secret", sops.AWSKMSEntry, "aws_access_key_id: AKID\n", []string{"sops.aws-kms", "aws_secret_access_key"}, ""},
		{"azure no tenant", sops.AzureKVEntry, "clientId: c\nclientSecret: s3cret-az\n", []string{"sops.azure-kv", "tenantId"}, "s3cret-az"},
		{"azure client id only", sops.AzureKVEntry, "tenantId: t\nclientId: c\n", []string{"sops.azure-kv", "--sops-kms-workload-identity"}, ""},
		{"azure bad certificate", sops.AzureKVEntry, "tenantId: t\nclientId: c\nclientCertificate: not-a-cert-s3cret\n", []string{"sops.azure-kv", "clientCertificate"}, "not-a-cert-s3cret"},
		{"gcp not json", sops.GCPKMSEntry, "private_key: s3cret-gcp", []string{"sops.gcp-kms", "JSON"}, "s3cret-gcp"},
		{"gcp external account", sops.GCPKMSEntry, `{"type":"external_account","credential_source":{"file":"/var/run/secrets/token"}}`, []string{"sops.gcp-kms", "external_account", "service_account"}, "/var/run"},
		{"gcp bad key", sops.GCPKMSEntry, `{"type":"service_account","client_email":"a@p.iam.gserviceaccount.com","private_key":"s3cret-gcp-key"}`, []string{"sops.gcp-kms", "a@p.iam.gserviceaccount.com"}, "s3cret-gcp-key"},
		{"vault empty", sops.VaultTokenEntry, " \n", []string{"sops.vault-token", "empty"}, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := sops.New(map[string][]byte{c.entry: []byte(c.data)})
			if err == nil {
				t.Fatal("want an error")
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("err = %v, want it to say %q", err, w)
				}
			}
			if c.secret != "" && strings.Contains(err.Error(), c.secret) {
				t.Errorf("the message holds the credential: %v", err)
			}
		})
	}
}

func TestCloudEntriesAccepted(t *testing.T) {
	for name, data := range map[string]string{
		"flux secret":  "tenantId: t-1\nclientId: c-1\nclientSecret: s-1\n",
		"az cli":       `{"appId":"c-1","tenant":"t-1","password":"s-1","displayName":"sp"}`,
		"aks json":     `{"cloud":"AzurePublicCloud","tenantId":"t-1","aadClientId":"c-1","aadClientSecret":"s-1"}`,
		"other cloud":  "tenantId: t-1\nclientId: c-1\nclientSecret: s-1\nauthorityHost: https://login.chinacloudapi.cn/\n",
		"vault and az": "tenantId: t-1\nclientId: c-1\nclientSecret: s-1\n",
	} {
		if _, err := sops.New(map[string][]byte{sops.AzureKVEntry: []byte(data), sops.VaultTokenEntry: []byte("hvs.x")}); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}
