package notify

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"
)

// NATS publishes the notification, as the JSON of Webhook, on a subject of a NATS server with
// nats.go: one connection per delivery, flushed before Send returns, so an answer of the server
// (a permissions violation) is the delivery's error. The connection follows the address
// policy; a password or token travels only over TLS unless AllowPlainText.
type NATS struct {
	// URL of the server: nats://host:4222, or tls://host:4222 to require TLS.
	URL string
	// Subject to publish on.
	Subject string
	// Credentials, the first set given wins: Creds (a .creds file: user JWT and NKey seed),
	// NKeySeed, Username and Password, Token.
	Creds              []byte
	NKeySeed           []byte
	Username, Password string
	Token              string
	// TLS is the configuration of a TLS connection (certificate authorities, a client
	// certificate); nil: the system's authorities.
	TLS *tls.Config
	// AllowPlainText lets a password or token go to a server that offers no TLS.
	AllowPlainText bool
	// Addresses is the address policy connections follow (nil: its default refusals).
	Addresses *AddressPolicy
}

// Send implements Sender.
func (s *NATS) Send(ctx context.Context, n Notification) error {
	body, err := json.Marshal(n)
	if err != nil {
		return err
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, 15*time.Second)
		defer cancel()
	}
	host := "the server"
	if u, err := url.Parse(s.URL); err == nil && u.Host != "" {
		host = u.Host
	}
	opts, err := s.options(ctx)
	if err != nil {
		return err
	}
	nc, err := nats.Connect(s.URL, opts...)
	if err != nil {
		return natsError(host, err)
	}
	defer nc.Close()
	if err := nc.Publish(s.Subject, body); err != nil {
		return natsError(host, err)
	}
	if err := nc.FlushWithContext(ctx); err != nil {
		return natsError(host, err)
	}
	if err := nc.LastError(); err != nil {
		return natsError(host, err)
	}
	return nil
}

// options are the connection's: no reconnects (a delivery is retried whole), the context's
// deadline (Send sets one) as the connect timeout, the policy's dialer, TLS and the credentials.
func (s *NATS) options(ctx context.Context) ([]nats.Option, error) {
	d, _ := ctx.Deadline()
	timeout := time.Until(d)
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if s.TLS != nil {
		cfg = s.TLS.Clone()
	}
	opts := []nats.Option{
		nats.Name("plumb-notification-controller"), nats.NoReconnect(), nats.Timeout(timeout),
		nats.SetCustomDialer(policyDialer{ctx: ctx, policy: s.Addresses}),
		// Asynchronous errors (a permissions violation) are read with LastError after the
		// flush, not printed.
		nats.ErrorHandler(func(*nats.Conn, *nats.Subscription, error) {}),
	}
	switch {
	case len(s.Creds) > 0:
		opts = append(opts, nats.UserCredentialBytes(s.Creds))
	case len(s.NKeySeed) > 0:
		kp, err := nkeys.FromSeed(s.NKeySeed)
		if err != nil {
			return nil, errors.New("nats: the Secret's nkey is not an NKey seed")
		}
		pub, err := kp.PublicKey()
		if err != nil {
			return nil, errors.New("nats: the Secret's nkey is not a user's NKey seed")
		}
		opts = append(opts, nats.Nkey(pub, kp.Sign))
	case s.Username != "" || s.Password != "":
		opts = append(opts, nats.UserInfo(s.Username, s.Password))
	case s.Token != "":
		opts = append(opts, nats.Token(s.Token))
	}
	// A server that offers TLS is connected to with cfg; Secure refuses one that does not.
	opts = append(opts, func(o *nats.Options) error { o.TLSConfig = cfg; return nil })
	if (s.Password != "" || s.Token != "") && len(s.Creds) == 0 && len(s.NKeySeed) == 0 && !s.AllowPlainText {
		opts = append(opts, nats.Secure(cfg))
	}
	return opts, nil
}

// natsError says what failed; refusals (address policy, credentials, TLS) are final, the rest
// (unreachable, timeouts) retried.
func natsError(host string, err error) error {
	switch {
	case errors.Is(err, nats.ErrSecureConnRequired), errors.Is(err, nats.ErrSecureConnWanted):
		return fmt.Errorf("nats %s offers no TLS, and the Provider's password or token is not sent in clear text: use a server with TLS, or start notification-controller with --provider-allow-insecure-http", host)
	case refused(err):
		return fmt.Errorf("nats %s: %w", host, err)
	case errors.Is(err, nats.ErrAuthorization), errors.Is(err, nats.ErrAuthExpired), errors.Is(err, nats.ErrAuthRevoked),
		errors.Is(err, nats.ErrPermissionViolation), errors.Is(err, nats.ErrBadSubject), errors.Is(err, nats.ErrMaxPayload):
		return fmt.Errorf("nats %s: %w", host, err)
	}
	return &RetryableError{Err: fmt.Errorf("nats %s: %w", host, err)}
}

// policyDialer connects nats.go through the address policy.
type policyDialer struct {
	ctx    context.Context
	policy *AddressPolicy
}

func (d policyDialer) Dial(network, address string) (net.Conn, error) {
	return d.policy.DialContext(d.ctx, network, address)
}
