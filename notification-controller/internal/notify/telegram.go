package notify

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// TelegramAPI is the Bot API's address.
const TelegramAPI = "https://api.telegram.org"

// Telegram sends a message with a bot (sendMessage of the Bot API) to a chat: a bold heading,
// the message and the facts, in the Bot API's HTML.
type Telegram struct {
	// APIURL is the Bot API server: TelegramAPI, or a self-hosted telegram-bot-api.
	APIURL string
	// Token is the bot's token (from the BotFather); it is part of the request's path.
	Token string
	// ChatID is a chat's ID (-1001234567890) or a channel's @username.
	ChatID string
	// ThreadID, when not 0, is the topic of a forum supergroup.
	ThreadID int64
	Client   *http.Client
}

// ParseTelegramChat reads a Provider's channel: <chat ID or @username>[:<topic ID>], as Flux
// writes it.
func ParseTelegramChat(channel string) (chat string, thread int64, err error) {
	chat, topic, hasTopic := strings.Cut(channel, ":")
	if chat == "" {
		return "", 0, errors.New("telegram needs spec.channel: a chat ID (-1001234567890) or a channel's @username, optionally :<topic ID>")
	}
	if hasTopic {
		if thread, err = strconv.ParseInt(topic, 10, 64); err != nil || thread <= 0 {
			return "", 0, fmt.Errorf("telegram spec.channel %q: the topic after ':' must be a number", channel)
		}
	}
	return chat, thread, nil
}

type telegramMessage struct {
	ChatID             string                     `json:"chat_id"`
	MessageThreadID    int64                      `json:"message_thread_id,omitempty"`
	Text               string                     `json:"text"`
	ParseMode          string                     `json:"parse_mode"`
	LinkPreviewOptions telegramLinkPreviewOptions `json:"link_preview_options"`
}

type telegramLinkPreviewOptions struct {
	IsDisabled bool `json:"is_disabled"`
}

// telegramAnswer is the Bot API's answer; parameters.retry_after says how long to wait after
// a 429.
type telegramAnswer struct {
	OK         bool `json:"ok"`
	Parameters struct {
		RetryAfter int `json:"retry_after"`
	} `json:"parameters"`
}

// Send implements Sender.
func (t *Telegram) Send(ctx context.Context, n Notification) error {
	api := t.APIURL
	if api == "" {
		api = TelegramAPI
	}
	// Telegram allows 4096 characters of text once the HTML is parsed.
	msg := telegramMessage{ChatID: t.ChatID, MessageThreadID: t.ThreadID, Text: strings.Join(htmlLines(n, 3000), "\n"),
		ParseMode: "HTML", LinkPreviewOptions: telegramLinkPreviewOptions{IsDisabled: true}}
	a, err := sendJSON(ctx, t.Client, http.MethodPost, strings.TrimSuffix(api, "/")+"/bot"+t.Token+"/sendMessage", nil, msg)
	if err != nil {
		return err
	}
	var ta telegramAnswer
	_ = json.Unmarshal(a.body, &ta)
	if !a.ok() {
		return a.err(time.Duration(ta.Parameters.RetryAfter)*time.Second, t.Token)
	}
	if !ta.OK {
		return fmt.Errorf("%s did not accept the message: %s", a.host, scrub(serviceSays(a.body), t.Token))
	}
	return nil
}
