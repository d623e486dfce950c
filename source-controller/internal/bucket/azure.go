package bucket

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/bloberror"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"

	"github.com/plumb-dev/plumb/shared/proxy"
)

// AzureOptions say how to reach an Azure Blob Storage container.
type AzureOptions struct {
	// URL is the storage account's URL, https://<account>.blob.core.windows.net, or for an
	// emulator such as Azurite http://127.0.0.1:10000/<account>. Without a scheme it is https
	// (http when Insecure is set).
	URL string
	// Insecure makes a URL without a scheme plain HTTP.
	Insecure bool
	// Container is the container's name (spec.bucketName).
	Container string
	// AccountKey is the account's shared key (base64); the account's name is read from URL.
	AccountKey string
	// SAS is a shared access signature, the query string of a SAS URL.
	SAS string
	// Token, when neither AccountKey nor SAS is set, gives Microsoft Entra ID tokens (a service
	// principal of the Secret, or the workload identity); with none the container is read
	// anonymously.
	Token azcore.TokenCredential
	// TLS, when set, is the TLS configuration (CA, client certificate).
	TLS *tls.Config
	// Proxy, when set, carries every connection.
	Proxy *proxy.Proxy
}

// azureStore is an Azure Blob Storage container.
type azureStore struct {
	c     *container.Client
	where string
	sas   string // redacted from messages
}

// NewAzure checks the options and returns a client of an Azure Blob Storage container; it
// makes no request.
func NewAzure(o AzureOptions) (*Client, error) {
	account, err := AzureAccountURL(o.URL, o.Insecure)
	if err != nil {
		return nil, err
	}
	where := fmt.Sprintf("container %s at %s", o.Container, account)
	containerURL := account.JoinPath(o.Container).String()
	opts := &container.ClientOptions{ClientOptions: azcore.ClientOptions{
		Transport: &http.Client{Transport: Transport(o.TLS, o.Proxy)},
		Retry:     policy.RetryOptions{MaxRetries: 2},
	}}
	var c *container.Client
	switch {
	case o.AccountKey != "":
		name := AzureAccountName(account)
		cred, err := container.NewSharedKeyCredential(name, o.AccountKey)
		if err != nil {
			// The error quotes nothing of the key, but says it is no base64.
			return nil, fmt.Errorf("%w: %s: accountKey is not an account key in base64", ErrAuth, where)
		}
		c, err = container.NewClientWithSharedKeyCredential(containerURL, cred, opts)
		if err != nil {
			return nil, fmt.Errorf("%w: %s: %v", ErrInvalid, where, err)
		}
	case o.SAS != "":
		c, err = container.NewClientWithNoCredential(containerURL+"?"+strings.TrimPrefix(o.SAS, "?"), opts)
	case o.Token != nil:
		c, err = container.NewClient(containerURL, o.Token, opts)
	default:
		c, err = container.NewClientWithNoCredential(containerURL, opts)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %s: cannot make a client", ErrInvalid, where)
	}
	return NewClient(&azureStore{c: c, where: where, sas: strings.TrimPrefix(o.SAS, "?")}, where, o.Proxy), nil
}

// AzureAccountURL parses a storage account's URL: an http or https URL without query, whose
// path is empty or the account's name (an emulator's path-style URL).
func AzureAccountURL(endpoint string, insecure bool) (*url.URL, error) {
	raw := endpoint
	if !strings.Contains(raw, "://") {
		if insecure {
			raw = "http://" + raw
		} else {
			raw = "https://" + raw
		}
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.User != nil ||
		strings.Contains(strings.Trim(u.Path, "/"), "/") {
		return nil, fmt.Errorf("%w: endpoint %q must be the storage account's URL, e.g. https://<account>.blob.core.windows.net (or http://127.0.0.1:10000/<account> for an emulator), without query (a SAS goes into the Secret's sasKey)", ErrInvalid, endpoint)
	}
	u.Path = strings.TrimSuffix(u.Path, "/")
	return u, nil
}

// AzureAccountName is the account of a storage account URL: the path's first segment (an
// emulator's path-style URL), or else the host's first label.
func AzureAccountName(u *url.URL) string {
	if p := strings.Trim(u.Path, "/"); p != "" {
		return p
	}
	name, _, _ := strings.Cut(u.Hostname(), ".")
	return name
}

// List pages through the blobs under the prefix.
func (s *azureStore) List(ctx context.Context, prefix string) ([]Object, error) {
	var out []Object
	pager := s.c.NewListBlobsFlatPager(&container.ListBlobsFlatOptions{Prefix: &prefix})
	for pager.More() {
		page, err := pager.NextPage(ctx)
		if err != nil {
			return nil, err
		}
		for _, b := range page.Segment.BlobItems {
			if b.Name == nil || b.Properties == nil {
				continue
			}
			o := Object{Key: *b.Name}
			if b.Properties.ETag != nil {
				o.ETag = string(*b.Properties.ETag)
			}
			if b.Properties.ContentLength != nil {
				o.Size = *b.Properties.ContentLength
			}
			out = append(out, o)
		}
	}
	return out, nil
}

// Stat reads the blob's properties.
func (s *azureStore) Stat(ctx context.Context, key string) (Object, bool, error) {
	props, err := s.c.NewBlobClient(key).GetProperties(ctx, nil)
	if bloberror.HasCode(err, bloberror.BlobNotFound) || isStatus(err, http.StatusNotFound) && !bloberror.HasCode(err, bloberror.ContainerNotFound) {
		return Object{}, false, nil
	}
	if err != nil {
		return Object{}, false, err
	}
	o := Object{Key: key}
	if props.ETag != nil {
		// The header's ETag is quoted, the listing's is not: the listing's form.
		o.ETag = strings.Trim(string(*props.ETag), `"`)
	}
	if props.ContentLength != nil {
		o.Size = *props.ContentLength
	}
	return o, true, nil
}

// Open downloads the blob.
func (s *azureStore) Open(ctx context.Context, key string) (io.ReadCloser, error) {
	resp, err := s.c.NewBlobClient(key).DownloadStream(ctx, nil)
	if err != nil {
		return nil, err
	}
	return resp.Body, nil
}

// isStatus reports whether err is an answer of the service with the HTTP status.
func isStatus(err error, code int) bool {
	var rerr *azcore.ResponseError
	return errors.As(err, &rerr) && rerr.StatusCode == code
}

// azureAuthCodes are the error codes of refused credentials.
var azureAuthCodes = []bloberror.Code{
	bloberror.AuthenticationFailed, bloberror.AuthorizationFailure, bloberror.AuthorizationPermissionMismatch,
	bloberror.AuthorizationProtocolMismatch, bloberror.AuthorizationResourceTypeMismatch,
	bloberror.AuthorizationServiceMismatch, bloberror.AuthorizationSourceIPMismatch,
	bloberror.InsufficientAccountPermissions, bloberror.InvalidAuthenticationInfo,
	bloberror.NoAuthenticationInformation, bloberror.AccountIsDisabled,
}

// Classify wraps an error of the Blob service or of Microsoft Entra ID. The service's own
// error text names the request's URL, which holds a SAS: only its code and status are kept,
// and a transport error's URL loses its query.
func (s *azureStore) Classify(err error, what string) error {
	var aerr *azidentity.AuthenticationFailedError
	if errors.As(err, &aerr) {
		return fmt.Errorf("%w: %s: %s: getting a Microsoft Entra ID token: %s", ErrAuth, what, s.where, s.redact(firstLine(aerr.Error())))
	}
	var rerr *azcore.ResponseError
	if errors.As(err, &rerr) {
		switch {
		case rerr.ErrorCode == string(bloberror.ContainerNotFound) || rerr.StatusCode == http.StatusNotFound && rerr.ErrorCode == "":
			return fmt.Errorf("%w: %s does not exist (%s)", ErrNotFound, s.where, rerr.ErrorCode)
		case bloberror.HasCode(err, azureAuthCodes...) || rerr.StatusCode == http.StatusUnauthorized || rerr.StatusCode == http.StatusForbidden:
			return fmt.Errorf("%w: %s: %s: %s (HTTP %d)", ErrAuth, what, s.where, rerr.ErrorCode, rerr.StatusCode)
		}
		return fmt.Errorf("%s of %s: %s (HTTP %d)", what, s.where, rerr.ErrorCode, rerr.StatusCode)
	}
	var uerr *url.Error
	if errors.As(err, &uerr) {
		u, perr := url.Parse(uerr.URL)
		target := "the service"
		if perr == nil {
			u.RawQuery = ""
			target = u.String()
		}
		return fmt.Errorf("%s of %s: %s %s: %s", what, s.where, uerr.Op, target, s.redact(uerr.Err.Error()))
	}
	return fmt.Errorf("%s of %s: %s", what, s.where, s.redact(err.Error()))
}

// redact removes the SAS, and its signature alone, from a message.
func (s *azureStore) redact(msg string) string {
	if s.sas == "" {
		return msg
	}
	msg = strings.ReplaceAll(msg, s.sas, "<sas>")
	if q, err := url.ParseQuery(s.sas); err == nil {
		if sig := q.Get("sig"); sig != "" {
			msg = strings.ReplaceAll(msg, sig, "<sig>")
			msg = strings.ReplaceAll(msg, url.QueryEscape(sig), "<sig>")
		}
	}
	return msg
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(strings.TrimSpace(s), "\n")
	return line
}
