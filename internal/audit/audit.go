// Package audit defines certgate's tamper-evident audit log: typed records
// whose hashes form a chain, and the verifier that walks the chain.
//
// Each record's hash covers its own fields and the previous record's hash,
// so editing, deleting or reordering any record breaks the chain at that
// record, and [Verifier] names it. The store appends records (it assigns the
// sequence number and links the hash inside the same transaction as the
// change being audited); this package only defines the encoding and checks it.
//
// Dropping records from the end of the log, or rewriting it and hashing
// again, is not detectable from the log alone; that needs the head hash
// kept somewhere else: the signed checkpoints of package auditsign,
// checked by [Check].
package audit

import (
	"bytes"
	"cmp"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"time"
)

// Actions recorded in the audit log.
const (
	ActionInit        = "ca.init"
	ActionCAAdopt     = "ca.adopt"  // an installation made before CA rows existed, recorded
	ActionCARotate    = "ca.rotate" // a phase of a rotation of the intermediate or the root
	ActionCARevoke    = "ca.revoke" // a CA certificate revoked
	ActionTokenCreate = "token.create"
	ActionIssue       = "cert.issue"
	ActionRenew       = "cert.renew"
	ActionRevoke      = "cert.revoke"
	ActionAdmin       = "admin.action"
	// ActionSharingSuspected: a gateway saw one certificate used from more
	// source hosts at once than its threshold (subject: the serial).
	ActionSharingSuspected = "cert.sharing_suspected"
	ActionRoleGrant        = "role.grant"
	ActionRoleRevoke       = "role.revoke"
	// ActionAuditKey: the audit key that signs the log's checkpoints was
	// made (subject: the checkpoints' origin; detail: the public key).
	ActionAuditKey = "audit.key"
)

// Entry is what a caller asks to record.
type Entry struct {
	Time    time.Time // when it happened; stored with nanosecond precision in UTC
	Actor   string    // who: an identity, or "system"
	Action  string    // one of the Action constants
	Subject string    // what: a serial, an identity, a token ID
	Detail  string    // compact JSON with the rest, or ""; never a secret
}

// Record is an Entry as stored: numbered and chained.
type Record struct {
	Seq int64 // 1 for the first record, then +1 each
	Entry
	PrevHash []byte // Hash of record Seq-1; 32 zero bytes for the first
	Hash     []byte
}

// Genesis is the PrevHash of the first record.
var Genesis = make([]byte, sha256.Size)

// domain separates this hash from any other use of SHA-256 over similar bytes.
const domain = "certgate-audit-v1"

// Link computes the hash of r, which covers every field of r and r.PrevHash.
// r.Hash is ignored.
func Link(r Record) []byte {
	// Each field is its length (8 bytes, big endian), then its bytes; the
	// two numbers are 8-byte fields. Sized once: the store appends a
	// record to the chain in every write.
	b := make([]byte, 0, 8*8+len(domain)+16+len(r.Actor)+len(r.Action)+len(r.Subject)+len(r.Detail)+len(r.PrevHash))
	b = field(b, domain)
	b = binary.BigEndian.AppendUint64(binary.BigEndian.AppendUint64(b, 8), uint64(r.Seq))
	b = binary.BigEndian.AppendUint64(binary.BigEndian.AppendUint64(b, 8), uint64(r.Time.UTC().UnixNano()))
	b = field(b, r.Actor)
	b = field(b, r.Action)
	b = field(b, r.Subject)
	b = field(b, r.Detail)
	b = field(b, r.PrevHash)
	sum := sha256.Sum256(b)
	return sum[:]
}

// field appends p to b as one field of Link: its length, then its bytes.
func field[T string | []byte](b []byte, p T) []byte {
	return append(binary.BigEndian.AppendUint64(b, uint64(len(p))), p...)
}

// Next returns the record that follows prev (nil for the first) for entry e.
func Next(prev *Record, e Entry) Record {
	r := Record{Seq: 1, Entry: e, PrevHash: Genesis}
	r.Time = e.Time.UTC()
	if prev != nil {
		r.Seq = prev.Seq + 1
		r.PrevHash = prev.Hash
	}
	r.Hash = Link(r)
	return r
}

// ErrBroken is wrapped by every chain error.
var ErrBroken = errors.New("audit chain broken")

// ChainError names the first record that does not verify.
type ChainError struct {
	Seq    int64
	Reason string
}

func (e *ChainError) Error() string {
	return fmt.Sprintf("audit: record %d: %s", e.Seq, e.Reason)
}

func (e *ChainError) Unwrap() error { return ErrBroken }

// Verifier checks records one at a time, in order, so a long log can be
// streamed. The zero value expects record 1.
type Verifier struct {
	prev []byte
	seq  int64
}

// Add checks the next record.
func (v *Verifier) Add(r Record) error {
	want := v.seq + 1
	prev := v.prev
	if prev == nil {
		prev = Genesis
	}
	switch {
	case r.Seq != want:
		// A gap or a repeat: a record was deleted, inserted or moved.
		return &ChainError{Seq: want, Reason: fmt.Sprintf("expected record %d, found %d (record deleted or reordered)", want, r.Seq)}
	case !bytes.Equal(r.PrevHash, prev):
		return &ChainError{Seq: r.Seq, Reason: "previous-hash link does not match the record before it (record inserted, deleted or reordered)"}
	case !bytes.Equal(Link(r), r.Hash):
		return &ChainError{Seq: r.Seq, Reason: fmt.Sprintf("hash mismatch: contents changed after it was written (stored %s)", short(r.Hash))}
	}
	v.prev, v.seq = r.Hash, r.Seq
	return nil
}

// VerifierAt returns a verifier that expects record seq+1, linked to head,
// the hash of record seq: it continues from a trusted point (a signed
// checkpoint) without the records before it. seq 0 is the start (head is
// then Genesis).
func VerifierAt(seq int64, head []byte) *Verifier {
	if seq == 0 {
		return &Verifier{}
	}
	return &Verifier{seq: seq, prev: bytes.Clone(head)}
}

// Count returns how many records verified so far.
func (v *Verifier) Count() int64 { return v.seq }

// Head returns the hash of the last verified record.
func (v *Verifier) Head() []byte { return v.prev }

func short(h []byte) string {
	s := hex.EncodeToString(h)
	if len(s) > 16 {
		s = s[:16] + "…"
	}
	return s
}

// Anchor is a point of the log known from outside it: a signed checkpoint's
// size and head hash.
type Anchor struct {
	Size int64
	Hash []byte
	Time time.Time // when it was signed, for messages
}

// Checker verifies records like [Verifier] and also against anchors, so
// it finds what the chain alone cannot: a tail deleted below an anchor
// ([Checker.Finish]) and a chain edited and hashed again (the head at an
// anchor's size differs). The zero value has no anchors.
type Checker struct {
	v        Verifier
	anchors  []Anchor // by size, one per size
	next     int      // the next anchor to reach
	lastGood int64    // the size of the last anchor matched
}

// NewChecker returns a checker of a log from record 1 against anchors
// (any order, repeats allowed). Two anchors of one size with different
// hashes are a fork signed by the log's key: an error naming that size.
func NewChecker(anchors []Anchor) (*Checker, error) {
	sorted := slices.Clone(anchors)
	slices.SortFunc(sorted, func(a, b Anchor) int { return cmp.Compare(a.Size, b.Size) })
	c := &Checker{}
	for _, a := range sorted {
		if a.Size <= 0 {
			continue
		}
		if n := len(c.anchors); n > 0 && c.anchors[n-1].Size == a.Size {
			if !bytes.Equal(c.anchors[n-1].Hash, a.Hash) {
				return nil, &ChainError{Seq: a.Size, Reason: fmt.Sprintf("two checkpoints of %d records disagree (%s, %s): the log was forked", a.Size, short(c.anchors[n-1].Hash), short(a.Hash))}
			}
			continue
		}
		c.anchors = append(c.anchors, a)
	}
	return c, nil
}

// Add checks the next record.
func (c *Checker) Add(r Record) error {
	if err := c.v.Add(r); err != nil {
		return err
	}
	if c.next < len(c.anchors) && c.anchors[c.next].Size == r.Seq {
		a := c.anchors[c.next]
		if !bytes.Equal(r.Hash, a.Hash) {
			return &ChainError{Seq: c.lastGood + 1, Reason: fmt.Sprintf(
				"the chain was rewritten at or after this record: records %d to %d hash to %s, the checkpoint of %d records signed at %s says %s (edited and hashed again)",
				c.lastGood+1, a.Size, short(r.Hash), a.Size, a.Time.UTC().Format(time.RFC3339), short(a.Hash))}
		}
		c.lastGood = a.Size
		c.next++
	}
	return nil
}

// Finish reports a tail deleted below the newest anchor.
func (c *Checker) Finish() error {
	if c.next < len(c.anchors) {
		a := c.anchors[len(c.anchors)-1]
		n := c.v.Count()
		return &ChainError{Seq: n + 1, Reason: fmt.Sprintf("missing: the checkpoint signed at %s covers %d records, the log has %d (records %d to %d deleted from the end)",
			a.Time.UTC().Format(time.RFC3339), a.Size, n, n+1, a.Size)}
	}
	return nil
}

// Count is how many records verified so far; Head the last one's hash.
func (c *Checker) Count() int64 { return c.v.Count() }

// Head is the hash of the last verified record.
func (c *Checker) Head() []byte { return c.v.Head() }

// Matched is how many anchors were reached and matched.
func (c *Checker) Matched() int { return c.next }
