// Package apiclient is the Go client of the certgate server's /v1 API, used
// by the CLI, the agent and the gateway. It speaks HTTPS only, trusts only
// the roots it is given (or the root a token pins), and turns the server's
// JSON errors into [*Error] values.
package apiclient

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/certgate/certgate/internal/tlspolicy"
	"github.com/certgate/certgate/internal/wire"
)

// Error is an error answer of the server.
type Error struct {
	Status  int
	Code    string
	Message string
}

func (e *Error) Error() string {
	return fmt.Sprintf("server said %d %s: %s", e.Status, e.Code, e.Message)
}

// Client talks to one server.
type Client struct {
	base   string
	source string
	hc     *http.Client
}

// ConnectError is a request that got no answer from the server: the
// connection, the TLS handshake or the wait failed. It names the URL,
// where that URL came from and what to check.
type ConnectError struct {
	URL    string
	Source string // "--server", "$CERTGATE_SERVER", "server.url in DIR/certgate.yaml", ...
	Err    error
}

func (e *ConnectError) Error() string {
	src := ""
	if e.Source != "" {
		src = " (from " + e.Source + ")"
	}
	return fmt.Sprintf("cannot reach the certgate server at %s%s: %v; %s", e.URL, src, e.Err, hint(e.Err))
}

func (e *ConnectError) Unwrap() error { return e.Err }

// hint says what to check for a failed connection.
func hint(err error) string {
	var (
		dns  *net.DNSError
		op   *net.OpError
		cert *tls.CertificateVerificationError
		host x509.HostnameError
		ua   x509.UnknownAuthorityError
	)
	switch {
	case errors.As(err, &host):
		return "check that the URL's host is one of the server's names (server.hostnames in certgate.yaml, then SIGHUP the server)"
	case errors.As(err, &ua) || errors.As(err, &cert):
		return "check that the trust bundle is this CA's (bundle.pem of the certgate directory)"
	case errors.As(err, &dns):
		return "check the host name in the URL"
	case errors.Is(err, context.DeadlineExceeded) || os.IsTimeout(err):
		return "check that the server is up and that nothing between here and it drops the connection"
	case errors.As(err, &op):
		return "check that certgate server is running and listens on that address (server.listen), and that the URL names it"
	}
	return "check that certgate server is running at that URL"
}

// Options configures a Client.
type Options struct {
	ServerURL string
	Roots     *x509.CertPool
	// Certificate is the client certificate (admin, gateway, agent); nil for
	// enrollment.
	Certificate *tls.Certificate
	// GetClientCertificate, if set, is used instead of Certificate so a
	// rotating certificate is picked up on every new connection.
	GetClientCertificate func(*tls.CertificateRequestInfo) (*tls.Certificate, error)
	// VerifyConnection, if set, replaces the usual server verification
	// (enrollment pins the root by fingerprint instead).
	VerifyConnection func(tls.ConnectionState) error
	Timeout          time.Duration // per request; 30 s if zero
	// URLSource says where ServerURL came from ("--server",
	// "$CERTGATE_SERVER", "server.url in DIR/certgate.yaml"), for the
	// error when the server cannot be reached.
	URLSource string
}

// New returns a Client.
func New(o Options) (*Client, error) {
	u, err := url.Parse(o.ServerURL)
	if err != nil || u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("apiclient: server URL %q must be an https:// URL", o.ServerURL)
	}
	tc := tlspolicy.Apply(&tls.Config{RootCAs: o.Roots})
	if o.Certificate != nil {
		c := o.Certificate
		tc.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return c, nil }
	}
	if o.GetClientCertificate != nil {
		tc.GetClientCertificate = o.GetClientCertificate
	}
	if o.VerifyConnection != nil {
		tc.InsecureSkipVerify = true // replaced by VerifyConnection, which checks the pinned root
		tc.VerifyConnection = o.VerifyConnection
	}
	if o.Timeout == 0 {
		o.Timeout = 30 * time.Second
	}
	tr := &http.Transport{TLSClientConfig: tc, ForceAttemptHTTP2: true, MaxIdleConnsPerHost: 64, IdleConnTimeout: 90 * time.Second}
	return &Client{base: strings.TrimRight(o.ServerURL, "/"), source: o.URLSource, hc: &http.Client{Transport: tr, Timeout: o.Timeout}}, nil
}

// PinnedRoot returns a VerifyConnection that accepts the server only if its
// chain verifies, for serverAuth and the dialled host, up to a root whose
// SHA-256 fingerprint is fp and which the server itself presents (the token
// pins it, so no trust-on-first-use is involved). It returns the verified
// root through *got.
func PinnedRoot(fp string, host string, got **x509.Certificate) func(tls.ConnectionState) error {
	return func(cs tls.ConnectionState) error {
		if len(cs.PeerCertificates) == 0 {
			return errors.New("apiclient: server sent no certificate")
		}
		var root *x509.Certificate
		inters := x509.NewCertPool()
		for _, c := range cs.PeerCertificates[1:] {
			sum := sha256.Sum256(c.Raw)
			if hex.EncodeToString(sum[:]) == fp {
				root = c
			} else {
				inters.AddCert(c)
			}
		}
		if root == nil {
			return fmt.Errorf("apiclient: the server's chain does not contain the root the token pins (%s…)", fp[:16])
		}
		roots := x509.NewCertPool()
		roots.AddCert(root)
		if _, err := cs.PeerCertificates[0].Verify(x509.VerifyOptions{DNSName: host, Roots: roots, Intermediates: inters}); err != nil {
			return fmt.Errorf("apiclient: server certificate: %w", err)
		}
		*got = root
		return nil
	}
}

// BaseURL is the server URL requests go to, without a trailing slash.
func (c *Client) BaseURL() string { return c.base }

// CloseIdleConnections closes idle keep-alive connections.
func (c *Client) CloseIdleConnections() { c.hc.CloseIdleConnections() }

// do sends a request with an optional JSON body and decodes a JSON answer.
func (c *Client) do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("apiclient: %w", err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return fmt.Errorf("apiclient: %w", err)
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("apiclient: %s %s: %w", method, path, err)
		}
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // the URL is said once, below
		}
		return fmt.Errorf("apiclient: %s %s: %w", method, path, &ConnectError{URL: c.base, Source: c.source, Err: err})
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("apiclient: %s %s: %w", method, path, err)
	}
	if resp.StatusCode >= 300 {
		e, ok := wire.DecodeError(data)
		if !ok {
			return &Error{Status: resp.StatusCode, Code: "http", Message: strings.TrimSpace(string(data))}
		}
		return &Error{Status: resp.StatusCode, Code: e.Code, Message: e.Message}
	}
	if out == nil {
		return nil
	}
	if raw, ok := out.(*[]byte); ok {
		*raw = data // a body that is not JSON (a signed note, PEM)
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("apiclient: %s %s: bad answer: %w", method, path, err)
	}
	return nil
}

// CreateToken mints an enrollment token for an identity that holds no
// role (admin, or an issuer inside its scope).
func (c *Client) CreateToken(ctx context.Context, identity string, ttl time.Duration) (wire.CreateTokenResponse, error) {
	return c.CreateRoleToken(ctx, identity, "", ttl)
}

// CreateRoleToken mints an enrollment token; role names, comma-separated,
// the roles the identity holds ("" for none): a token for an identity that
// holds a role is minted only when asked for by name (admin).
func (c *Client) CreateRoleToken(ctx context.Context, identity, role string, ttl time.Duration) (wire.CreateTokenResponse, error) {
	var out wire.CreateTokenResponse
	req := wire.CreateTokenRequest{Identity: identity, Role: role}
	if ttl != 0 {
		req.TTL = ttl.String()
	}
	err := c.do(ctx, http.MethodPost, wire.PathTokens, req, &out)
	return out, err
}

// Roles lists every role grant (admin, auditor).
func (c *Client) Roles(ctx context.Context) ([]wire.RoleGrant, error) {
	var out wire.RoleList
	err := c.do(ctx, http.MethodGet, wire.PathRoles, nil, &out)
	return out.Grants, err
}

// GrantRole grants a role (admin).
func (c *Client) GrantRole(ctx context.Context, ch wire.RoleChange) (wire.RoleGrant, error) {
	var out wire.RoleGrant
	err := c.do(ctx, http.MethodPost, wire.PathRoles, ch, &out)
	return out, err
}

// RevokeRole removes a role grant (admin).
func (c *Client) RevokeRole(ctx context.Context, ch wire.RoleChange) (wire.RoleGrant, error) {
	var out wire.RoleGrant
	err := c.do(ctx, http.MethodPost, wire.PathRolesRevoke, ch, &out)
	return out, err
}

// Enroll redeems a token for a certificate.
func (c *Client) Enroll(ctx context.Context, token, csrPEM string) (wire.EnrollResponse, error) {
	var out wire.EnrollResponse
	err := c.do(ctx, http.MethodPost, wire.PathEnroll, wire.EnrollRequest{Token: token, CSR: csrPEM}, &out)
	return out, err
}

// Renew asks for a successor of the client certificate this client
// presents, for the key of csrPEM.
func (c *Client) Renew(ctx context.Context, csrPEM string) (wire.EnrollResponse, error) {
	var out wire.EnrollResponse
	err := c.do(ctx, http.MethodPost, wire.PathRenew, wire.RenewRequest{CSR: csrPEM}, &out)
	return out, err
}

// ListFilter narrows ListCertificates.
type ListFilter struct {
	Identity, Prefix, Status string
	Limit                    int
}

// ListCertificates lists certificate records (admin).
func (c *Client) ListCertificates(ctx context.Context, f ListFilter) ([]wire.Certificate, error) {
	q := url.Values{}
	for k, v := range map[string]string{"identity": f.Identity, "prefix": f.Prefix, "status": f.Status} {
		if v != "" {
			q.Set(k, v)
		}
	}
	if f.Limit > 0 {
		q.Set("limit", strconv.Itoa(f.Limit))
	}
	var out wire.CertificateList
	path := wire.PathCertificates
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	err := c.do(ctx, http.MethodGet, path, nil, &out)
	return out.Certificates, err
}

// ShowCertificate returns one certificate record with its PEM (admin).
func (c *Client) ShowCertificate(ctx context.Context, serial string) (wire.Certificate, error) {
	var out wire.Certificate
	err := c.do(ctx, http.MethodGet, wire.PathCertificates+"/"+url.PathEscape(serial), nil, &out)
	return out, err
}

// Revoke revokes what req selects (admin).
func (c *Client) Revoke(ctx context.Context, req wire.RevokeRequest) ([]wire.Revocation, error) {
	var out wire.RevokeResponse
	err := c.do(ctx, http.MethodPost, wire.PathRevoke, req, &out)
	return out.Revoked, err
}

// AuditRecords returns up to limit audit records after seq (admin).
func (c *Client) AuditRecords(ctx context.Context, after int64, limit int) ([]wire.AuditRecord, error) {
	var out wire.AuditRecords
	err := c.do(ctx, http.MethodGet, fmt.Sprintf("%s?after=%d&limit=%d", wire.PathAudit, after, limit), nil, &out)
	return out.Records, err
}

// AuditCheckpoint returns the audit log's newest signed checkpoint, a
// signed note (public; the caller verifies it).
func (c *Client) AuditCheckpoint(ctx context.Context) ([]byte, error) {
	var note []byte
	err := c.do(ctx, http.MethodGet, wire.PathAuditCheckpoint, nil, &note)
	return note, err
}

// AuditKey returns the audit key's public half, PEM (public).
func (c *Client) AuditKey(ctx context.Context) ([]byte, error) {
	var pemKey []byte
	err := c.do(ctx, http.MethodGet, wire.PathAuditKey, nil, &pemKey)
	return pemKey, err
}

// Unrecorded returns the certificates and revocations the store holds
// without their audit record (admin, auditor).
func (c *Client) Unrecorded(ctx context.Context) ([]wire.UnrecordedChange, error) {
	var out wire.Unrecorded
	err := c.do(ctx, http.MethodGet, wire.PathAuditUnrecorded, nil, &out)
	return out.Changes, err
}

// Revocations returns the snapshot of revoked, unexpired certificates
// (gateway or admin).
func (c *Client) Revocations(ctx context.Context) (position int64, revoked []wire.Revoked, err error) {
	var out wire.Revocations
	err = c.do(ctx, http.MethodGet, wire.PathRevocations, nil, &out)
	return out.Position, out.Revoked, err
}

// CA returns the CA's public state: roots, published intermediates and
// revoked CA keys (public).
func (c *Client) CA(ctx context.Context) (wire.CA, error) {
	var out wire.CA
	err := c.do(ctx, http.MethodGet, wire.PathCA, nil, &out)
	return out, err
}

// ReportUsage sends a gateway's usage report (gateway).
func (c *Client) ReportUsage(ctx context.Context, r wire.UsageReport) (wire.UsageAck, error) {
	var out wire.UsageAck
	err := c.do(ctx, http.MethodPost, wire.PathUsage, r, &out)
	return out, err
}

// IdentityFilter narrows ListIdentities: Stale and Expiring are windows
// such as "30d" (either flag keeps an identity when both are set).
type IdentityFilter struct {
	Identity, Stale, Expiring string
}

// ListIdentities returns the inventory of identities with their last use
// (admin).
func (c *Client) ListIdentities(ctx context.Context, f IdentityFilter) (wire.IdentityList, error) {
	q := url.Values{}
	for k, v := range map[string]string{"identity": f.Identity, "stale": f.Stale, "expiring": f.Expiring} {
		if v != "" {
			q.Set(k, v)
		}
	}
	path := wire.PathIdentities
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	var out wire.IdentityList
	err := c.do(ctx, http.MethodGet, path, nil, &out)
	return out, err
}
