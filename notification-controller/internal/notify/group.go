package notify

import "strings"

// Group merges the notifications of a burst that are about the same object and revision into
// one, in order: the messages become lines of one message, the severity is error if any is, the
// time and Recovers are the last one's (a burst that ends in a recovery is a recovery), and the
// reason is the last failure's if there is one, else the last one's (the reason an incident
// service files the failure under is one the Alert's state recorded). Notifications about
// other objects stay apart.
func Group(batch []Notification) []Notification {
	var out []Notification
	index := map[string]int{}
	for _, n := range batch {
		key := n.Kind + "/" + n.Namespace + "/" + n.Name + "@" + n.Revision
		i, ok := index[key]
		if !ok {
			index[key] = len(out)
			out = append(out, n)
			continue
		}
		g := &out[i]
		if !strings.Contains("\n"+g.Message+"\n", "\n"+n.Message+"\n") {
			g.Message += "\n" + n.Message
		}
		if n.Severity == "error" || g.Severity != "error" {
			g.Reason = n.Reason
		}
		if n.Severity == "error" {
			g.Severity = "error"
		}
		g.Time, g.Recovers = n.Time, n.Recovers
	}
	return out
}
