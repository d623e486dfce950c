package notify

import (
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
)

func TestDigestKeepsTheLastStateOfEachObject(t *testing.T) {
	g := NewWithT(t)
	t0 := time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)
	n := func(name, severity, reason, msg string, at int) Notification {
		return Notification{Kind: "Kustomization", Namespace: "shop", Name: name, Severity: severity, Reason: reason, Message: msg,
			Revision: "main@sha1:0123456789abcdef0123456789abcdef01234567", Time: t0.Add(time.Duration(at) * time.Second)}
	}
	d := &Digest{}
	for i, x := range []Notification{
		n("api", "info", "Progressing", "applying", 0),
		n("web", "info", "Succeeded", "applied", 1),
		n("api", "error", "HealthCheckFailed", "Deployment/shop/api not ready\nafter 5m", 2),
		n("db", "info", "Succeeded", "applied", 3),
		n("web", "info", "Succeeded", "applied again", 4),
	} {
		g.Expect(d.Add(x)).To(BeZero(), i)
	}
	g.Expect(d.Events()).To(Equal(5))
	g.Expect(d.Objects()).To(Equal(3))
	var names []string
	for _, l := range d.Last() {
		names = append(names, l.Name+"="+l.Message)
	}
	g.Expect(names).To(Equal([]string{"api=Deployment/shop/api not ready\nafter 5m", "web=applied again", "db=applied"}), "in the order objects came")

	m := d.Notification("Provider", "apps", "chat")
	g.Expect(m.Kind + "/" + m.Namespace + "/" + m.Name).To(Equal("Provider/apps/chat"))
	g.Expect(m.Reason).To(Equal(DigestReason))
	g.Expect(m.Severity).To(Equal("error"), "an object's last state is a failure")
	g.Expect(m.Time).To(Equal(t0.Add(4 * time.Second)))
	g.Expect(m.Metadata).To(Equal(map[string]string{"folded": "5", "objects": "3", "since": "2026-05-01T10:00:00Z"}))
	g.Expect(strings.Split(m.Message, "\n")).To(Equal([]string{
		"5 notifications of 3 objects came faster than apps/chat delivers them; the last of each object:",
		"Kustomization/shop/api: HealthCheckFailed (error, main@sha1:0123456789ab) Deployment/shop/api not ready",
		"Kustomization/shop/web: Succeeded (info, main@sha1:0123456789ab) applied again",
		"Kustomization/shop/db: Succeeded (info, main@sha1:0123456789ab) applied",
	}), "failures first")
}

// A full digest drops the oldest object's notifications, and says how many.
func TestDigestIsBounded(t *testing.T) {
	g := NewWithT(t)
	d := &Digest{MaxObjects: 2}
	obj := func(name string) Notification {
		return Notification{Kind: "Kustomization", Namespace: "a", Name: name, Severity: "info"}
	}
	g.Expect(d.Add(obj("one"))).To(BeZero())
	g.Expect(d.Add(obj("one"))).To(BeZero())
	g.Expect(d.Add(obj("two"))).To(BeZero())
	g.Expect(d.Add(obj("three"))).To(Equal(2), "one's two notifications")
	g.Expect(d.Add(obj("three"))).To(BeZero())
	g.Expect(d.Events()).To(Equal(3))
	g.Expect(d.Objects()).To(Equal(2))
	g.Expect(d.Last()[0].Name).To(Equal("two"))

	many := &Digest{}
	for i := range 100 {
		many.Add(Notification{Kind: "Kustomization", Namespace: "a", Name: strings.Repeat("x", i+1), Severity: "info"})
	}
	lines := strings.Split(many.Notification("Provider", "a", "chat").Message, "\n")
	g.Expect(lines).To(HaveLen(1 + digestLines + 1))
	g.Expect(lines[len(lines)-1]).To(Equal("… and 60 more objects"))
}

// Notifications older than the digest's add to it without overriding a newer state.
func TestDigestAddOlder(t *testing.T) {
	g := NewWithT(t)
	n := func(name, msg string) Notification {
		return Notification{Kind: "Kustomization", Namespace: "a", Name: name, Severity: "info", Message: msg}
	}
	d := &Digest{MaxObjects: 3}
	d.Add(n("api", "new"))
	d.Add(n("web", "new"))
	g.Expect(d.AddOlder(n("api", "old"))).To(BeZero())
	g.Expect(d.AddOlder(n("db", "old"))).To(BeZero())
	g.Expect(d.AddOlder(n("queue", "old"))).To(Equal(1), "full: the oldest, this one, goes")
	var got []string
	for _, l := range d.Last() {
		got = append(got, l.Name+"="+l.Message)
	}
	g.Expect(got).To(Equal([]string{"db=old", "api=new", "web=new"}))
	g.Expect(d.Events()).To(Equal(4))
}
