package cloudtest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	awssdk "github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
)

// AWS serves STS AssumeRoleWithWebIdentity (form POST, XML answer) and ECR
// GetAuthorizationToken (JSON 1.1 with X-Amz-Target) on one loopback URL, as the SDK reaches
// them with AWS_ENDPOINT_URL_STS and AWS_ENDPOINT_URL_ECR. ECR checks the request's SigV4
// signature against the secret of its access key (one given with AddKey, or one STS issued)
// and answers 403 when it does not match.
type AWS struct {
	// URL is http://127.0.0.1:port.
	URL string
	// Password is what ECR's tokens hold for user AWS (the registry's password).
	Password string

	mu        sync.Mutex
	keys      map[string]key
	lifetime  time.Duration
	fail      string
	assumes   []url.Values
	ecrCalls  int
	ecrRegion string
	rejected  []string
}

type key struct{ secret, session string }

// NewAWS starts the servers; ECR tokens are valid for 12 hours unless SetLifetime says otherwise.
func NewAWS(t testing.TB, password string) *AWS {
	a := &AWS{Password: password, keys: map[string]key{}, lifetime: 12 * time.Hour}
	srv := httptest.NewServer(http.HandlerFunc(a.serve))
	t.Cleanup(srv.Close)
	a.URL = srv.URL
	return a
}

// AddKey makes an access key known (the controller's own, from AWS_ACCESS_KEY_ID).
func (a *AWS) AddKey(id, secret string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.keys[id] = key{secret: secret}
}

// SetLifetime sets how long the next ECR tokens are valid.
func (a *AWS) SetLifetime(d time.Duration) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.lifetime = d
}

// Fail makes ECR answer AccessDeniedException with this message (empty: answer again).
func (a *AWS) Fail(message string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.fail = message
}

// ECRCalls counts the GetAuthorizationToken requests whose signature was right.
func (a *AWS) ECRCalls() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.ecrCalls
}

// ECRRegion is the region of the last signed ECR request's credential scope.
func (a *AWS) ECRRegion() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.ecrRegion
}

// Rejected lists why ECR requests were refused (a bad or missing signature).
func (a *AWS) Rejected() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]string(nil), a.rejected...)
}

// Assumes returns the forms of the AssumeRoleWithWebIdentity requests.
func (a *AWS) Assumes() []url.Values {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]url.Values(nil), a.assumes...)
}

func (a *AWS) serve(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil || r.Method != http.MethodPost {
		http.Error(w, "POST only", http.StatusBadRequest)
		return
	}
	if target := r.Header.Get("X-Amz-Target"); target != "" {
		a.ecr(w, r, body, target)
		return
	}
	a.sts(w, body)
}

func (a *AWS) sts(w http.ResponseWriter, body []byte) {
	form, err := url.ParseQuery(string(body))
	if err != nil || form.Get("Action") != "AssumeRoleWithWebIdentity" || form.Get("WebIdentityToken") == "" || form.Get("RoleArn") == "" {
		w.WriteHeader(http.StatusBadRequest)
		_, _ = fmt.Fprint(w, `<ErrorResponse><Error><Type>Sender</Type><Code>InvalidParameter</Code><Message>not an AssumeRoleWithWebIdentity request</Message></Error></ErrorResponse>`)
		return
	}
	a.mu.Lock()
	n := len(a.assumes) + 1
	a.assumes = append(a.assumes, form)
	id, secret, session := fmt.Sprintf("ASIATEST%08d", n), fmt.Sprintf("assumed-secret-%d", n), fmt.Sprintf("session-%d", n)
	a.keys[id] = key{secret: secret, session: session}
	a.mu.Unlock()
	type creds struct {
		AccessKeyID     string `xml:"AccessKeyId"`
		SecretAccessKey string
		SessionToken    string
		Expiration      string
	}
	var out struct {
		XMLName xml.Name `xml:"https://sts.amazonaws.com/doc/2011-06-15/ AssumeRoleWithWebIdentityResponse"`
		Result  struct {
			Credentials     creds
			AssumedRoleUser struct{ Arn, AssumedRoleID string }
		} `xml:"AssumeRoleWithWebIdentityResult"`
		Meta struct {
			RequestID string `xml:"RequestId"`
		} `xml:"ResponseMetadata"`
	}
	out.Result.Credentials = creds{id, secret, session, time.Now().Add(time.Hour).UTC().Format(time.RFC3339)}
	out.Result.AssumedRoleUser.Arn = form.Get("RoleArn") + "/" + form.Get("RoleSessionName")
	out.Result.AssumedRoleUser.AssumedRoleID = "AROATEST:" + form.Get("RoleSessionName")
	out.Meta.RequestID = fmt.Sprint(n)
	w.Header().Set("Content-Type", "text/xml")
	_ = xml.NewEncoder(w).Encode(out)
}

func (a *AWS) ecr(w http.ResponseWriter, r *http.Request, body []byte, target string) {
	if target != "AmazonEC2ContainerRegistry_V20150921.GetAuthorizationToken" {
		awsError(w, http.StatusBadRequest, "UnknownOperationException", target)
		return
	}
	region, err := a.verify(r, body, "ecr")
	a.mu.Lock()
	defer a.mu.Unlock()
	if err != nil {
		a.rejected = append(a.rejected, err.Error())
		awsError(w, http.StatusForbidden, "InvalidSignatureException", err.Error())
		return
	}
	if a.fail != "" {
		awsError(w, http.StatusBadRequest, "AccessDeniedException", a.fail)
		return
	}
	a.ecrCalls++
	a.ecrRegion = region
	token := base64.StdEncoding.EncodeToString([]byte("AWS:" + a.Password))
	expires := float64(time.Now().Add(a.lifetime).UnixMilli()) / 1000
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	_ = json.NewEncoder(w).Encode(map[string]any{"authorizationData": []map[string]any{{
		"authorizationToken": token, "expiresAt": expires, "proxyEndpoint": "https://" + r.Host,
	}}})
}

// verify recomputes the SigV4 signature of the request with the secret of its access key and
// returns the region of its credential scope.
func (a *AWS) verify(r *http.Request, body []byte, service string) (string, error) {
	authz := r.Header.Get("Authorization")
	rest, ok := strings.CutPrefix(authz, "AWS4-HMAC-SHA256 ")
	if !ok {
		return "", fmt.Errorf("not signed with AWS4-HMAC-SHA256: %q", authz)
	}
	fields := map[string]string{}
	for f := range strings.SplitSeq(rest, ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(f), "=")
		fields[k] = v
	}
	scope := strings.Split(fields["Credential"], "/")
	if len(scope) != 5 || scope[3] != service || scope[4] != "aws4_request" {
		return "", fmt.Errorf("credential scope %q is not for %s", fields["Credential"], service)
	}
	a.mu.Lock()
	k, known := a.keys[scope[0]]
	a.mu.Unlock()
	if !known {
		return "", fmt.Errorf("unknown access key %s", scope[0])
	}
	if k.session != r.Header.Get("X-Amz-Security-Token") {
		return "", fmt.Errorf("session token of %s missing or wrong", scope[0])
	}
	at, err := time.Parse("20060102T150405Z", r.Header.Get("X-Amz-Date"))
	if err != nil {
		return "", fmt.Errorf("X-Amz-Date: %v", err)
	}
	again, _ := http.NewRequest(r.Method, "http://"+r.Host+r.URL.RequestURI(), bytes.NewReader(body))
	again.Host = r.Host
	again.ContentLength = int64(len(body))
	for h := range strings.SplitSeq(fields["SignedHeaders"], ";") {
		if h != "host" && h != "content-length" {
			again.Header.Set(h, r.Header.Get(h))
		}
	}
	sum := sha256.Sum256(body)
	creds := awssdk.Credentials{AccessKeyID: scope[0], SecretAccessKey: k.secret, SessionToken: k.session}
	if err := v4.NewSigner().SignHTTP(context.Background(), creds, again, hex.EncodeToString(sum[:]), service, scope[2], at); err != nil {
		return "", err
	}
	if again.Header.Get("Authorization") != authz {
		return "", fmt.Errorf("signature does not match")
	}
	return scope[2], nil
}

func awsError(w http.ResponseWriter, status int, code, message string) {
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	w.Header().Set("X-Amzn-ErrorType", code)
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"__type": code, "message": message})
}
