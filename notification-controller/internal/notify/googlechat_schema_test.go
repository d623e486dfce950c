package notify

import (
	"bytes"
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

// googleChatSchema compiles Google's published schema of a Chat message (testdata/googlechat,
// from the Chat API's discovery document) as a JSON Schema that refuses any property the
// discovery document does not name: a misspelt field, which Google Chat would refuse with
// 400, fails here.
func googleChatSchema(t *testing.T) *jsonschema.Schema {
	t.Helper()
	raw, err := os.ReadFile("testdata/googlechat/chat-v1-message.json")
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Schemas map[string]any `json:"schemas"`
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	defs := map[string]any{}
	for name, s := range doc.Schemas {
		defs[name] = fromDiscovery(s)
	}
	root := map[string]any{"$schema": "https://json-schema.org/draft/2020-12/schema", "$defs": defs, "$ref": "#/$defs/Message"}
	// The compiler wants numbers as json.Number: go through its own decoder.
	b, _ := json.Marshal(root)
	schemaDoc, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	c := jsonschema.NewCompiler()
	if err := c.AddResource("googlechat-message.json", schemaDoc); err != nil {
		t.Fatal(err)
	}
	sch, err := c.Compile("googlechat-message.json")
	if err != nil {
		t.Fatal(err)
	}
	return sch
}

// fromDiscovery turns one schema of a Google discovery document into JSON Schema: a $ref
// names another schema of the document, object schemas refuse unnamed properties, and the
// discovery-only keywords (id, format's Google names, deprecated) are left out.
func fromDiscovery(v any) any {
	s, ok := v.(map[string]any)
	if !ok {
		return v
	}
	out := map[string]any{}
	for k, val := range s {
		switch k {
		case "$ref":
			out[k] = "#/$defs/" + val.(string)
		case "properties":
			props := map[string]any{}
			for name, p := range val.(map[string]any) {
				props[name] = fromDiscovery(p)
			}
			out[k] = props
			out["additionalProperties"] = false
		case "items", "additionalProperties":
			out[k] = fromDiscovery(val)
		case "type", "enum", "readOnly":
			out[k] = val
		}
	}
	return out
}

// Every card the sender makes (info, error, many facts, a message with markup) is a Message as
// Google publishes it.
func TestGoogleChatCardMatchesGoogleSchema(t *testing.T) {
	sch := googleChatSchema(t)
	many := failedSample
	many.Message = strings.Repeat("line\n", 40)
	many.Metadata = map[string]string{"a": "1", "b": "<2>", "c": "3", "d": "4", "e": "5"}
	bare := sample
	bare.Revision, bare.Summary, bare.Metadata, bare.Controller = "", "", nil, ""
	for name, n := range map[string]Notification{"info": sample, "error": failedSample, "many facts": many, "no facts": bare} {
		b, err := json.Marshal(googleChatMessage(n))
		if err != nil {
			t.Fatal(err)
		}
		inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		if err := sch.Validate(inst); err != nil {
			t.Errorf("%s: the card is not a Google Chat Message: %v\n%s", name, err, b)
		}
	}

	// The schema is strict enough to catch a misspelt field or a wrong type.
	for _, bad := range []string{
		`{"cardsV2":[{"cardId":"x","card":{"header":{"title":"t","subTitle":"s"}}}]}`,
		`{"cardsV2":[{"cardId":"x","card":{"sections":[{"widgets":[{"textParagraph":{"text":"t","maxLines":"ten"}}]}]}}]}`,
		`{"cardsV2":[{"cardId":"x","card":{"header":{"title":"t","imageType":"ROUND"}}}]}`,
		`{"cards_v2":[]}`,
	} {
		inst, err := jsonschema.UnmarshalJSON(strings.NewReader(bad))
		if err != nil {
			t.Fatal(err)
		}
		if sch.Validate(inst) == nil {
			t.Errorf("the schema accepts %s", bad)
		}
	}
}
