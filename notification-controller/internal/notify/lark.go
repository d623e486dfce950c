package notify

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"time"
)

// Lark posts a message card to a Lark (Feishu) custom bot's webhook: a green or red header
// with the object, the message, the facts, and the reporting controller as a note. With
// Secret set it signs the request as a bot with signature verification expects.
type Lark struct {
	URL string
	// Secret is the bot's signing secret (its "signature verification" key), or empty.
	Secret string
	Client *http.Client
	// now is the signing time; tests set it.
	now func() time.Time
}

type larkMessage struct {
	Timestamp string   `json:"timestamp,omitempty"`
	Sign      string   `json:"sign,omitempty"`
	MsgType   string   `json:"msg_type"`
	Card      larkCard `json:"card"`
}

type larkCard struct {
	Config   larkConfig    `json:"config"`
	Header   larkHeader    `json:"header"`
	Elements []larkElement `json:"elements"`
}

type larkConfig struct {
	WideScreenMode bool `json:"wide_screen_mode"`
}

type larkHeader struct {
	Template string   `json:"template"`
	Title    larkText `json:"title"`
}

type larkText struct {
	Tag     string `json:"tag"`
	Content string `json:"content"`
}

type larkElement struct {
	Tag      string      `json:"tag"`
	Text     *larkText   `json:"text,omitempty"`
	Fields   []larkField `json:"fields,omitempty"`
	Elements []larkText  `json:"elements,omitempty"`
}

type larkField struct {
	IsShort bool     `json:"is_short"`
	Text    larkText `json:"text"`
}

// larkFrequencyLimited is Lark's code for a bot that sent too much: wait and retry.
const larkFrequencyLimited = 11232

// Send implements Sender.
func (l *Lark) Send(ctx context.Context, n Notification) error {
	msg := larkMessage{MsgType: "interactive", Card: larkCardOf(n)}
	if l.Secret != "" {
		now := time.Now
		if l.now != nil {
			now = l.now
		}
		msg.Timestamp = strconv.FormatInt(now().Unix(), 10)
		msg.Sign = larkSign(msg.Timestamp, l.Secret)
	}
	a, err := sendJSON(ctx, l.Client, http.MethodPost, l.URL, nil, msg)
	if err != nil {
		return err
	}
	if !a.ok() {
		return a.err(0)
	}
	// Lark answers 200 to a refused message, with a code in its body (StatusCode for older
	// bots).
	var la struct {
		Code       *int `json:"code"`
		StatusCode *int `json:"StatusCode"`
	}
	if err := json.Unmarshal(a.body, &la); err != nil {
		return nil
	}
	code := la.Code
	if code == nil {
		code = la.StatusCode
	}
	if code == nil || *code == 0 {
		return nil
	}
	refusal := fmt.Errorf("%s refused the message: code %d: %s", a.host, *code, truncate(a.says(l.Secret), 300))
	if *code == larkFrequencyLimited {
		return &RetryableError{Err: refusal}
	}
	return refusal
}

// larkSign is the signature of a custom bot: the base64 HMAC-SHA256, keyed by
// "<timestamp>\n<secret>", of nothing.
func larkSign(timestamp, secret string) string {
	m := hmac.New(sha256.New, []byte(timestamp+"\n"+secret))
	return base64.StdEncoding.EncodeToString(m.Sum(nil))
}

func larkCardOf(n Notification) larkCard {
	template := "green"
	if failed(n) {
		template = "red"
	}
	elements := []larkElement{{Tag: "div", Text: &larkText{Tag: "plain_text", Content: truncate(n.Message, 3000)}}}
	if fs := factsOf(n); len(fs) > 0 {
		fields := larkElement{Tag: "div"}
		for _, f := range fs {
			fields.Fields = append(fields.Fields, larkField{IsShort: true, Text: larkText{Tag: "lark_md", Content: "**" + f.Label + "**\n" + f.Value}})
		}
		elements = append(elements, fields)
	}
	if n.Controller != "" {
		elements = append(elements, larkElement{Tag: "note", Elements: []larkText{{Tag: "plain_text", Content: n.Controller}}})
	}
	return larkCard{
		Config:   larkConfig{WideScreenMode: true},
		Header:   larkHeader{Template: template, Title: larkText{Tag: "plain_text", Content: icon(n) + " " + object(n) + " — " + n.Reason}},
		Elements: elements,
	}
}
