package ca

import (
	"context"
	"crypto"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync/atomic"
	"time"

	"github.com/certgate/certgate/internal/audit"
	"github.com/certgate/certgate/internal/clock"
	"github.com/certgate/certgate/internal/csr"
	"github.com/certgate/certgate/internal/identity"
	"github.com/certgate/certgate/internal/roles"
	"github.com/certgate/certgate/internal/store"
	"github.com/certgate/certgate/internal/token"
)

// Store is what the CA service needs from the store.
type Store interface {
	CreateToken(ctx context.Context, t store.Token, a audit.Entry) error
	RecordIssuance(ctx context.Context, is store.Issuance) error
	Revoke(ctx context.Context, req store.RevokeRequest) ([]store.Revocation, error)
}

// Token errors. An unknown token ID and a wrong secret are the same error,
// so probing reveals nothing about which tokens exist.
var (
	ErrTokenInvalid = errors.New("ca: token is not valid")
	ErrTokenUsed    = fmt.Errorf("ca: %w", store.ErrTokenUsed)
	ErrTokenExpired = fmt.Errorf("ca: %w", store.ErrTokenExpired)
)

// ServiceOptions configures a Service.
type ServiceOptions struct {
	// Hierarchy is the CA's state; it may be replaced while the service
	// runs ([Service.SetHierarchy]). If nil, Issuer and Roots make a static
	// one.
	Hierarchy   *Hierarchy
	Issuer      *Issuer
	Roots       []*x509.Certificate // the trust bundle handed to clients
	Store       Store
	Clock       clock.Clock
	ServerURL   string        // put into tokens
	TokenTTL    time.Duration // default TTL; token.DefaultTTL if zero
	MaxTokenTTL time.Duration // longest TTL an admin may ask for; 24h if zero
	// MaxPrivilegedTokenTTL is the longest TTL of a token for an identity
	// that holds a role; 1h if zero.
	MaxPrivilegedTokenTTL time.Duration
	// Roles, if set, says which identities hold the gateway role (their
	// certificates also serve TLS). If nil, the store's role grants are
	// read when it has them (a RoleStore).
	Roles  RoleStore
	Client Profile // ClientProfile if zero
}

// Service is the authority: it mints tokens, issues and revokes
// certificates, and records each step durably with its audit record.
type Service struct {
	o           ServiceOptions
	trustDomain string
	h           atomic.Pointer[Hierarchy]
	prints      atomic.Pointer[rootPrints] // of h, see rootPrints
	reload      atomic.Pointer[func(context.Context) error]
	// clientLifetime is the client profile's lifetime, changed by a
	// server's reload (SIGHUP) while issuances run.
	clientLifetime atomic.Int64
	// grants are the role grants last read from the store, used to pick
	// the profile of an issuance when rolesChecked: the store then checks
	// the choice under its write lock (store.Issuance.GatewayRole) and a
	// stale copy costs one more attempt with grants read afresh, never a
	// certificate of the wrong profile.
	grants       atomic.Pointer[[]roles.Grant]
	rolesChecked bool
}

// SetClientLifetime changes the lifetime of the client and gateway
// certificates issued from now on (a reload of profiles.client_lifetime).
func (s *Service) SetClientLifetime(d time.Duration) { s.clientLifetime.Store(int64(d)) }

// ClientLifetime is the lifetime of client certificates issued now.
func (s *Service) ClientLifetime() time.Duration { return time.Duration(s.clientLifetime.Load()) }

// OnStale sets how the service brings its hierarchy up to date when the
// store refuses a certificate of an intermediate that may no longer sign
// (another process rotated the CA since the last reload): the issuance is
// then tried once more with the reloaded hierarchy.
func (s *Service) OnStale(reload func(context.Context) error) { s.reload.Store(&reload) }

// NewService returns a Service.
func NewService(o ServiceOptions) (*Service, error) {
	if o.Hierarchy == nil && o.Issuer != nil && len(o.Roots) > 0 {
		o.Hierarchy = StaticHierarchy(o.Issuer, o.Roots)
	}
	if o.Hierarchy == nil || o.Store == nil || o.Clock == nil {
		return nil, errors.New("ca: service needs an issuer, roots, a store and a clock")
	}
	if o.TokenTTL == 0 {
		o.TokenTTL = token.DefaultTTL
	}
	if o.MaxPrivilegedTokenTTL == 0 {
		o.MaxPrivilegedTokenTTL = time.Hour
	}
	rolesChecked := false
	if o.Roles == nil {
		// Grants read from the store that records the certificate can be
		// checked by it in the recording transaction.
		o.Roles, rolesChecked = o.Store.(RoleStore)
	}
	if o.MaxTokenTTL == 0 {
		o.MaxTokenTTL = 24 * time.Hour
	}
	if o.Client.Name == "" {
		o.Client = ClientProfile
	}
	svc := &Service{o: o, trustDomain: o.Hierarchy.Active.trustDomain, rolesChecked: rolesChecked}
	svc.h.Store(o.Hierarchy)
	svc.clientLifetime.Store(int64(o.Client.Lifetime))
	o.Hierarchy, o.Issuer, o.Roots = nil, nil, nil
	return svc, nil
}

// Hierarchy returns the CA's current state.
func (s *Service) Hierarchy() *Hierarchy { return s.h.Load() }

// SetHierarchy replaces the CA's state: the next issuance signs with h's
// active intermediate. The trust domain cannot change.
func (s *Service) SetHierarchy(h *Hierarchy) error {
	if h == nil || h.Active == nil {
		return errors.New("ca: no hierarchy")
	}
	if h.Active.trustDomain != s.trustDomain {
		return fmt.Errorf("ca: hierarchy for trust domain %q, not %q", h.Active.trustDomain, s.trustDomain)
	}
	s.h.Store(h)
	return nil
}

// Issuer returns the active intermediate's issuer.
func (s *Service) Issuer() *Issuer { return s.h.Load().Active }

// Roots returns the trust bundle.
func (s *Service) Roots() []*x509.Certificate { return s.h.Load().Roots }

// RootFingerprint is the hex SHA-256 of the root the active intermediate
// chains to (the first root of the bundle if none does), as put in tokens.
func (s *Service) RootFingerprint() string { return s.rootPrints().active }

// TrustsRoot reports whether the root with SHA-256 fingerprint fp (hex) is
// in the trust bundle: a token pinned to it may be redeemed.
func (s *Service) TrustsRoot(fp string) bool {
	return slices.Contains(s.rootPrints().all, fp)
}

// rootPrints are the fingerprints of a hierarchy's roots, worked out once
// per hierarchy (which is immutable): finding the active root checks a
// signature, and every token minted and every enrollment asks.
type rootPrints struct {
	h      *Hierarchy
	active string
	all    []string
}

func (s *Service) rootPrints() *rootPrints {
	h := s.h.Load()
	if p := s.prints.Load(); p != nil && p.h == h {
		return p
	}
	p := &rootPrints{h: h}
	for _, r := range h.Roots {
		fp := Fingerprint(r)
		p.all = append(p.all, fp)
		if p.active == "" && h.Active.cert.CheckSignatureFrom(r) == nil {
			p.active = fp
		}
	}
	if p.active == "" {
		p.active = p.all[0]
	}
	s.prints.Store(p)
	return p
}

// TrustDomain is the trust domain this CA issues for.
func (s *Service) TrustDomain() string { return s.trustDomain }

// MaxPrivilegedTokenTTL is the longest a token for an identity holding a
// role may live.
func (s *Service) MaxPrivilegedTokenTTL() time.Duration { return s.o.MaxPrivilegedTokenTTL }

// RoleStore reads role grants.
type RoleStore interface {
	RoleGrants(ctx context.Context) ([]roles.Grant, error)
}

// CreateToken mints a token for id, valid for ttl (the default if zero),
// and stores its hash. The returned token carries the secret: give it to
// the client and forget it.
func (s *Service) CreateToken(ctx context.Context, actor string, id identity.ID, ttl time.Duration) (token.Token, error) {
	return s.MintToken(ctx, TokenRequest{Actor: actor, Identity: id, TTL: ttl})
}

// TokenRequest is a token to mint.
type TokenRequest struct {
	Actor    string // who mints it: recorded in the audit log
	Identity identity.ID
	TTL      time.Duration // the default if zero
	// Roles, if not empty, says the token is privileged: its identity
	// holds these roles. Its TTL is capped by MaxPrivilegedTokenTTL and
	// the audit record names them.
	Roles []string
	// Scope is the issuer scope that allowed an issuer to mint it, for the
	// audit record; empty when an admin mints.
	Scope string
}

// MintToken mints the token r describes; see [Service.CreateToken].
func (s *Service) MintToken(ctx context.Context, r TokenRequest) (token.Token, error) {
	id, ttl, actor := r.Identity, r.TTL, r.Actor
	if !id.MemberOf(s.TrustDomain()) {
		return token.Token{}, fmt.Errorf("%w: %s is outside trust domain %q", ErrIdentity, id, s.TrustDomain())
	}
	if ttl == 0 {
		ttl = s.o.TokenTTL
		if len(r.Roles) > 0 {
			ttl = min(ttl, s.o.MaxPrivilegedTokenTTL)
		}
	}
	if ttl < 0 || ttl > s.o.MaxTokenTTL {
		return token.Token{}, fmt.Errorf("ca: token TTL %s is out of range (0 to %s)", ttl, s.o.MaxTokenTTL)
	}
	if len(r.Roles) > 0 && ttl > s.o.MaxPrivilegedTokenTTL {
		return token.Token{}, fmt.Errorf("ca: token TTL %s is longer than the %s a token for an identity holding a role may live (tokens.max_privileged_ttl)",
			ttl, s.o.MaxPrivilegedTokenTTL)
	}
	now := s.o.Clock.Now()
	t, err := token.Mint(token.Claims{ServerURL: s.o.ServerURL, Identity: id, ExpiresAt: now.Add(ttl), RootFingerprint: s.RootFingerprint()})
	if err != nil {
		return token.Token{}, fmt.Errorf("ca: %w", err)
	}
	d := map[string]any{"identity": id.String(), "expires_at": t.ExpiresAt}
	if len(r.Roles) > 0 {
		d["privileged_roles"] = r.Roles
	}
	if r.Scope != "" {
		d["issuer_scope"] = r.Scope
	}
	detail, _ := json.Marshal(d)
	err = s.o.Store.CreateToken(ctx, store.Token{
		ID: t.ID, SecretHash: token.HashSecret(t.Secret), Identity: id.String(),
		CreatedBy: actor, CreatedAt: now, ExpiresAt: t.ExpiresAt,
	}, audit.Entry{Time: now, Actor: actor, Action: audit.ActionTokenCreate, Subject: t.ID, Detail: string(detail)})
	if err != nil {
		return token.Token{}, fmt.Errorf("ca: store token: %w", err)
	}
	return t, nil
}

// Issued is a certificate that has been recorded and may be handed out.
type Issued struct {
	Cert   *x509.Certificate
	Chain  []*x509.Certificate // intermediates, leaf excluded
	Roots  []*x509.Certificate
	Record store.Certificate
}

// Enroll redeems tok for the certificate the CSR asks for. The CSR must
// prove possession of its key and ask for exactly the identity the token
// names.
//
// The token is not read before signing: the CSR is checked against the
// identity the token string claims, the certificate is signed, and the
// store's transaction that records it checks the token's stored secret
// hash (in constant time), its identity, that it is unused and unexpired,
// and redeems it. If any of that fails, the signed certificate is dropped
// here and never leaves the process. This saves a store read per
// enrollment; a request with a made-up token costs a signature instead of
// a read, as a request with a real token does.
func (s *Service) Enroll(ctx context.Context, tok token.Token, csrPEM []byte) (Issued, error) {
	id := tok.Identity
	if id.IsZero() || tok.ID == "" || len(tok.Secret) == 0 {
		return Issued{}, ErrTokenInvalid
	}
	return s.issueFor(ctx, id, csrPEM, nil, issueMeta{
		obtained: store.ObtainedEnroll, actor: id.String(), tokenID: tok.ID,
		tokenHash: token.HashSecret(tok.Secret), tokenIdentity: id.String(),
	})
}

// EnrollBootstrap issues the certificate the CSR asks for to a device that
// authenticated with a bootstrap certificate (EST, RFC 7030 §3.3.2): the
// caller has verified that certificate and bound it to id; actor names it
// in the audit record (its fingerprint). The CSR must ask for exactly id.
// Role prefixes are never granted this way: they come from tokens an
// operator mints.
func (s *Service) EnrollBootstrap(ctx context.Context, id identity.ID, csrPEM []byte, actor string) (Issued, error) {
	if !id.MemberOf(s.TrustDomain()) {
		return Issued{}, fmt.Errorf("%w: %s is outside trust domain %q", ErrIdentity, id, s.TrustDomain())
	}
	if id.Under(identity.AdminPrefix) || id.Under(identity.GatewayPrefix) {
		return Issued{}, fmt.Errorf("%w: %s has a role; a bootstrap certificate cannot enroll it", ErrIdentity, id)
	}
	return s.issueFor(ctx, id, csrPEM, nil, issueMeta{obtained: store.ObtainedBootstrap, actor: actor})
}

// Renewal errors. A client that gets one of these must enroll again with a
// new token.
var (
	ErrRenewRevoked = errors.New("ca: certificate is revoked; enroll again with a new token")
	ErrRenewExpired = errors.New("ca: certificate has expired; enroll again with a new token")
	ErrRenewUnknown = errors.New("ca: certificate was not issued by this CA")
	ErrSameKey      = errors.New("ca: renewal must use a new key")
)

// Renew issues a successor of current, the verified certificate the client
// authenticated with, for the CSR's new key. The identity stays the same;
// current must be one this CA recorded, unexpired and unrevoked: the store
// checks that in the transaction that records the successor, so a
// revocation committed first always prevents the renewal.
func (s *Service) Renew(ctx context.Context, current *x509.Certificate, csrPEM []byte) (Issued, error) {
	id, err := identity.FromCertificateIn(current, s.TrustDomain())
	if err != nil {
		return Issued{}, fmt.Errorf("%w: %w", ErrIdentity, err)
	}
	if !s.o.Clock.Now().Before(current.NotAfter) {
		return Issued{}, ErrRenewExpired
	}
	newKey := func(req csr.Request) error {
		type equaler interface{ Equal(crypto.PublicKey) bool }
		if k, ok := req.PublicKey.(equaler); ok && k.Equal(current.PublicKey) {
			return ErrSameKey
		}
		return nil
	}
	return s.issueFor(ctx, id, csrPEM, newKey, issueMeta{
		obtained: store.ObtainedRenew, actor: id.String(),
		renewedFrom: SerialHex(current.SerialNumber), renewedFingerprint: Fingerprint(current),
	})
}

// issueFor checks the CSR against id and the profile id's roles call for,
// then issues it. The profile is chosen from the service's copy of the role
// grants when the store can check that choice in the recording transaction
// (store.Issuance.GatewayRole); if the grants changed since they were read
// (store.ErrRolesChanged, nothing written) the CSR is checked and signed once
// more with grants read afresh. check, if set, is an extra check of the
// parsed CSR.
func (s *Service) issueFor(ctx context.Context, id identity.ID, csrPEM []byte, check func(csr.Request) error, m issueMeta) (Issued, error) {
	for attempt := 0; ; attempt++ {
		prof, opts, gateway, err := s.profileFor(ctx, id, attempt > 0)
		if err != nil {
			return Issued{}, err
		}
		req, err := csr.ParseAndCheck(csrPEM, id, opts...)
		if err != nil {
			if attempt == 0 && gateway != nil && !*gateway {
				// The copy may predate a gateway grant (made through
				// this server's API, or another replica's): the host
				// names it refused are checked again with the grants
				// as they are now.
				continue
			}
			return Issued{}, err
		}
		if check != nil {
			if err := check(req); err != nil {
				return Issued{}, err
			}
		}
		m.gatewayRole = gateway
		iss, err := s.issue(ctx, requestOf(req), prof, m)
		if errors.Is(err, store.ErrRolesChanged) && attempt == 0 {
			continue
		}
		return iss, err
	}
}

// profileFor picks the profile of an enrollment or renewal by role: the
// certificates of identities granted the gateway role also serve TLS
// (serverAuth, with the host names the CSR asks for). So that a revoked
// role takes effect at the next renewal on every replica, the choice is
// checked against the grants in the store's recording transaction
// (gateway, non-nil then); the grants it is made from are the service's
// copy, read from the store if fresh is set or there is none yet. Without a
// store that checks, the grants are read for every issuance (gateway nil).
func (s *Service) profileFor(ctx context.Context, id identity.ID, fresh bool) (p Profile, opts []csr.Option, gateway *bool, err error) {
	p = s.o.Client
	if s.o.Roles != nil {
		grants := s.grants.Load()
		if grants == nil || fresh || !s.rolesChecked {
			g, err := s.o.Roles.RoleGrants(ctx)
			if err != nil {
				return Profile{}, nil, nil, fmt.Errorf("ca: role grants: %w", err)
			}
			grants = &g
			s.grants.Store(grants)
		}
		gw := roles.For(*grants, id.String()).Gateway
		if s.rolesChecked {
			gateway = &gw
		}
		if gw {
			p = GatewayProfile
			opts = []csr.Option{csr.AllowHostnames()}
		}
	}
	p.Lifetime = s.ClientLifetime()
	return p, opts, gateway, nil
}

func requestOf(r csr.Request) Request {
	return Request{PublicKey: r.PublicKey, Identity: r.Identity, DNSNames: r.DNSNames, IPAddresses: r.IPAddresses}
}

// IssueDirect issues without a token, for the CA's own use: the admin
// certificate at init, a server's serving certificate. actor is recorded.
func (s *Service) IssueDirect(ctx context.Context, r Request, p Profile, obtained, actor string) (Issued, error) {
	return s.issue(ctx, r, p, issueMeta{obtained: obtained, actor: actor})
}

// IssueDirectBy is IssueDirect with a given issuer of the hierarchy that
// answers status (the active or a retiring intermediate): the delegated
// OCSP signer of a retiring intermediate is signed by it.
func (s *Service) IssueDirectBy(ctx context.Context, iss *Issuer, r Request, p Profile, obtained, actor string) (Issued, error) {
	return s.issue(ctx, r, p, issueMeta{obtained: obtained, actor: actor, issuer: iss})
}

type issueMeta struct {
	issuer                                *Issuer // nil: the active intermediate
	obtained, actor, tokenID, renewedFrom string
	// Checked by the store in the recording transaction: the token's
	// secret hash and identity, the renewed certificate's fingerprint.
	tokenHash                         []byte
	tokenIdentity, renewedFingerprint string
	gatewayRole                       *bool
}

// issue is the pipeline: check (Prepare) -> sign -> record durably with its
// audit record -> return. A serial collision (astronomically unlikely with
// 159 random bits, but checked by the store) gets one fresh serial.
// issueDetail is the detail of an issuance's audit entry. Its fields are
// in the order of their names, so it encodes as the map it replaced did
// (encoding/json sorts a map's keys): entries written before and after read
// the same (TestIssueDetailJSON). A struct, because marshalling the map was
// ~1% of the server's CPU per enrollment.
type issueDetail struct {
	Fingerprint string    `json:"fingerprint"`
	Identity    string    `json:"identity"`
	NotAfter    time.Time `json:"not_after"`
	Obtained    string    `json:"obtained"`
	Profile     string    `json:"profile"`
	RenewedFrom string    `json:"renewed_from"`
	Token       string    `json:"token"`
}

func (s *Service) issue(ctx context.Context, r Request, p Profile, m issueMeta) (Issued, error) {
	h := s.h.Load()
	iss, chain := h.Active, h.Chain
	if m.issuer != nil && m.issuer != iss {
		// The caller's issuer may come from an earlier hierarchy: a reload
		// (a rotation, the schedule retiring an intermediate, another
		// replica's change) builds new Issuer values for the same
		// certificates, and the status service may hold the old one for a
		// moment. It is the same issuer if the current hierarchy has the
		// same certificate answering status; sign with the current value.
		cur := h.Status[m.issuer.KeyID()]
		if cur == nil || !cur.cert.Equal(m.issuer.cert) {
			return Issued{}, fmt.Errorf("ca: issuer %s does not answer for its certificates any more", m.issuer.KeyID())
		}
		if cur != iss {
			iss, chain = cur, []*x509.Certificate{cur.cert}
		}
	}
	for attempt := 0; ; attempt++ {
		prepared, err := iss.Prepare(r, p)
		if err != nil {
			return Issued{}, err
		}
		cert, err := iss.Issue(prepared)
		if err != nil {
			return Issued{}, err
		}
		rec := store.Certificate{
			Serial:      SerialHex(cert.SerialNumber),
			Identity:    r.Identity.String(),
			CommonName:  cert.Subject.CommonName,
			Fingerprint: Fingerprint(cert),
			NotBefore:   cert.NotBefore,
			NotAfter:    cert.NotAfter,
			KeyType:     string(prepared.KeyType()),
			Obtained:    m.obtained,
			RenewedFrom: m.renewedFrom,
			TokenID:     m.tokenID,
			IssuedAt:    s.o.Clock.Now(),
			DER:         cert.Raw,
			Issuer:      iss.KeyID(),
		}
		action := audit.ActionIssue
		if m.obtained == store.ObtainedRenew {
			action = audit.ActionRenew
		}
		detail, _ := json.Marshal(issueDetail{
			Fingerprint: rec.Fingerprint, Identity: rec.Identity, NotAfter: rec.NotAfter,
			Obtained: m.obtained, Profile: p.Name, RenewedFrom: m.renewedFrom, Token: m.tokenID,
		})
		err = s.o.Store.RecordIssuance(ctx, store.Issuance{
			Cert: rec, TokenID: m.tokenID, Now: rec.IssuedAt,
			TokenSecretHash: m.tokenHash, TokenIdentity: m.tokenIdentity, RenewedFingerprint: m.renewedFingerprint,
			GatewayRole: m.gatewayRole,
			Audit:       audit.Entry{Time: rec.IssuedAt, Actor: m.actor, Action: action, Subject: rec.Serial, Detail: string(detail)},
		})
		switch {
		case err == nil:
			return Issued{Cert: cert, Chain: chain, Roots: h.Roots, Record: rec}, nil
		case errors.Is(err, store.ErrDuplicateSerial) && attempt == 0:
			continue
		case errors.Is(err, store.ErrIssuerInactive) && attempt == 0 && s.reload.Load() != nil:
			if rerr := (*s.reload.Load())(ctx); rerr != nil {
				return Issued{}, fmt.Errorf("ca: reload after a rotation: %w", rerr)
			}
			h = s.h.Load()
			if m.issuer == nil {
				iss, chain = h.Active, h.Chain
			}
			continue
		case errors.Is(err, store.ErrTokenUsed):
			return Issued{}, ErrTokenUsed
		case errors.Is(err, store.ErrTokenExpired):
			return Issued{}, ErrTokenExpired
		case errors.Is(err, store.ErrTokenMismatch),
			errors.Is(err, store.ErrNotFound) && m.tokenID != "":
			return Issued{}, ErrTokenInvalid
		case errors.Is(err, store.ErrNotFound) && m.renewedFingerprint != "":
			return Issued{}, ErrRenewUnknown
		case errors.Is(err, store.ErrRevoked):
			return Issued{}, ErrRenewRevoked
		case errors.Is(err, store.ErrExpired):
			return Issued{}, ErrRenewExpired
		default:
			// The certificate was signed but not recorded: it is dropped here
			// and never leaves the process.
			return Issued{}, fmt.Errorf("ca: record certificate: %w", err)
		}
	}
}

// Revoke revokes what req selects and returns what it revoked.
func (s *Service) Revoke(ctx context.Context, req store.RevokeRequest) ([]store.Revocation, error) {
	if req.Now.IsZero() {
		req.Now = s.o.Clock.Now()
	}
	revs, err := s.o.Store.Revoke(ctx, req)
	if err != nil {
		return nil, fmt.Errorf("ca: revoke: %w", err)
	}
	return revs, nil
}
