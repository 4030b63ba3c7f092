// Package h1test holds the request smuggling corpus that both the codec's
// tests (internal/gateway/h1) and the gateway's wire tests run: one list
// of attacks, checked once at the parser and once end to end. Tests only.
package h1test

import (
	_ "embed"
	"encoding/json"
)

// Smuggling is one request a strict HTTP/1.1 front end must refuse.
type Smuggling struct {
	Name   string `json:"name"`
	Raw    string `json:"raw"`    // the bytes the client sends
	Status int    `json:"status"` // the status the refusal answers
	Reason string `json:"reason"` // the reason in the access log
	// Body is set when the head is valid and the refusal comes from the
	// chunked body: a proxy may already have started forwarding the
	// request when it finds it.
	Body bool `json:"body"`
}

//go:embed smuggling.json
var smugglingJSON []byte

// SmugglingCases returns the corpus.
func SmugglingCases() []Smuggling {
	var out []Smuggling
	if err := json.Unmarshal(smugglingJSON, &out); err != nil {
		panic("h1test: smuggling.json: " + err.Error())
	}
	return out
}
