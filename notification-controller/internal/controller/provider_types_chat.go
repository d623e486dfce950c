package controller

import (
	"errors"
	"fmt"
	"strings"

	"github.com/plumb-dev/plumb/notification-controller/internal/notify"
)

// The senders of the chat and observability types: what each takes from the Provider's spec
// and Secret, with Flux's keys (`token`, `username` and `password`, an `address` that may hold
// a webhook's token).

// secretValue is a key of the Provider's Secret, or "".
func secretValue(c senderConfig, key string) string {
	return string(c.Data[key])
}

// username is the Secret's username, which wins over spec.username as in Flux.
func username(c senderConfig) string {
	if u := secretValue(c, "username"); u != "" {
		return u
	}
	return c.Provider.Spec.Username
}

func googleChatSender(c senderConfig) (notify.Sender, error) {
	if c.Address == "" {
		return nil, needAddress(c, "the space's incoming webhook URL")
	}
	return &notify.GoogleChat{URL: c.Address, Client: c.Client}, nil
}

func telegramSender(c senderConfig) (notify.Sender, error) {
	chat, thread, err := notify.ParseTelegramChat(c.Provider.Spec.Channel)
	if err != nil {
		return nil, err
	}
	if c.Token == "" {
		return nil, &secretError{"telegram needs the bot's token in the Secret's token key"}
	}
	return &notify.Telegram{APIURL: c.Address, Token: c.Token, ChatID: chat, ThreadID: thread, Client: c.Client}, nil
}

func matrixSender(c senderConfig) (notify.Sender, error) {
	room := c.Provider.Spec.Channel
	if c.Address == "" {
		return nil, needAddress(c, "the homeserver's URL")
	}
	if !strings.HasPrefix(room, "!") || !strings.Contains(room, ":") {
		return nil, fmt.Errorf("matrix needs spec.channel to be a room ID (!<id>:<server>), got %q", room)
	}
	if c.Token == "" {
		return nil, &secretError{"matrix needs an access token in the Secret's token key"}
	}
	return &notify.Matrix{Homeserver: c.Address, Token: c.Token, RoomID: room, Client: c.Client}, nil
}

func rocketSender(c senderConfig) (notify.Sender, error) {
	if c.Address == "" {
		return nil, needAddress(c, "incoming webhook URL")
	}
	return &notify.Rocket{URL: c.Address, Channel: c.Provider.Spec.Channel, Username: username(c), Client: c.Client}, nil
}

func mattermostSender(c senderConfig) (notify.Sender, error) {
	if c.Address == "" {
		return nil, needAddress(c, "incoming webhook URL")
	}
	return &notify.Mattermost{URL: c.Address, Channel: c.Provider.Spec.Channel, Username: username(c), Client: c.Client}, nil
}

func webexSender(c senderConfig) (notify.Sender, error) {
	if c.Provider.Spec.Channel == "" {
		return nil, errors.New("webex needs spec.channel: the room's ID")
	}
	if c.Token == "" {
		return nil, &secretError{"webex needs the bot's access token in the Secret's token key"}
	}
	return &notify.Webex{URL: c.Address, Token: c.Token, RoomID: c.Provider.Spec.Channel, Client: c.Client}, nil
}

func larkSender(c senderConfig) (notify.Sender, error) {
	if c.Address == "" {
		return nil, needAddress(c, "the custom bot's webhook URL")
	}
	return &notify.Lark{URL: c.Address, Secret: c.Token, Client: c.Client}, nil
}

func zulipSender(c senderConfig) (notify.Sender, error) {
	if c.Address == "" {
		return nil, needAddress(c, "the Zulip server's URL")
	}
	stream, topic, err := notify.ParseZulipChannel(c.Provider.Spec.Channel)
	if err != nil {
		return nil, err
	}
	email, key := username(c), secretValue(c, "password")
	if email == "" || key == "" {
		return nil, &secretError{"zulip needs the bot's email (the Secret's username, or spec.username) and API key (the Secret's password)"}
	}
	return &notify.Zulip{Server: c.Address, Email: email, APIKey: key, Channel: stream, Topic: topic, Client: c.Client}, nil
}

func grafanaSender(c senderConfig) (notify.Sender, error) {
	if c.Address == "" {
		return nil, needAddress(c, "Grafana's annotations API, https://<grafana>/api/annotations")
	}
	return &notify.Grafana{URL: c.Address, Token: c.Token, Username: secretValue(c, "username"),
		Password: secretValue(c, "password"), Client: c.Client}, nil
}

func datadogSender(c senderConfig) (notify.Sender, error) {
	if c.Token == "" {
		return nil, &secretError{"datadog needs an API key (not an application key) in the Secret's token key"}
	}
	return &notify.Datadog{Site: c.Address, APIKey: c.Token, Client: c.Client}, nil
}

func sentrySender(c senderConfig) (notify.Sender, error) {
	if c.Address == "" {
		return nil, needAddress(c, "the project's DSN, best in the Secret's address key")
	}
	s, err := notify.NewSentry(c.Address, c.Provider.Spec.Channel, c.Client)
	if err != nil {
		return nil, err
	}
	return s, nil
}
