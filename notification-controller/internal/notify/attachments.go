package notify

// Rocket.Chat and Mattermost take Slack's older message shape: attachments with a colour bar,
// a title, text and short fields. This file builds the one attachment both send.

// chatAttachment is one attachment of a Slack-compatible incoming webhook message; each
// service reads the fields it documents.
type chatAttachment struct {
	Fallback   string      `json:"fallback,omitempty"`
	Color      string      `json:"color"`
	Title      string      `json:"title"`
	Text       string      `json:"text"`
	AuthorName string      `json:"author_name,omitempty"`
	Fields     []chatField `json:"fields,omitempty"`
	Footer     string      `json:"footer,omitempty"`
	TS         int64       `json:"ts,omitempty"`
}

type chatField struct {
	Short bool   `json:"short"`
	Title string `json:"title"`
	Value string `json:"value"`
}

// chatAttachmentOf lays a notification out as an attachment: green or red, the object and
// reason as the title, the message as text and the facts as short fields (the revision as
// code).
func chatAttachmentOf(n Notification) chatAttachment {
	color := "#2eb886"
	if failed(n) {
		color = "#d50000"
	}
	a := chatAttachment{Color: color, Title: icon(n) + " " + object(n) + " — " + n.Reason, Text: truncate(n.Message, 3000)}
	for _, f := range factsOf(n) {
		v := f.Value
		if f.Label == "revision" {
			v = "`" + v + "`"
		}
		a.Fields = append(a.Fields, chatField{Short: true, Title: f.Label, Value: v})
	}
	return a
}
