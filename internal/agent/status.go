package agent

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/certgate/certgate/certgatetls"
	"github.com/certgate/certgate/internal/atomicfile"
	"github.com/certgate/certgate/internal/identity"
)

// Agent states, as reported in [Status.State].
const (
	StateStarting   = "starting"
	StateWaiting    = "waiting"     // for the next renewal
	StateRetrying   = "retrying"    // after a failed renewal
	StateStopped    = "stopped"     // renewal is impossible; see LastError
	StateNotRunning = "not running" // no status file for this certificate
)

// Status is what the agent reports in agent-status.json and what
// `certgate agent status` prints.
type Status struct {
	Identity    string    `json:"identity"`
	Serial      string    `json:"serial"`
	NotBefore   time.Time `json:"not_before"`
	NotAfter    time.Time `json:"not_after"`
	State       string    `json:"state"`
	NextRenewal time.Time `json:"next_renewal,omitzero"`
	LastAttempt time.Time `json:"last_attempt,omitzero"`
	LastRenewal time.Time `json:"last_renewal,omitzero"`
	LastError   string    `json:"last_error,omitempty"`
	Failures    int       `json:"consecutive_failures"`
	Renewals    int       `json:"renewals"`
	UpdatedAt   time.Time `json:"updated_at,omitzero"`
	// Revocation is the last answer of the certificate's OCSP responder
	// ("good", "revoked", "unknown"; empty: not asked yet), asked at start
	// and at every wake-up; RevocationFrom says where and why there,
	// RevocationError why the last question got no answer.
	Revocation          string    `json:"revocation,omitempty"`
	RevocationCheckedAt time.Time `json:"revocation_checked_at,omitzero"`
	RevocationFrom      string    `json:"revocation_from,omitempty"`
	RevocationError     string    `json:"revocation_error,omitempty"`
	// AuditCheckpoint is the size of the newest audit checkpoint this
	// agent's witness accepted; AuditAlarms counts the checkpoints the
	// server showed that did not extend it (its log truncated or
	// rewritten), AuditError says the last one's why.
	AuditCheckpoint int64  `json:"audit_checkpoint,omitempty"`
	AuditAlarms     int    `json:"audit_alarms,omitempty"`
	AuditError      string `json:"audit_error,omitempty"`
}

// Health sums up the certificate at now for a person: "revoked",
// "expired", "healthy" (valid, and its responder last said good) or
// "valid, revocation not checked" (never asked, or no answer).
func (st Status) Health(now time.Time) string {
	switch {
	case st.Revocation == "revoked":
		return "revoked"
	case !now.Before(st.NotAfter):
		return "expired"
	case now.Before(st.NotBefore):
		return "not yet valid"
	case st.Revocation == "good":
		return "healthy"
	case st.Revocation == "unknown":
		return "unknown to its CA's responder"
	}
	return "valid, revocation not checked"
}

func writeStatus(dir string, st Status) error {
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return fmt.Errorf("agent: %w", err)
	}
	if err := atomicfile.Write(filepath.Join(dir, StatusFile), append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("agent: %w", err)
	}
	return nil
}

// ReadStatus returns the status of dir's agent. The certificate in
// cert.pem is the truth: when agent-status.json is missing or describes
// another certificate (say, after a new enrollment), the status is derived
// from cert.pem alone, state "not running", with the renewal expected at
// two thirds of the lifetime.
func ReadStatus(dir string) (Status, error) {
	leaf, err := certgatetls.ReadLeaf(dir)
	if err != nil {
		return Status{}, fmt.Errorf("agent: %w", err)
	}
	id, err := identity.FromCertificate(leaf)
	if err != nil {
		return Status{}, fmt.Errorf("agent: %s: %w", filepath.Join(dir, certgatetls.CertFile), err)
	}
	serial := leaf.SerialNumber.Text(16)
	var st Status
	sb, err := os.ReadFile(filepath.Join(dir, StatusFile))
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return Status{}, fmt.Errorf("agent: %w", err)
	default:
		if err := json.Unmarshal(sb, &st); err != nil {
			return Status{}, fmt.Errorf("agent: %s: %w", filepath.Join(dir, StatusFile), err)
		}
	}
	if st.Serial == serial {
		return st, nil
	}
	life := leaf.NotAfter.Sub(leaf.NotBefore)
	return Status{
		Identity: id.String(), Serial: serial, NotBefore: leaf.NotBefore, NotAfter: leaf.NotAfter,
		State: StateNotRunning, NextRenewal: leaf.NotBefore.Add(life * 2 / 3),
	}, nil
}

// WriteText prints st for people, with times relative to now.
func (st Status) WriteText(w io.Writer, now time.Time) error {
	when := func(t time.Time) string {
		if t.IsZero() {
			return "never"
		}
		d := t.Sub(now).Round(time.Second)
		switch {
		case d > 0:
			return fmt.Sprintf("%s (in %s)", t.UTC().Format(time.RFC3339), d)
		case d < 0:
			return fmt.Sprintf("%s (%s ago)", t.UTC().Format(time.RFC3339), -d)
		}
		return t.UTC().Format(time.RFC3339) + " (now)"
	}
	notAfter := when(st.NotAfter)
	if !now.Before(st.NotAfter) {
		notAfter += " EXPIRED: enroll again with a new token"
	}
	next := when(st.NextRenewal)
	if st.NextRenewal.IsZero() {
		next = "none"
	}
	if st.State == StateNotRunning {
		next = "about " + next
	}
	lastErr := st.LastError
	if lastErr == "" {
		lastErr = "none"
	}
	revocation := "not checked yet"
	if !st.RevocationCheckedAt.IsZero() {
		revocation = fmt.Sprintf("%s, as of %s, from %s", st.Revocation, when(st.RevocationCheckedAt), st.RevocationFrom)
		if st.Revocation == "" {
			revocation = fmt.Sprintf("no answer at %s from %s", when(st.RevocationCheckedAt), st.RevocationFrom)
		}
	}
	if st.RevocationError != "" {
		revocation += " (last check failed: " + st.RevocationError + ")"
	}
	_, err := fmt.Fprintf(w, "health:        %s\nidentity:      %s\nserial:        %s\nnot after:     %s\nnext renewal:  %s\nstate:         %s\nrevocation:    %s\nlast renewal:  %s\nlast error:    %s\n",
		st.Health(now), st.Identity, st.Serial, notAfter, next, st.State, revocation, when(st.LastRenewal), lastErr)
	return err
}
