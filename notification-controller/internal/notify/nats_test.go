package notify

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	. "github.com/onsi/gomega"

	"github.com/plumb-dev/plumb/shared/testing/notifytest"
)

var loopbackAllowed = &AddressPolicy{Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}}

// subscribe listens on subject of the server as user, until the test ends.
func subscribe(t *testing.T, url, user, password, subject string, opts ...nats.Option) chan *nats.Msg {
	t.Helper()
	nc, err := nats.Connect(url, append(opts, nats.UserInfo(user, password))...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	ch := make(chan *nats.Msg, 8)
	if _, err := nc.ChanSubscribe(subject, ch); err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	return ch
}

// Against the real nats-server: a subscriber receives the notification; a wrong password, a
// subject the user may not publish on and a stopped server fail the delivery, the last one
// retried.
func TestNATSPublishes(t *testing.T) {
	g := NewWithT(t)
	srv := notifytest.StartNATS(t, `authorization {
  users = [
    {user: plumb, password: s3cret, permissions: {publish: "plumb.>"}}
    {user: reader, password: r3ader}
  ]
}`)
	received := subscribe(t, srv.URL, "reader", "r3ader", "plumb.>")
	s := &NATS{URL: srv.URL, Subject: "plumb.events", Username: "plumb", Password: "s3cret", AllowPlainText: true, Addresses: loopbackAllowed}

	g.Expect(s.Send(context.Background(), failing)).To(Succeed())
	var msg *nats.Msg
	g.Eventually(received, 5*time.Second).Should(Receive(&msg))
	g.Expect(msg.Subject).To(Equal("plumb.events"))
	var got Notification
	g.Expect(json.Unmarshal(msg.Data, &got)).To(Succeed())
	want := failing
	want.Recovers = nil
	g.Expect(got).To(Equal(want), "the JSON of generic")

	var re *RetryableError
	err := (&NATS{URL: srv.URL, Subject: "other.events", Username: "plumb", Password: "s3cret", AllowPlainText: true, Addresses: loopbackAllowed}).Send(context.Background(), failing)
	g.Expect(err).To(MatchError(ContainSubstring("Permissions Violation for Publish to \"other.events\"")))
	g.Expect(errors.As(err, &re)).To(BeFalse(), "a permissions violation is not retried")
	err = (&NATS{URL: srv.URL, Subject: "plumb.events", Username: "plumb", Password: "wrong", AllowPlainText: true, Addresses: loopbackAllowed}).Send(context.Background(), failing)
	g.Expect(err).To(MatchError(MatchRegexp("(?i)authorization violation")))
	g.Expect(errors.As(err, &re)).To(BeFalse(), "a refused password is not retried")
	g.Expect(err.Error()).NotTo(ContainSubstring("wrong"))

	// Without TLS, the password stays home unless plain text is allowed.
	err = (&NATS{URL: srv.URL, Subject: "plumb.events", Username: "plumb", Password: "s3cret", Addresses: loopbackAllowed}).Send(context.Background(), failing)
	g.Expect(err).To(MatchError(ContainSubstring("offers no TLS")))
	g.Expect(err).To(MatchError(ContainSubstring("--provider-allow-insecure-http")))
	g.Consistently(received, 200*time.Millisecond).ShouldNot(Receive())

	// The address policy holds: loopback is refused by default.
	err = (&NATS{URL: srv.URL, Subject: "plumb.events", Username: "plumb", Password: "s3cret", AllowPlainText: true}).Send(context.Background(), failing)
	g.Expect(err).To(MatchError(ContainSubstring("refused by the provider address policy")))
	g.Expect(errors.As(err, &re)).To(BeFalse())
}

// A server that offers TLS takes the token over TLS, its certificate checked against the
// Provider's authorities; a stopped server is retried.
func TestNATSTokenOverTLS(t *testing.T) {
	g := NewWithT(t)
	dir := t.TempDir()
	cert, key := notifytest.Certificate(t)
	g.Expect(os.WriteFile(filepath.Join(dir, "tls.crt"), cert, 0o600)).To(Succeed())
	g.Expect(os.WriteFile(filepath.Join(dir, "tls.key"), key, 0o600)).To(Succeed())
	srv := notifytest.StartNATS(t, `authorization { token: "t0ken" }
tls { cert_file: "`+filepath.Join(dir, "tls.crt")+`", key_file: "`+filepath.Join(dir, "tls.key")+`" }`)
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(cert)
	cfg := &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}

	nc, err := nats.Connect(srv.URL, nats.Token("t0ken"), nats.Secure(cfg))
	g.Expect(err).NotTo(HaveOccurred())
	defer nc.Close()
	received := make(chan *nats.Msg, 1)
	_, err = nc.ChanSubscribe("deploys", received)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(nc.Flush()).To(Succeed())

	s := &NATS{URL: srv.URL, Subject: "deploys", Token: "t0ken", TLS: cfg, Addresses: loopbackAllowed}
	g.Expect(s.Send(context.Background(), recovered)).To(Succeed())
	g.Eventually(received, 5*time.Second).Should(Receive())

	err = (&NATS{URL: srv.URL, Subject: "deploys", Token: "t0ken", Addresses: loopbackAllowed}).Send(context.Background(), recovered)
	g.Expect(err).To(MatchError(ContainSubstring("certificate")), "the system's authorities do not know the server")

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	err = (&NATS{URL: "nats://127.0.0.1:1", Subject: "deploys", Token: "t0ken", TLS: cfg, Addresses: loopbackAllowed}).Send(ctx, recovered)
	var re *RetryableError
	g.Expect(errors.As(err, &re)).To(BeTrue(), "unreachable is retried: %v", err)
	g.Expect(err.Error()).NotTo(ContainSubstring("t0ken"))
}
