package notify

import (
	"fmt"
	"strconv"
	"strings"
)

// ChangeRequestKey is Flux's event metadata key of a pull or merge request's number: set in an
// Alert's eventMetadata, it names the pull request to comment on instead of the one found from
// the event's commit.
const ChangeRequestKey = "change_request"

// changeRequest is a pull or merge request as a Git host lists it for a commit.
type changeRequest struct {
	number int64
	open   bool
	merged bool
	head   string
}

// changeRequestsOf chooses the pull requests of a commit to comment on: the open ones whose
// head is the commit (the change being previewed); when there are none, the one that merged it
// (the change being deployed). Others that merely contain the commit are left alone: their
// head has moved on.
func changeRequestsOf(sha string, all []changeRequest) []int64 {
	var open []int64
	var merged int64
	for _, cr := range all {
		switch {
		case cr.open && strings.EqualFold(cr.head, sha):
			open = append(open, cr.number)
		case cr.merged && merged == 0:
			merged = cr.number
		}
	}
	if len(open) > 0 {
		return open
	}
	if merged != 0 {
		return []int64{merged}
	}
	return nil
}

// explicitChangeRequest is the number in a notification's change_request metadata, if any.
func explicitChangeRequest(n Notification) (int64, bool, error) {
	v, ok := n.Metadata[ChangeRequestKey]
	if !ok {
		return 0, false, nil
	}
	num, err := strconv.ParseInt(strings.TrimPrefix(strings.TrimSpace(v), "#"), 10, 64)
	if err != nil || num <= 0 {
		return 0, false, fmt.Errorf("eventMetadata %s is %q, not a pull or merge request number", ChangeRequestKey, v)
	}
	return num, true, nil
}

// commentMarker is the hidden first line of an object's comment. A Provider keeps one comment
// per object on a pull request and finds it again by this line; the Provider's key (its UID)
// keeps two Providers on one repository apart.
func commentMarker(providerKey string, n Notification) string {
	return fmt.Sprintf("<!-- plumb-comment %s %s/%s/%s -->", providerKey, n.Kind, n.Namespace, n.Name)
}

// commentBody is a notification in Markdown, after its marker: a heading with ✅ or ❌, the
// message as preformatted text (controller messages hold paths and globs that Markdown would
// mangle), then the revision, summary and metadata as a table.
func commentBody(marker string, n Notification) string {
	icon := "✅"
	if n.Severity == "error" {
		icon = "❌"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s\n%s **%s/%s/%s** — `%s`\n\n", marker, icon, n.Kind, n.Namespace, n.Name, n.Reason)
	fence := "```"
	for strings.Contains(n.Message, fence) {
		fence += "`"
	}
	fmt.Fprintf(&b, "%stext\n%s\n%s\n", fence, truncate(n.Message, 60000), fence)
	rows := [][2]string{}
	if n.Revision != "" {
		rows = append(rows, [2]string{"revision", "`" + ShortRevision(n.Revision) + "`"})
	}
	if n.Summary != "" {
		rows = append(rows, [2]string{"summary", n.Summary})
	}
	for _, k := range sortedKeys(n.Metadata) {
		if k != ChangeRequestKey {
			rows = append(rows, [2]string{k, n.Metadata[k]})
		}
	}
	if len(rows) > 0 {
		b.WriteString("\n| | |\n|---|---|\n")
		for _, r := range rows {
			fmt.Fprintf(&b, "| %s | %s |\n", cell(r[0]), cell(r[1]))
		}
	}
	fmt.Fprintf(&b, "\n<sub>Plumb · %s</sub>\n", n.Time.UTC().Format("2006-01-02 15:04:05 MST"))
	return b.String()
}

// cell keeps a value inside its Markdown table cell.
func cell(s string) string {
	return strings.ReplaceAll(strings.Join(strings.Fields(s), " "), "|", `\|`)
}
