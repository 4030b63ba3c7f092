package bench

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"time"

	"github.com/certgate/certgate/internal/apiclient"
	"github.com/certgate/certgate/internal/keytype"
)

// Target is the certgate server a load runs against, with the admin
// credentials that mint its tokens (and revoke): what `certgate bench`
// reads from a CA directory.
type Target struct {
	URL         string         // https://host:port
	Roots       *x509.CertPool // verify the server
	Admin       tls.Certificate
	TrustDomain string
	// Bundle is the trust bundle file; the revocation run gives it to its
	// gateways.
	Bundle string
}

func (t Target) admin(timeout time.Duration) (*apiclient.Client, error) {
	c, err := apiclient.New(apiclient.Options{ServerURL: t.URL, Roots: t.Roots, Certificate: &t.Admin, Timeout: timeout})
	if err != nil {
		return nil, fmt.Errorf("--server: %w", err)
	}
	return c, nil
}

// load is what the enrollment, renewal and storm runs share: the server,
// the key type of the prepared CSRs, the server's CPU time and where
// progress goes.
type load struct {
	kt        keytype.Type
	serverCPU func() (time.Duration, error) // nil: not measured
	log       io.Writer
}

// newLoad checks --server-pid and --key-type.
func newLoad(serverPID int, keyType string, log io.Writer) (*load, error) {
	l := &load{log: log}
	if l.log == nil {
		l.log = io.Discard
	}
	if serverPID != 0 {
		if _, err := ProcessCPU(serverPID); err != nil {
			return nil, fmt.Errorf("--server-pid: %w", err)
		}
		l.serverCPU = func() (time.Duration, error) { return ProcessCPU(serverPID) }
	}
	if keyType == "" {
		keyType = string(keytype.Default)
	}
	kt, err := keytype.Parse(keyType)
	if err != nil {
		return nil, fmt.Errorf("--key-type: %w", err)
	}
	l.kt = kt
	return l, nil
}

// EnrollOptions configures an enrollment run (`certgate bench enroll`).
// Errors about a field name the command-line flag that sets it.
type EnrollOptions struct {
	Target   Target
	Clients  int           // concurrent clients, one keep-alive connection each
	Count    int           // enrollments to prepare and send
	Duration time.Duration // stop sending after this long; 0: no bound
	KeyType  string        // of the CSRs; keytype.Default if empty
	HTTP2    bool
	// ServerPID is the server's process on this machine (Linux): the
	// result then has its CPU time. 0: not measured.
	ServerPID int
	Log       io.Writer // progress messages; nil discards them
}

// Check returns the first problem with o's settings (Target aside).
func (o EnrollOptions) Check() error {
	_, err := o.check()
	return err
}

func (o EnrollOptions) check() (*load, error) {
	switch {
	case o.Clients < 1:
		return nil, fmt.Errorf("--clients: %d: need at least one client", o.Clients)
	case o.Count < 1:
		return nil, fmt.Errorf("--count: %d: need at least one enrollment", o.Count)
	case o.Duration < 0:
		return nil, fmt.Errorf("--duration: %s is negative", o.Duration)
	}
	return newLoad(o.ServerPID, o.KeyType, o.Log)
}

// RunEnroll mints o.Count tokens through the admin API and makes a key and
// CSR for each (not measured), then sends the enrollments over o.Clients
// keep-alive TLS connections (see [Enroll]). It returns the result with an
// error when any enrollment failed.
func RunEnroll(ctx context.Context, o EnrollOptions) (*EnrollResult, error) {
	l, err := o.check()
	if err != nil {
		return nil, err
	}
	t := o.Target
	admin, err := t.admin(60 * time.Second)
	if err != nil {
		return nil, err
	}
	defer admin.CloseIdleConnections()
	fmt.Fprintf(l.log, "preparing %d tokens and %s CSRs (not measured)...\n", o.Count, l.kt)
	t0 := time.Now()
	work, err := Prepare(ctx, admin, PrepareOptions{Count: o.Count, TrustDomain: t.TrustDomain, KeyType: l.kt})
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(l.log, "prepared in %s; enrolling with %d clients against %s...\n", time.Since(t0).Round(time.Millisecond), o.Clients, t.URL)
	res, err := Enroll(ctx, EnrollLoad{ServerURL: t.URL, Roots: t.Roots, Clients: o.Clients, Duration: o.Duration, HTTP2: o.HTTP2, ServerCPU: l.serverCPU}, work)
	if err == nil && res.Failed() > 0 {
		err = fmt.Errorf("bench enroll: %d of %d enrollments failed", res.Failed(), res.Sent)
	}
	return res, err
}

// RenewOptions configures a renewal run (`certgate bench renew`) or a
// storm (`certgate bench storm`). Errors about a field name
// the command-line flag that sets it.
type RenewOptions struct {
	Target Target
	// Count is the number of agents to enroll, each renewing once
	// (--count; --agents for a storm).
	Count int
	// Clients is the number of renewals in flight at once (not a storm).
	Clients int
	// Duration stops starting renewals after this long; 0: no bound (not a
	// storm).
	Duration time.Duration
	// Storm makes the run a storm: each agent renews once at a moment
	// drawn at random in Window, whatever else is in flight.
	Storm     bool
	Window    time.Duration
	KeyType   string // of the agents' keys; keytype.Default if empty
	Resume    bool   // resume a TLS session per agent instead of a full handshake
	ServerPID int    // see EnrollOptions.ServerPID
	Log       io.Writer
}

// StormGrace is how long after the window the last answer may come for a
// storm to count as renewed inside it: the renewals drawn at its very end
// need their own latency.
const StormGrace = 5 * time.Second

// Check returns the first problem with o's settings (Target aside).
func (o RenewOptions) Check() error {
	_, err := o.check()
	return err
}

func (o RenewOptions) check() (*load, error) {
	switch {
	case o.Storm && o.Count < 1:
		return nil, fmt.Errorf("--agents: %d: need at least one agent", o.Count)
	case o.Storm && o.Window <= 0:
		return nil, fmt.Errorf("--window: %s is not positive", o.Window)
	case !o.Storm && o.Clients < 1:
		return nil, fmt.Errorf("--clients: %d: need at least one client", o.Clients)
	case !o.Storm && o.Count < 1:
		return nil, fmt.Errorf("--count: %d: need at least one agent", o.Count)
	case !o.Storm && o.Duration < 0:
		return nil, fmt.Errorf("--duration: %s is negative", o.Duration)
	}
	return newLoad(o.ServerPID, o.KeyType, o.Log)
}

// RunRenew enrolls o.Count agents through the API and makes a new key and
// CSR for each (not measured), opens a session per agent with Resume, then
// renews every agent once: o.Clients at a time ([Renew]), or for a storm
// at random moments of o.Window ([Storm]). It returns the result with an error when
// a renewal failed, a resumed run did not resume every session, or a storm
// ended later than StormGrace past its window.
func RunRenew(ctx context.Context, o RenewOptions) (*RenewResult, error) {
	l, err := o.check()
	if err != nil {
		return nil, err
	}
	t := o.Target
	admin, err := t.admin(60 * time.Second)
	if err != nil {
		return nil, err
	}
	defer admin.CloseIdleConnections()
	fmt.Fprintf(l.log, "enrolling %d agents with %s keys and making their renewal CSRs (not measured)...\n", o.Count, l.kt)
	t0 := time.Now()
	agents, err := PrepareAgents(ctx, admin, AgentOptions{
		PrepareOptions: PrepareOptions{Count: o.Count, TrustDomain: t.TrustDomain, KeyType: l.kt},
		ServerURL:      t.URL, Roots: t.Roots,
	})
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(l.log, "prepared in %s\n", time.Since(t0).Round(time.Millisecond))
	mode := "full handshakes"
	if o.Resume {
		t0 = time.Now()
		if err := WarmSessions(ctx, t.URL, t.Roots, agents, 32); err != nil {
			return nil, err
		}
		fmt.Fprintf(l.log, "opened a session per agent in %s (not measured)\n", time.Since(t0).Round(time.Millisecond))
		mode = "resumed sessions"
	}
	var res *RenewResult
	name := "bench renew"
	if o.Storm {
		name = "bench storm"
		fmt.Fprintf(l.log, "storm: %d agents renewing at random over %s against %s, %s...\n", o.Count, o.Window, t.URL, mode)
		res, err = Storm(ctx, StormLoad{ServerURL: t.URL, Roots: t.Roots, Window: o.Window, Resume: o.Resume, ServerCPU: l.serverCPU}, agents)
	} else {
		fmt.Fprintf(l.log, "renewing with %d in flight against %s, %s...\n", o.Clients, t.URL, mode)
		res, err = Renew(ctx, RenewLoad{ServerURL: t.URL, Roots: t.Roots, Clients: o.Clients, Duration: o.Duration, Resume: o.Resume, ServerCPU: l.serverCPU}, agents)
	}
	if err != nil {
		return res, err
	}
	switch {
	case res.Failed() > 0:
		err = fmt.Errorf("%s: %d of %d renewals failed", name, res.Failed(), res.Sent)
	case o.Resume && res.Resumed != res.OK:
		err = fmt.Errorf("%s: only %d of %d renewals resumed their session", name, res.Resumed, res.OK)
	case o.Storm && res.Elapsed > o.Window+StormGrace:
		err = fmt.Errorf("bench storm: the last renewal was answered after %s, past the %s window", res.Elapsed.Round(time.Millisecond), o.Window)
	}
	return res, err
}
