package notify

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/plumb-dev/plumb/shared/testing/testenv"
)

// adaptiveCardsVersion is the release of Microsoft's Adaptive Cards library (the adaptivecards npm
// package) that reads the msteams cards; .ci/run installs it into
// $PLUMB_CACHE/adaptivecards-<version> (testdata/adaptivecards/README.md).
const adaptiveCardsVersion = "3.0.5"

// teamsMaxPayload is the largest message Teams' incoming webhooks and Workflows take (28 KB).
const teamsMaxPayload = 28 << 10

// adaptiveCardsLibrary returns node and the library's bundle, or ends the test as a missing tool
// does: skipped, or failed where CI is set.
func adaptiveCardsLibrary(t *testing.T) (node, bundle string) {
	t.Helper()
	node = testenv.NeedTool(t, "node")
	cache := os.Getenv("PLUMB_CACHE")
	if cache == "" {
		home, _ := os.UserHomeDir()
		cache = filepath.Join(home, ".cache", "plumb")
	}
	dir := filepath.Join(cache, "adaptivecards-"+adaptiveCardsVersion, "node_modules", "adaptivecards")
	raw, err := os.ReadFile(filepath.Join(dir, "package.json"))
	if err != nil {
		testenv.MissingTool(t, "adaptivecards@"+adaptiveCardsVersion+" (npm, installed by .ci/run)", err)
	}
	var pkg struct {
		Version string `json:"version"`
	}
	if err := json.Unmarshal(raw, &pkg); err != nil || pkg.Version != adaptiveCardsVersion {
		t.Fatalf("%s holds adaptivecards %q (%v), not %s: remove the folder and install it again", dir, pkg.Version, err, adaptiveCardsVersion)
	}
	return node, filepath.Join(dir, "dist", "adaptivecards.js")
}

// readByAdaptiveCards has the library read every card, in one node process, and returns the
// problems it finds in each (testdata/adaptivecards/validate.js).
func readByAdaptiveCards(t *testing.T, cards map[string]any) map[string][]string {
	t.Helper()
	node, bundle := adaptiveCardsLibrary(t)
	in, err := json.Marshal(cards)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(t.Context(), node, filepath.Join("testdata", "adaptivecards", "validate.js"), bundle)
	var stderr bytes.Buffer
	cmd.Stdin, cmd.Stderr = bytes.NewReader(in), &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("node validate.js: %v: %s", err, stderr.String())
	}
	var problems map[string][]string
	if err := json.Unmarshal(out, &problems); err != nil {
		t.Fatalf("node validate.js printed %q: %v", out, err)
	}
	if len(problems) != len(cards) {
		t.Fatalf("node validate.js answered for %d cards of %d: %s", len(problems), len(cards), out)
	}
	return problems
}

// teamsBodies sends each notification with the Teams sender to a loopback webhook and returns the
// bodies as Teams would receive them.
func teamsBodies(t *testing.T, ns map[string]Notification) map[string][]byte {
	t.Helper()
	s := &sink{}
	srv := httptest.NewServer(s)
	defer srv.Close()
	bodies := map[string][]byte{}
	for name, n := range ns {
		if err := (&Teams{URL: srv.URL + "/workflows/x"}).Send(context.Background(), n); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		last := len(s.bodies) - 1
		if ct := s.headers[last].Get("Content-Type"); ct != "application/json" {
			t.Errorf("%s: Content-Type %q, want application/json", name, ct)
		}
		bodies[name] = s.bodies[last]
	}
	return bodies
}

// teamsEnvelope checks that body is the message Teams' incoming webhooks and Workflows take, and
// nothing more: {"type": "message", "attachments": [{"contentType":
// "application/vnd.microsoft.card.adaptive", "content": <card>}]}, under 28 KB. It returns the
// card.
func teamsEnvelope(body []byte) (map[string]any, error) {
	if len(body) > teamsMaxPayload {
		return nil, fmt.Errorf("%d bytes, over Teams' %d", len(body), teamsMaxPayload)
	}
	var msg map[string]json.RawMessage
	if err := json.Unmarshal(body, &msg); err != nil {
		return nil, err
	}
	if err := onlyKeys(msg, "type", "attachments"); err != nil {
		return nil, fmt.Errorf("message: %w", err)
	}
	var typ string
	var attachments []map[string]json.RawMessage
	if json.Unmarshal(msg["type"], &typ) != nil || typ != "message" {
		return nil, fmt.Errorf("type is %s, want \"message\"", msg["type"])
	}
	if err := json.Unmarshal(msg["attachments"], &attachments); err != nil || len(attachments) != 1 {
		return nil, fmt.Errorf("attachments %s: want one (%v)", msg["attachments"], err)
	}
	a := attachments[0]
	if err := onlyKeys(a, "contentType", "content"); err != nil {
		return nil, fmt.Errorf("attachment: %w", err)
	}
	var contentType string
	if json.Unmarshal(a["contentType"], &contentType) != nil || contentType != "application/vnd.microsoft.card.adaptive" {
		return nil, fmt.Errorf("contentType %s, want application/vnd.microsoft.card.adaptive", a["contentType"])
	}
	var card map[string]any
	if err := json.Unmarshal(a["content"], &card); err != nil {
		return nil, fmt.Errorf("content: %w", err)
	}
	return card, nil
}

func onlyKeys(m map[string]json.RawMessage, keys ...string) error {
	if len(m) != len(keys) {
		return fmt.Errorf("%d fields, want %s", len(m), strings.Join(keys, ", "))
	}
	for _, k := range keys {
		if _, ok := m[k]; !ok {
			return fmt.Errorf("no %s", k)
		}
	}
	return nil
}

// Every card the msteams Provider sends (info, error, a long message, much metadata, no facts)
// is a Teams webhook message whose Adaptive Card Microsoft's Adaptive Cards library reads as
// written: no unknown element, property or value, nothing newer than the card's version 1.4. And
// the check can fail: broken copies of a card are each reported.
func TestTeamsCardsReadByAdaptiveCards(t *testing.T) {
	long := failedSample
	long.Message = strings.Repeat("Deployment/shop/api dry-run failed: spec.template.spec.containers[0].image: Required value — é✅ <b>*not*</b> [markdown](x)\n", 400)
	meta := sample
	meta.Metadata = map[string]string{"cluster": "eu-1", "team": "payments & <billing>", "env": "prod", "url": "https://grafana.example/d/x?var=1", "note": "**bold** _it_"}
	bare := sample
	bare.Revision, bare.Summary, bare.Metadata, bare.Controller = "", "", nil, ""
	bodies := teamsBodies(t, map[string]Notification{"info": sample, "error": failedSample, "long message": long, "metadata": meta, "no facts": bare})

	cards := map[string]any{}
	for name, b := range bodies {
		card, err := teamsEnvelope(b)
		if err != nil {
			t.Fatalf("%s: not a Teams webhook message: %v\n%s", name, err, b)
		}
		cards[name] = card
	}
	if n := len(cards["no facts"].(map[string]any)["body"].([]any)); n != 2 {
		t.Errorf("a notification without facts has %d body elements, want 2 (no empty FactSet)", n)
	}
	if s := string(bodies["long message"]); !strings.Contains(s, "…") || len(s) > 8<<10 {
		t.Errorf("the long message is not cut short: %d bytes", len(s))
	}

	broken := map[string]string{
		"unknown element type":        "UnknownElementType",
		"element without type":        "UnknownElementType",
		"card without type":           "card.type: missing",
		"card without version":        "card.version: missing",
		"misspelt property":           `TextBlock has no property "colour"`,
		"unknown colour":              "InvalidPropertyValue",
		"property of a later version": "UnsupportedProperty",
		"string for a boolean":        `card.body[1].wrap: the library read "true" as true`,
		"misspelt fact":               `Fact has no property "valeu"`,
	}
	for name := range broken {
		cards["broken: "+name] = breakCard(t, cards["error"], name)
	}

	problems := readByAdaptiveCards(t, cards)
	for name := range bodies {
		if len(problems[name]) > 0 {
			card, _ := json.MarshalIndent(cards[name], "", "  ")
			t.Errorf("%s: the Adaptive Cards library finds:\n  %s\n%s", name, strings.Join(problems[name], "\n  "), card)
		}
	}
	for name, want := range broken {
		got := problems["broken: "+name]
		if !strings.Contains(strings.Join(got, "\n"), want) {
			t.Errorf("broken card, %s: want a problem with %q, the library finds %q", name, want, got)
		}
	}
}

// breakCard returns a copy of the card with one fault, named how.
func breakCard(t *testing.T, card any, how string) map[string]any {
	t.Helper()
	raw, _ := json.Marshal(card)
	var c map[string]any
	if err := json.Unmarshal(raw, &c); err != nil {
		t.Fatal(err)
	}
	body := c["body"].([]any)
	title, message := body[0].(map[string]any), body[1].(map[string]any)
	switch how {
	case "unknown element type":
		title["type"] = "TextBlok"
	case "element without type":
		delete(message, "type")
	case "card without type":
		delete(c, "type")
	case "card without version":
		delete(c, "version")
	case "misspelt property":
		title["colour"] = title["color"]
		delete(title, "color")
	case "unknown colour":
		title["color"] = "Red"
	case "property of a later version":
		title["style"] = "heading" // TextBlock's style is of Adaptive Cards 1.5
	case "string for a boolean":
		message["wrap"] = "true"
	case "misspelt fact":
		facts := body[2].(map[string]any)["facts"].([]any)
		facts[0] = map[string]any{"title": "revision", "valeu": "main@sha1:1a2b3c4d5e6f"}
	default:
		t.Fatalf("no fault %q", how)
	}
	return c
}
