package notify

import (
	"context"
	"html"
	"net/http"
	"strings"
)

// GoogleChat posts a card (cards v2) to a Google Chat space's incoming webhook: a header with
// the object, the message (red for an error), then the facts. Mobile notifications show the
// message's fallbackText.
type GoogleChat struct {
	// URL is the webhook's URL (https://chat.googleapis.com/v1/spaces/…/messages?key=…&token=…).
	URL    string
	Client *http.Client
}

// The shapes below are Google Chat's Message and GoogleAppsCardV1* types, as far as a
// notification uses them.

type gchatMessage struct {
	FallbackText string            `json:"fallbackText"`
	CardsV2      []gchatCardWithID `json:"cardsV2"`
}

type gchatCardWithID struct {
	CardID string    `json:"cardId"`
	Card   gchatCard `json:"card"`
}

type gchatCard struct {
	Header   gchatCardHeader `json:"header"`
	Sections []gchatSection  `json:"sections"`
}

type gchatCardHeader struct {
	Title    string `json:"title"`
	Subtitle string `json:"subtitle,omitempty"`
}

type gchatSection struct {
	Header string `json:"header,omitempty"`
	// Collapsible sections show the first UncollapsibleWidgetsCount widgets and a "show more".
	Collapsible               bool          `json:"collapsible,omitempty"`
	UncollapsibleWidgetsCount int           `json:"uncollapsibleWidgetsCount,omitempty"`
	Widgets                   []gchatWidget `json:"widgets"`
}

type gchatWidget struct {
	TextParagraph *gchatTextParagraph `json:"textParagraph,omitempty"`
	DecoratedText *gchatDecoratedText `json:"decoratedText,omitempty"`
}

type gchatTextParagraph struct {
	Text string `json:"text"`
	// MaxLines folds longer text behind a "show more".
	MaxLines int `json:"maxLines,omitempty"`
}

type gchatDecoratedText struct {
	TopLabel string `json:"topLabel"`
	Text     string `json:"text"`
	WrapText bool   `json:"wrapText"`
}

// gchatFactsShown are the facts a card shows before its "show more", gchatLinesShown the
// lines of the message.
const (
	gchatFactsShown = 4
	gchatLinesShown = 10
)

// Send implements Sender.
func (g *GoogleChat) Send(ctx context.Context, n Notification) error {
	return deliverJSON(ctx, g.Client, http.MethodPost, g.URL, nil, googleChatMessage(n))
}

// googleChatMessage lays a notification out as a card. Card text is a small HTML: the message
// is escaped, its lines kept with <br>.
func googleChatMessage(n Notification) gchatMessage {
	msg := strings.ReplaceAll(html.EscapeString(truncate(n.Message, 3000)), "\n", "<br>")
	if failed(n) {
		msg = `<font color="#d50000">` + msg + `</font>`
	}
	subtitle := n.Reason
	if n.Controller != "" {
		subtitle += " · " + n.Controller
	}
	sections := []gchatSection{{Widgets: []gchatWidget{{TextParagraph: &gchatTextParagraph{Text: msg, MaxLines: gchatLinesShown}}}}}
	if fs := factsOf(n); len(fs) > 0 {
		facts := gchatSection{}
		for _, f := range fs {
			facts.Widgets = append(facts.Widgets, gchatWidget{DecoratedText: &gchatDecoratedText{
				TopLabel: f.Label, Text: html.EscapeString(f.Value), WrapText: true}})
		}
		if len(fs) > gchatFactsShown {
			facts.Collapsible, facts.UncollapsibleWidgetsCount = true, gchatFactsShown
		}
		sections = append(sections, facts)
	}
	return gchatMessage{
		FallbackText: icon(n) + " " + n.Title(),
		CardsV2: []gchatCardWithID{{CardID: "plumb-notification", Card: gchatCard{
			Header:   gchatCardHeader{Title: icon(n) + " " + object(n), Subtitle: subtitle},
			Sections: sections,
		}}},
	}
}
