package notify

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// DigestReason is the reason of a digest notification.
const DigestReason = "NotificationsFolded"

// Digest folds notifications that waited for a slow destination into one: the last
// notification of each object, in the order the objects first came, and how many notifications
// it stands for. A person reading it learns where each object ended up, not every step on the
// way. It keeps at most MaxObjects objects: folding in one more drops the oldest object's.
type Digest struct {
	// MaxObjects bounds the objects kept (default 1000).
	MaxObjects int

	events int
	order  []string
	last   map[string]*digestEntry
	first  time.Time
}

type digestEntry struct {
	n      Notification
	events int
}

func objectKey(n Notification) string { return n.Kind + "/" + n.Namespace + "/" + n.Name }

// Add folds n in, and returns how many notifications were dropped to make room: those of the
// oldest object, when a new object comes to a full digest.
func (d *Digest) Add(n Notification) (dropped int) {
	if d.last == nil {
		d.last = map[string]*digestEntry{}
		d.first = n.Time
	}
	max := d.MaxObjects
	if max <= 0 {
		max = 1000
	}
	key := objectKey(n)
	e, ok := d.last[key]
	if !ok {
		for len(d.order) >= max {
			oldest := d.order[0]
			d.order = d.order[1:]
			dropped += d.last[oldest].events
			d.events -= d.last[oldest].events
			delete(d.last, oldest)
		}
		e = &digestEntry{}
		d.last[key] = e
		d.order = append(d.order, key)
	}
	// Grouped notifications stand for several; the last one's state is the object's.
	e.n = n
	e.events++
	d.events++
	return dropped
}

// AddOlder folds in n, older than every notification already in the digest: an object the
// digest holds keeps its (newer) state, and a new one comes first. It returns how many
// notifications were dropped to make room: n itself when the digest is full.
func (d *Digest) AddOlder(n Notification) (dropped int) {
	if d.last == nil {
		return d.Add(n)
	}
	max := d.MaxObjects
	if max <= 0 {
		max = 1000
	}
	key := objectKey(n)
	if e, ok := d.last[key]; ok {
		e.events++
		d.events++
		d.first = n.Time
		return 0
	}
	if len(d.order) >= max {
		return 1 // the oldest object's: this one
	}
	d.last[key] = &digestEntry{n: n, events: 1}
	d.order = append([]string{key}, d.order...)
	d.events++
	d.first = n.Time
	return 0
}

// Events is how many notifications the digest stands for.
func (d *Digest) Events() int { return d.events }

// Objects is how many objects the digest holds.
func (d *Digest) Objects() int { return len(d.order) }

// Last returns the last notification of each object, in the order the objects first came.
func (d *Digest) Last() []Notification {
	out := make([]Notification, 0, len(d.order))
	for _, k := range d.order {
		out = append(out, d.last[k].n)
	}
	return out
}

// digestLines bounds the objects a digest message lists one by one; the others are counted.
const digestLines = 40

// Notification is the digest as one message about the destination (kind, namespace and name of
// the Provider), for people: how many notifications of how many objects it folds, and the last
// state of each, failures first. Its severity is error when any object's last state is.
func (d *Digest) Notification(kind, namespace, name string) Notification {
	last := d.Last()
	var failed, fine []Notification
	for _, n := range last {
		if n.Severity == "error" {
			failed = append(failed, n)
		} else {
			fine = append(fine, n)
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%d notifications of %d objects came faster than %s/%s delivers them; the last of each object:", d.events, len(last), namespace, name)
	shown := 0
	for _, n := range append(failed, fine...) {
		if shown == digestLines {
			fmt.Fprintf(&b, "\n… and %d more objects", len(last)-shown)
			break
		}
		b.WriteString("\n" + digestLine(n))
		shown++
	}
	out := Notification{
		Kind: kind, Namespace: namespace, Name: name, Severity: "info", Reason: DigestReason, Message: b.String(),
		Metadata: map[string]string{"folded": strconv.Itoa(d.events), "objects": strconv.Itoa(len(last)), "since": d.first.UTC().Format(time.RFC3339)},
	}
	if len(failed) > 0 {
		out.Severity = "error"
	}
	if len(last) > 0 {
		out.Time = last[len(last)-1].Time
		for _, n := range last {
			if n.Time.After(out.Time) {
				out.Time = n.Time
			}
		}
	}
	return out
}

// digestLine is one object's last state: "Kustomization/shop/api: HealthCheckFailed (error,
// main@sha1:1a2b3c4d5e6f) Deployment/shop/api not ready", its message's first line, shortened.
func digestLine(n Notification) string {
	detail := n.Severity
	if n.Revision != "" {
		detail += ", " + ShortRevision(n.Revision)
	}
	msg, _, _ := strings.Cut(n.Message, "\n")
	return fmt.Sprintf("%s: %s (%s) %s", objectKey(n), n.Reason, detail, truncate(msg, 200))
}
