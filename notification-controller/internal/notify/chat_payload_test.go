package notify

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
)

// What each chat service gets, checked as its API documents the request: method, path,
// credentials, content type and the payload's fields.

func TestGoogleChatPayload(t *testing.T) {
	g := NewWithT(t)
	svc, u := newService(t, `{"name":"spaces/AAA/messages/1"}`)
	s := &GoogleChat{URL: u + "/v1/spaces/AAA/messages?key=K3y&token=T0k"}
	g.Expect(s.Send(context.Background(), sample)).To(Succeed())
	r := svc.last(t)
	g.Expect(r.Method).To(Equal(http.MethodPost))
	g.Expect(r.Path).To(Equal("/v1/spaces/AAA/messages"))
	g.Expect(r.RawQuery).To(Equal("key=K3y&token=T0k"), "the webhook's key and token go as given")
	g.Expect(r.Header.Get("Content-Type")).To(Equal("application/json"))
	g.Expect(r.jsonBody(t)).To(Equal(map[string]any{
		"fallbackText": "✅ Kustomization/shop/api: Succeeded",
		"cardsV2": []any{map[string]any{
			"cardId": "plumb-notification",
			"card": map[string]any{
				"header": map[string]any{"title": "✅ Kustomization/shop/api", "subtitle": "Succeeded · apply-controller"},
				"sections": []any{
					map[string]any{"widgets": []any{map[string]any{"textParagraph": map[string]any{"text": "Deployment/shop/api configured", "maxLines": 10.0}}}},
					map[string]any{"widgets": []any{
						map[string]any{"decoratedText": map[string]any{"topLabel": "revision", "text": "main@sha1:1a2b3c4d5e6f", "wrapText": true}},
						map[string]any{"decoratedText": map[string]any{"topLabel": "summary", "text": "prod", "wrapText": true}},
						map[string]any{"decoratedText": map[string]any{"topLabel": "cluster", "text": "eu-1", "wrapText": true}},
					}},
				},
			},
		}},
	}))

	// An error is red; the message is escaped HTML, its lines kept.
	n := failedSample
	n.Message += "\nsecond line"
	n.Metadata = map[string]string{"a": "1", "b": "2", "c": "3", "d": "4"}
	g.Expect(s.Send(context.Background(), n)).To(Succeed())
	card := googleChatMessage(n).CardsV2[0].Card
	g.Expect(card.Sections[0].Widgets[0].TextParagraph.Text).To(Equal(
		`<font color="#d50000">kustomize build ./apps: &lt;none&gt; &amp; &#34;x&#34; not found<br>second line</font>`))
	g.Expect(card.Header.Title).To(Equal("❌ Kustomization/shop/api"))
	g.Expect(card.Sections[1].Collapsible).To(BeTrue(), "six facts fold after four")
	g.Expect(card.Sections[1].UncollapsibleWidgetsCount).To(Equal(4))
	g.Expect(svc.last(t).jsonBody(t)).To(HaveKeyWithValue("fallbackText", "❌ Kustomization/shop/api: BuildFailed"))
}

func TestTelegramPayload(t *testing.T) {
	g := NewWithT(t)
	svc, u := newService(t, `{"ok":true,"result":{"message_id":1}}`)
	s := &Telegram{APIURL: u, Token: "123456:ABC-def", ChatID: "-1001234567890", ThreadID: 7}
	g.Expect(s.Send(context.Background(), sample)).To(Succeed())
	r := svc.last(t)
	g.Expect(r.Method).To(Equal(http.MethodPost))
	g.Expect(r.Path).To(Equal("/bot123456:ABC-def/sendMessage"), "the Bot API's method under bot<token>")
	g.Expect(r.Header.Get("Content-Type")).To(Equal("application/json"))
	g.Expect(r.jsonBody(t)).To(Equal(map[string]any{
		"chat_id":              "-1001234567890",
		"message_thread_id":    7.0,
		"parse_mode":           "HTML",
		"link_preview_options": map[string]any{"is_disabled": true},
		"text": "✅ <b>Kustomization/shop/api</b> — Succeeded\nDeployment/shop/api configured\n" +
			"<b>revision</b>: <code>main@sha1:1a2b3c4d5e6f</code>\n<b>summary</b>: prod\n<b>cluster</b>: eu-1",
	}))

	// A channel's @username, no topic; HTML in the message is escaped.
	s = &Telegram{APIURL: u + "/", Token: "123456:ABC-def", ChatID: "@deploys"}
	g.Expect(s.Send(context.Background(), failedSample)).To(Succeed())
	body := svc.last(t).jsonBody(t)
	g.Expect(body).NotTo(HaveKey("message_thread_id"))
	g.Expect(body).To(HaveKeyWithValue("chat_id", "@deploys"))
	g.Expect(body["text"]).To(HavePrefix("❌ <b>Kustomization/shop/api</b> — BuildFailed\nkustomize build ./apps: &lt;none&gt; &amp; &#34;x&#34; not found\n"))

	// The Bot API may answer 200 with ok: false.
	_, u = newService(t, `{"ok":false,"description":"Bad Request: chat not found"}`)
	err := (&Telegram{APIURL: u, Token: "123456:ABC-def", ChatID: "1"}).Send(context.Background(), sample)
	g.Expect(err).To(MatchError(ContainSubstring("did not accept the message: Bad Request: chat not found")))

	for channel, want := range map[string]string{"-100123": "", "@team:12": "", ":4": "telegram needs spec.channel", "-100:x": "must be a number", "-100:0": "must be a number"} {
		_, _, err := ParseTelegramChat(channel)
		if want == "" {
			g.Expect(err).NotTo(HaveOccurred(), channel)
		} else {
			g.Expect(err).To(MatchError(ContainSubstring(want)), channel)
		}
	}
}

func TestMatrixPayload(t *testing.T) {
	g := NewWithT(t)
	svc, u := newService(t, `{"event_id":"$abc"}`, reply{status: http.StatusBadGateway})
	s := &Matrix{Homeserver: u + "/", Token: "syt_token", RoomID: "!room:example.org"}
	var re *RetryableError
	g.Expect(errors.As(s.Send(context.Background(), sample), &re)).To(BeTrue())
	g.Expect(s.Send(context.Background(), sample)).To(Succeed())
	got := svc.requests()
	r := got[1]
	g.Expect(r.Method).To(Equal(http.MethodPut))
	g.Expect(r.Path).To(MatchRegexp(`^/_matrix/client/v3/rooms/!room:example.org/send/m\.room\.message/plumb-[0-9a-f]{32}$`))
	g.Expect(r.EscapedPath).To(HavePrefix("/_matrix/client/v3/rooms/%21room:example.org/send/"), "the room ID is escaped")
	g.Expect(got[0].Path).To(Equal(r.Path), "a retry has the same transaction ID, so the homeserver shows it once")
	g.Expect(r.Header.Get("Authorization")).To(Equal("Bearer syt_token"))
	g.Expect(r.Header.Get("Content-Type")).To(Equal("application/json"))
	g.Expect(r.jsonBody(t)).To(Equal(map[string]any{
		"msgtype": "m.notice",
		"body":    "✅ Kustomization/shop/api — Succeeded\nDeployment/shop/api configured\nrevision: main@sha1:1a2b3c4d5e6f\nsummary: prod\ncluster: eu-1",
		"format":  "org.matrix.custom.html",
		"formatted_body": "✅ <b>Kustomization/shop/api</b> — Succeeded<br>Deployment/shop/api configured<br>" +
			"<b>revision</b>: <code>main@sha1:1a2b3c4d5e6f</code><br><b>summary</b>: prod<br><b>cluster</b>: eu-1",
	}))

	other := sample
	other.Message = "another"
	g.Expect(s.Send(context.Background(), other)).To(Succeed())
	g.Expect(svc.last(t).Path).NotTo(Equal(r.Path), "another notification, another transaction")
}

func TestRocketAndMattermostPayloads(t *testing.T) {
	g := NewWithT(t)
	svc, u := newService(t, `{"success":true}`)
	fields := []any{
		map[string]any{"short": true, "title": "revision", "value": "`main@sha1:1a2b3c4d5e6f`"},
		map[string]any{"short": true, "title": "summary", "value": "prod"},
		map[string]any{"short": true, "title": "cluster", "value": "eu-1"},
	}

	g.Expect((&Rocket{URL: u + "/hooks/id/token", Channel: "#deploys", Username: "plumb"}).Send(context.Background(), failedSample)).To(Succeed())
	r := svc.last(t)
	g.Expect(r.Method).To(Equal(http.MethodPost))
	g.Expect(r.Path).To(Equal("/hooks/id/token"))
	g.Expect(r.Header.Get("Content-Type")).To(Equal("application/json"))
	g.Expect(r.jsonBody(t)).To(Equal(map[string]any{
		"alias": "plumb", "channel": "#deploys", "text": "",
		"attachments": []any{map[string]any{
			"color": "#d50000", "title": "❌ Kustomization/shop/api — BuildFailed",
			"text": failedSample.Message, "fields": fields,
		}},
	}))

	at := sample
	at.Time = time.Unix(1700000000, 0)
	g.Expect((&Mattermost{URL: u + "/hooks/xyz", Channel: "town-square", Username: "plumb"}).Send(context.Background(), at)).To(Succeed())
	r = svc.last(t)
	g.Expect(r.Method).To(Equal(http.MethodPost))
	g.Expect(r.Path).To(Equal("/hooks/xyz"))
	g.Expect(r.Header.Get("Content-Type")).To(Equal("application/json"))
	g.Expect(r.jsonBody(t)).To(Equal(map[string]any{
		"channel": "town-square", "username": "plumb",
		"attachments": []any{map[string]any{
			"fallback": "✅ Kustomization/shop/api: Succeeded", "color": "#2eb886", "title": "✅ Kustomization/shop/api — Succeeded",
			"text": "Deployment/shop/api configured", "fields": fields, "footer": "apply-controller", "ts": 1700000000.0,
		}},
	}))

	// Without channel and username, the webhook's own apply.
	g.Expect((&Mattermost{URL: u + "/hooks/xyz"}).Send(context.Background(), sample)).To(Succeed())
	g.Expect(svc.last(t).jsonBody(t)).NotTo(Or(HaveKey("channel"), HaveKey("username")))
}

func TestWebexPayload(t *testing.T) {
	g := NewWithT(t)
	svc, u := newService(t, `{"id":"Y2lz"}`)
	g.Expect((&Webex{URL: u + "/v1/messages", Token: "bot-token", RoomID: "Y2lzY29zcGFyazovL3Vz"}).Send(context.Background(), sample)).To(Succeed())
	r := svc.last(t)
	g.Expect(r.Method).To(Equal(http.MethodPost))
	g.Expect(r.Path).To(Equal("/v1/messages"))
	g.Expect(r.Header.Get("Authorization")).To(Equal("Bearer bot-token"))
	g.Expect(r.Header.Get("Content-Type")).To(Equal("application/json"))
	g.Expect(r.jsonBody(t)).To(Equal(map[string]any{
		"roomId": "Y2lzY29zcGFyazovL3Vz",
		"text":   "✅ Kustomization/shop/api — Succeeded\nDeployment/shop/api configured\nrevision: main@sha1:1a2b3c4d5e6f\nsummary: prod\ncluster: eu-1",
		"markdown": "✅ **Kustomization/shop/api** — Succeeded\nDeployment/shop/api configured\n\n" +
			"**revision**: `main@sha1:1a2b3c4d5e6f`\n**summary**: prod\n**cluster**: eu-1",
	}))
	g.Expect(WebexAPI).To(Equal("https://webexapis.com/v1/messages"))
}

func TestLarkPayloadAndSignature(t *testing.T) {
	g := NewWithT(t)
	svc, u := newService(t, `{"code":0,"msg":"success","data":{}}`,
		reply{status: http.StatusOK, body: `{"code":19021,"msg":"sign match fail or timestamp is not within one hour from current time"}`},
		reply{status: http.StatusOK, body: `{"code":11232,"msg":"frequency limited psm[lark.oapi.app_platform_runtime]appID[1]"}`},
		reply{status: http.StatusOK, body: `{"StatusCode":0,"StatusMessage":"success"}`})
	at := time.Unix(1700000000, 0)
	s := &Lark{URL: u + "/open-apis/bot/v2/hook/0f1e2d", Secret: "s1gn1ng", now: func() time.Time { return at }}

	err := s.Send(context.Background(), failedSample)
	g.Expect(err).To(MatchError(ContainSubstring("refused the message: code 19021: sign match fail")), "Lark refuses with 200 and a code")
	var re *RetryableError
	g.Expect(errors.As(err, &re)).To(BeFalse())
	g.Expect(errors.As(s.Send(context.Background(), failedSample), &re)).To(BeTrue(), "frequency limited is retried")
	g.Expect(s.Send(context.Background(), failedSample)).To(Succeed(), "an older bot's answer")

	r := svc.last(t)
	g.Expect(r.Method).To(Equal(http.MethodPost))
	g.Expect(r.Path).To(Equal("/open-apis/bot/v2/hook/0f1e2d"))
	g.Expect(r.Header.Get("Content-Type")).To(Equal("application/json"))
	body := r.jsonBody(t)
	// Lark's documented check: base64(HMAC-SHA256 keyed by "<timestamp>\n<secret>" over nothing).
	ts := strconv.FormatInt(at.Unix(), 10)
	m := hmac.New(sha256.New, []byte(ts+"\n"+"s1gn1ng"))
	g.Expect(body).To(HaveKeyWithValue("timestamp", ts))
	g.Expect(body).To(HaveKeyWithValue("sign", base64.StdEncoding.EncodeToString(m.Sum(nil))))
	g.Expect(body).To(HaveKeyWithValue("msg_type", "interactive"))
	g.Expect(body["card"]).To(Equal(map[string]any{
		"config": map[string]any{"wide_screen_mode": true},
		"header": map[string]any{"template": "red", "title": map[string]any{"tag": "plain_text", "content": "❌ Kustomization/shop/api — BuildFailed"}},
		"elements": []any{
			map[string]any{"tag": "div", "text": map[string]any{"tag": "plain_text", "content": failedSample.Message}},
			map[string]any{"tag": "div", "fields": []any{
				map[string]any{"is_short": true, "text": map[string]any{"tag": "lark_md", "content": "**revision**\nmain@sha1:1a2b3c4d5e6f"}},
				map[string]any{"is_short": true, "text": map[string]any{"tag": "lark_md", "content": "**summary**\nprod"}},
				map[string]any{"is_short": true, "text": map[string]any{"tag": "lark_md", "content": "**cluster**\neu-1"}},
			}},
			map[string]any{"tag": "note", "elements": []any{map[string]any{"tag": "plain_text", "content": "apply-controller"}}},
		},
	}))

	// Without a secret, nothing is signed.
	g.Expect((&Lark{URL: u + "/open-apis/bot/v2/hook/0f1e2d"}).Send(context.Background(), sample)).To(Succeed())
	body = svc.last(t).jsonBody(t)
	g.Expect(body).NotTo(Or(HaveKey("sign"), HaveKey("timestamp")))
	g.Expect(body["card"]).To(HaveKeyWithValue("header", HaveKeyWithValue("template", "green")))
}

func TestZulipPayload(t *testing.T) {
	g := NewWithT(t)
	svc, u := newService(t, `{"result":"success","msg":"","id":42}`)
	for _, server := range []string{u, u + "/", u + "/api/v1/messages"} {
		s := &Zulip{Server: server, Email: "plumb-bot@example.zulipchat.com", APIKey: "F8KXuAyl", Channel: "ops", Topic: "deploys"}
		g.Expect(s.Send(context.Background(), sample)).To(Succeed())
		r := svc.last(t)
		g.Expect(r.Method).To(Equal(http.MethodPost))
		g.Expect(r.Path).To(Equal("/api/v1/messages"), server)
		g.Expect(r.User+":"+r.Password).To(Equal("plumb-bot@example.zulipchat.com:F8KXuAyl"), "the bot's email and API key, as basic auth")
		g.Expect(r.Header.Get("Content-Type")).To(Equal("application/x-www-form-urlencoded"))
		form, err := url.ParseQuery(string(r.Body))
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(form).To(Equal(url.Values{
			"type": {"stream"}, "to": {"ops"}, "topic": {"deploys"},
			"content": {"✅ **Kustomization/shop/api** — Succeeded\nDeployment/shop/api configured\n\n" +
				"**revision**: `main@sha1:1a2b3c4d5e6f`\n**summary**: prod\n**cluster**: eu-1"},
		}))
	}
	for channel, ok := range map[string]bool{"ops/deploys": true, "ops/deploys/eu": true, "ops": false, "/deploys": false, "ops/": false} {
		stream, topic, err := ParseZulipChannel(channel)
		g.Expect(err == nil).To(Equal(ok), channel)
		if ok {
			g.Expect(stream + "/" + topic).To(Equal(channel))
		}
	}
}

// The text formats keep a long message within what the services take.
func TestChatTextIsBounded(t *testing.T) {
	g := NewWithT(t)
	n := sample
	n.Message = strings.Repeat("x", 20000)
	g.Expect(len(markdownText(n, 3000))).To(BeNumerically("<", 3200))
	g.Expect(len(plainText(n, 3000))).To(BeNumerically("<", 3200))
	g.Expect(len(strings.Join(htmlLines(n, 3000), "\n"))).To(BeNumerically("<", 3300))
}
