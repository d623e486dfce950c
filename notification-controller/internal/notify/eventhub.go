package notify

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// AzureEventHub sends the notification, as the JSON of Webhook, to an Azure Event Hub with
// Event Hubs' documented HTTPS send (POST https://<namespace>/<hub>/messages, api-version
// 2014-01), authenticated with a Shared Access Signature made from a connection string's key
// or with a Microsoft Entra ID token. Flux sends over AMQP with azeventhubs; no Event Hubs
// server runs on loopback to test that client against, while this request can be checked
// exactly. It goes through the Provider's HTTP client (address policy, proxy, certificates).
type AzureEventHub struct {
	// ConnectionString of a shared access policy:
	// Endpoint=sb://<namespace>.servicebus.windows.net/;SharedAccessKeyName=<policy>;SharedAccessKey=<key>;EntityPath=<hub>
	// (or SharedAccessSignature=<a SAS token> in place of the key name and key).
	ConnectionString string
	// Without a connection string: Namespace (a name, or a host such as
	// <name>.servicebus.windows.net), Hub, and Token, an Entra ID access token.
	Namespace, Hub, Token string
	Client                *http.Client
}

// sasLifetime is how long a signature made for one delivery is valid.
const sasLifetime = time.Hour

// Send implements Sender.
func (e *AzureEventHub) Send(ctx context.Context, n Notification) error {
	host, hub, auth, err := e.target(time.Now())
	if err != nil {
		return err
	}
	endpoint := (&url.URL{Scheme: "https", Host: host, Path: "/" + hub + "/messages", RawQuery: "timeout=60&api-version=2014-01"}).String()
	body, err := json.Marshal(n)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("azureeventhub: %w", redactErr(err))
	}
	req.Header.Set("Content-Type", "application/atom+xml;type=entry;charset=utf-8")
	req.Header.Set("User-Agent", "plumb-notification-controller")
	req.Header.Set("Authorization", auth)
	return do(e.Client, req)
}

// target is the namespace's host, the hub and the Authorization header of a delivery at now.
func (e *AzureEventHub) target(now time.Time) (host, hub, auth string, err error) {
	if e.ConnectionString == "" {
		if e.Namespace == "" || e.Hub == "" || e.Token == "" {
			return "", "", "", errors.New("azureeventhub needs a connection string, or a namespace, an event hub and a token")
		}
		host = e.Namespace
		if !strings.Contains(host, ".") {
			host += ".servicebus.windows.net"
		}
		return host, e.Hub, "Bearer " + e.Token, nil
	}
	cs, err := parseConnectionString(e.ConnectionString)
	if err != nil {
		return "", "", "", err
	}
	u, perr := url.Parse(cs["Endpoint"])
	if perr != nil || u.Host == "" {
		return "", "", "", errors.New("azureeventhub: the connection string's Endpoint is not sb://<namespace>/")
	}
	host, hub = u.Host, cs["EntityPath"]
	if hub == "" {
		return "", "", "", errors.New("azureeventhub: the connection string has no EntityPath (the event hub)")
	}
	switch {
	case cs["SharedAccessSignature"] != "":
		return host, hub, cs["SharedAccessSignature"], nil
	case cs["SharedAccessKeyName"] != "" && cs["SharedAccessKey"] != "":
		return host, hub, SharedAccessSignature("https://"+host+"/"+hub, cs["SharedAccessKeyName"], cs["SharedAccessKey"], now.Add(sasLifetime)), nil
	}
	return "", "", "", errors.New("azureeventhub: the connection string has neither SharedAccessKeyName and SharedAccessKey nor SharedAccessSignature")
}

// parseConnectionString reads key=value pairs separated by semicolons; values may hold '='.
func parseConnectionString(s string) (map[string]string, error) {
	out := map[string]string{}
	for _, part := range strings.Split(s, ";") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		k, v, ok := strings.Cut(part, "=")
		if !ok {
			return nil, errors.New("azureeventhub: the connection string is not key=value pairs separated by ';'")
		}
		out[k] = v
	}
	if out["Endpoint"] == "" {
		return nil, errors.New("azureeventhub: the connection string has no Endpoint")
	}
	return out, nil
}

// SharedAccessSignature is the SAS token of a resource as Event Hubs documents it: the
// URL-encoded resource and the expiry (Unix seconds), signed with HMAC-SHA256 by the key.
func SharedAccessSignature(resource, keyName, key string, expiry time.Time) string {
	sr := url.QueryEscape(resource)
	se := strconv.FormatInt(expiry.Unix(), 10)
	m := hmac.New(sha256.New, []byte(key))
	m.Write([]byte(sr + "\n" + se))
	sig := base64.StdEncoding.EncodeToString(m.Sum(nil))
	return "SharedAccessSignature sr=" + sr + "&sig=" + url.QueryEscape(sig) + "&se=" + se + "&skn=" + url.QueryEscape(keyName)
}
