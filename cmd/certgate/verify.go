package main

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/certgate/certgate/internal/clock"
	"github.com/certgate/certgate/internal/diagnose"
	"github.com/certgate/certgate/internal/ocspcheck"
	"github.com/certgate/certgate/internal/pemutil"
	"github.com/certgate/certgate/internal/store"
)

// errVerifyFailed makes `certgate verify` exit 1 when the chain does not
// verify; the reasons are already on stdout.
var errVerifyFailed = errors.New("verify: the chain does not verify for client auth")

type verifyOptions struct {
	bundle      string // PEM file of trusted roots
	cert        string // PEM file: leaf first, then intermediates
	at          string // RFC 3339; empty means now
	trustDomain string
	storeURL    string
	server      string // asked at /ocsp when the certificate names no OCSP URL
	offline     bool
	json        bool
}

func newVerifyCmd(s streams) *cobra.Command {
	var o verifyOptions
	cmd := &cobra.Command{
		Use:   "verify --bundle FILE --cert FILE",
		Short: "Explain why a certificate chain does or does not verify for client auth",
		Long: `Verify a client certificate chain against a trust bundle, for client auth, at a
given time, and explain the outcome in plain words: expired or not yet valid (with
the dates), unknown authority, broken signature, wrong extended key usage, a URI
outside a CA's name constraints, a missing or invalid SPIFFE ID, the wrong trust
domain and a revocation.

Revocation is checked by default: with OCSP at the certificate's own OCSP
URL, or at the server's /ocsp (--server, $CERTGATE_SERVER) when it names
none; with --store, in the store itself; --offline skips it. The line
"revocation:" says which was used and what it answered, and a check that
could not be done fails the verdict: it is never read as "not revoked".

The first line is the verdict ("OK: ..." or "FAIL: ..." with every problem
found), then one line per certificate of the chain. The exit status is 0 when
the chain verifies for client auth, 1 otherwise.`,
		Example: `  certgate verify --bundle bundle.pem --cert cert.pem
  certgate verify --bundle bundle.pem --cert cert.pem --at 2026-06-01T00:00:00Z --json
  certgate verify --bundle DIR/bundle.pem --cert cert.pem --store DIR/certgate.db
  certgate verify --bundle bundle.pem --cert cert.pem --offline`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runVerify(cmd.Context(), s, clock.Real{}, o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.bundle, "bundle", "", "PEM file of the trusted root certificates")
	f.StringVar(&o.cert, "cert", "", "PEM file of the chain to verify: the leaf first, then intermediates")
	f.StringVar(&o.at, "at", "", "verify at this time (RFC 3339) instead of now")
	f.StringVar(&o.trustDomain, "trust-domain", "", "require the SPIFFE ID to be in this trust domain")
	f.StringVar(&o.storeURL, "store", "", "store to check revocation in (a SQLite path or sqlite:///path URL) instead of OCSP")
	f.StringVar(&o.server, "server", "", "certgate server asked at /ocsp when the certificate names no OCSP URL (default $CERTGATE_SERVER)")
	f.BoolVar(&o.offline, "offline", false, "do not check revocation")
	f.BoolVar(&o.json, "json", false, "print the report as JSON")
	_ = cmd.MarkFlagRequired("bundle")
	_ = cmd.MarkFlagRequired("cert")
	return cmd
}

func runVerify(ctx context.Context, s streams, clk clock.Clock, o verifyOptions) error {
	at := clk.Now()
	if o.at != "" {
		t, err := time.Parse(time.RFC3339, o.at)
		if err != nil {
			return fmt.Errorf("verify: --at %q is not an RFC 3339 time such as 2026-05-01T12:00:00Z", o.at)
		}
		at = t
	}
	bundle, err := readCertificates("--bundle", o.bundle)
	if err != nil {
		return err
	}
	chain, err := readCertificates("--cert", o.cert)
	if err != nil {
		return err
	}
	in := diagnose.Input{Bundle: bundle, Chain: chain, At: at, TrustDomain: o.trustDomain, Offline: o.offline}
	if !o.offline && o.storeURL == "" {
		in.Status = statusChecker(o, bundle, clk)
	}
	if o.storeURL != "" && o.offline {
		return errors.New("verify: --store and --offline: choose one")
	}
	if o.storeURL != "" {
		st, err := openStoreForVerify(ctx, o.storeURL)
		if err != nil {
			return fmt.Errorf("verify: --store: %w", err)
		}
		defer st.Close()
		in.Revocations = st
	}

	rep := diagnose.Diagnose(ctx, in)
	if o.json {
		err = writeVerifyJSON(s.out, rep)
	} else {
		err = writeVerifyText(s.out, rep)
	}
	if err != nil {
		return fmt.Errorf("verify: write report: %w", err)
	}
	if !rep.OK {
		return errVerifyFailed
	}
	return nil
}

// openStoreForVerify opens an existing store. Opening a SQLite path that
// does not exist would create an empty database, and every serial would then
// read as unknown to it: a typo must be an error instead.
func openStoreForVerify(ctx context.Context, url string) (store.Store, error) {
	kind, target, err := store.ParseURL(url)
	if err != nil {
		return nil, err
	}
	if kind == "sqlite" {
		if _, err := os.Stat(target); err != nil {
			return nil, err
		}
	}
	return store.Open(ctx, url)
}

// readCertificates reads a PEM file of certificates; flag names the flag the
// path came from, for the error message.
func readCertificates(flag, path string) ([]*x509.Certificate, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("verify: %s: %w", flag, err)
	}
	defer f.Close()
	// Read one byte past the limit so pemutil reports an oversized file
	// instead of a truncated one.
	data, err := io.ReadAll(io.LimitReader(f, pemutil.MaxSize+1))
	if err != nil {
		return nil, fmt.Errorf("verify: %s: %w", flag, err)
	}
	certs, err := pemutil.ParseCertificates(data)
	if err != nil {
		return nil, fmt.Errorf("verify: %s %s: %w", flag, path, err)
	}
	return certs, nil
}

// verifyJSON is the stable JSON shape of `certgate verify --json`.
type verifyJSON struct {
	OK       bool              `json:"ok"`
	Verdict  string            `json:"verdict"`
	Identity string            `json:"identity"`
	At       time.Time         `json:"at"`
	Reasons  []diagnose.Reason `json:"reasons"`
	Warnings []diagnose.Reason `json:"warnings"`
	Chain    []diagnose.Cert   `json:"chain"`
	// Revocation says how revocation was checked and the answer.
	Revocation string `json:"revocation"`
}

func writeVerifyJSON(w io.Writer, rep diagnose.Report) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(verifyJSON{
		OK: rep.OK, Verdict: rep.Verdict(), Identity: rep.Identity, At: rep.At.UTC(),
		Reasons: rep.Reasons, Warnings: rep.Warnings, Chain: rep.Chain, Revocation: rep.Revocation,
	})
}

func writeVerifyText(w io.Writer, rep diagnose.Report) error {
	var b strings.Builder
	b.WriteString(rep.Verdict() + "\n")
	b.WriteString("revocation: " + rep.Revocation + "\n")
	for _, wr := range rep.Warnings {
		b.WriteString("warning: " + wr.Message + "\n")
	}
	if len(rep.Chain) > 0 {
		fmt.Fprintf(&b, "chain at %s:\n", rep.At.UTC().Format(time.RFC3339))
	}
	for _, c := range rep.Chain {
		fmt.Fprintf(&b, "  %-12s %q issued by %q, valid %s to %s, serial %s",
			c.Role, c.Subject, c.Issuer,
			c.NotBefore.Format(time.RFC3339), c.NotAfter.Format(time.RFC3339), c.Serial)
		if c.SPIFFEID != "" {
			b.WriteString(", " + c.SPIFFEID)
		}
		if c.IsCA {
			b.WriteString(", CA")
		}
		eku := "any"
		if len(c.EKU) > 0 {
			eku = strings.Join(c.EKU, ",")
		}
		b.WriteString(", EKU " + eku + "\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// statusChecker asks OCSP responders for verify: a plain-HTTP status
// listener, or the server over HTTPS trusting the bundle being verified
// against.
func statusChecker(o verifyOptions, bundle []*x509.Certificate, clk clock.Clock) ocspcheck.Checker {
	server, source := o.server, "--server"
	if server == "" {
		server, source = os.Getenv("CERTGATE_SERVER"), "$CERTGATE_SERVER"
	}
	roots := x509.NewCertPool()
	for _, c := range bundle {
		roots.AddCert(c)
	}
	return ocspcheck.Checker{Client: ocspcheck.HTTPClient(roots, 10*time.Second), ServerURL: server, ServerSource: source, Now: clk.Now}
}
