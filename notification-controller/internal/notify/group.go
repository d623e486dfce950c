package notify

import "strings"

// Group merges the notifications of a burst that are about the same object and revision into
// one, in order: the messages become lines of one message, the severity is error if any is, the
// reason and time are the last one's. Notifications about other objects stay apart.
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
		if n.Severity == "error" {
			g.Severity = "error"
		}
		g.Reason, g.Time = n.Reason, n.Time
	}
	return out
}
