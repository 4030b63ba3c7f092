package feed

import (
	"encoding/json"
	"errors"
	"fmt"
	"github.com/certgate/certgate/internal/wire"
	"time"
)

// Message types.
const (
	TypeSnapshot  = "snapshot"
	TypeRevoke    = "revoke"
	TypeHeartbeat = "heartbeat"
	// TypeCA carries the CA's public state (wire.CA): sent once a stream
	// starts, and again at every change of the CA (a new intermediate
	// published or activated, a root rotation, a CA key revoked).
	TypeCA = "ca"
	// TypeLegacyKeys carries the legacy keys gateways accept
	// (wire.LegacyKeySet: the salt and the hashes, never a key): sent once
	// a stream starts, and again at every change of a key.
	TypeLegacyKeys = "legacy_keys"
)

// Message is one line of the stream.
type Message struct {
	Type     string    `json:"type"`
	Position int64     `json:"position"`
	Time     time.Time `json:"time,omitzero"`
	// Snapshot
	Revoked []wire.Revoked `json:"revoked,omitempty"`
	// Revoke
	Serial   string    `json:"serial,omitempty"`
	Identity string    `json:"identity,omitempty"`
	Reason   int       `json:"reason,omitempty"`
	NotAfter time.Time `json:"not_after,omitzero"`
	// CA
	CA *wire.CA `json:"ca,omitempty"`
	// LegacyKeys
	LegacyKeys *wire.LegacyKeySet `json:"legacy_keys,omitempty"`
}

// MaxLine bounds one line of the stream. A snapshot of a million
// revocations is about 150 MB; a line this large is refused instead of
// buffered, which bounds a follower's memory against a broken server.
const MaxLine = 256 << 20

// ErrBadMessage is wrapped by every decoding error.
var ErrBadMessage = errors.New("feed: bad message")

// ParseMessage decodes and checks one line.
func ParseMessage(line []byte) (Message, error) {
	var m Message
	if err := json.Unmarshal(line, &m); err != nil {
		return Message{}, fmt.Errorf("%w: %v", ErrBadMessage, err)
	}
	if m.Position < 0 {
		return Message{}, fmt.Errorf("%w: negative position %d", ErrBadMessage, m.Position)
	}
	switch m.Type {
	case TypeSnapshot, TypeHeartbeat:
	case TypeRevoke:
		if m.Serial == "" || m.Position == 0 {
			return Message{}, fmt.Errorf("%w: revoke without serial or position", ErrBadMessage)
		}
	case TypeCA:
		if m.CA == nil {
			return Message{}, fmt.Errorf("%w: ca without the CA's state", ErrBadMessage)
		}
	case TypeLegacyKeys:
		if m.LegacyKeys == nil {
			return Message{}, fmt.Errorf("%w: legacy_keys without the set", ErrBadMessage)
		}
	default:
		return Message{}, fmt.Errorf("%w: unknown type %q", ErrBadMessage, m.Type)
	}
	return m, nil
}
