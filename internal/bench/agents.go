package bench

import (
	"context"
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"runtime"
	"time"

	"github.com/certgate/certgate/internal/apiclient"
	"github.com/certgate/certgate/internal/csr"
	"github.com/certgate/certgate/internal/identity"
	"github.com/certgate/certgate/internal/keytype"
	"github.com/certgate/certgate/internal/pemutil"
	"github.com/certgate/certgate/internal/wire"
)

// Agent is one simulated client ready to renew: its current certificate
// (enrolled through the API, key in memory only) and the prepared body of
// its renewal, a CSR for a new key made in advance.
type Agent struct {
	Identity string
	Cert     tls.Certificate  // current leaf + intermediate, with its key
	Next     crypto.PublicKey // the key the renewal asks to certify
	Body     []byte           // POST /v1/renew body
	// Sessions is the agent's TLS session cache in resumed mode (see
	// [WarmSessions]); nil for full handshakes.
	Sessions tls.ClientSessionCache
}

// AgentOptions says which agents to prepare.
type AgentOptions struct {
	PrepareOptions
	ServerURL string // of the server to enroll with
	Roots     *x509.CertPool
}

// PrepareAgents makes o.Count agents: for each a key and a CSR, a token
// minted through the admin API, an enrollment through the API (the agent's
// current certificate), and a second key with its CSR for the renewal.
// Nothing of this is measured; key generation runs on every CPU, tokens and
// enrollments o.Parallel at a time.
func PrepareAgents(ctx context.Context, admin *apiclient.Client, o AgentOptions) ([]*Agent, error) {
	if o.Count < 1 {
		return nil, fmt.Errorf("bench: count %d: need at least one agent", o.Count)
	}
	if o.PathPrefix == "" {
		o.PathPrefix = "/bench/agent"
	}
	if o.KeyType == "" {
		o.KeyType = keytype.Default
	}
	if o.TokenTTL == 0 {
		o.TokenTTL = time.Hour
	}
	if o.Parallel == 0 {
		o.Parallel = 32
	}
	enroller, err := apiclient.New(apiclient.Options{ServerURL: o.ServerURL, Roots: o.Roots, Timeout: time.Minute})
	if err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	defer enroller.CloseIdleConnections()
	ids := make([]identity.ID, o.Count)
	for i := range ids {
		id, err := identity.New(o.TrustDomain, fmt.Sprintf("%s-%d", o.PathPrefix, i))
		if err != nil {
			return nil, fmt.Errorf("bench: %w", err)
		}
		ids[i] = id
	}
	type keys struct {
		cur, next       crypto.Signer
		curCSR, nextCSR []byte
	}
	ks := make([]keys, o.Count)
	err = parallel(ctx, o.Count, runtime.GOMAXPROCS(0), func(i int) error {
		var k keys
		var err error
		if k.cur, err = keytype.Generate(o.KeyType); err != nil {
			return err
		}
		if k.next, err = keytype.Generate(o.KeyType); err != nil {
			return err
		}
		if k.curCSR, err = csr.Create(k.cur, ids[i]); err != nil {
			return err
		}
		if k.nextCSR, err = csr.Create(k.next, ids[i]); err != nil {
			return err
		}
		ks[i] = k
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("bench: make keys and CSRs: %w", err)
	}
	agents := make([]*Agent, o.Count)
	err = parallel(ctx, o.Count, o.Parallel, func(i int) error {
		tok, err := admin.CreateToken(ctx, ids[i].String(), o.TokenTTL)
		if err != nil {
			return err
		}
		resp, err := enroller.Enroll(ctx, tok.Token, string(ks[i].curCSR))
		if err != nil {
			return fmt.Errorf("enroll %s: %w", ids[i], err)
		}
		chain, err := pemutil.ParseCertificates([]byte(resp.Certificate + resp.Chain))
		if err != nil {
			return fmt.Errorf("enroll %s: answer: %w", ids[i], err)
		}
		cert := tls.Certificate{PrivateKey: ks[i].cur, Leaf: chain[0]}
		for _, c := range chain {
			cert.Certificate = append(cert.Certificate, c.Raw)
		}
		body, err := json.Marshal(wire.RenewRequest{CSR: string(ks[i].nextCSR)})
		if err != nil {
			return err
		}
		agents[i] = &Agent{Identity: ids[i].String(), Cert: cert, Next: ks[i].next.Public(), Body: body}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("bench: enroll agents: %w", err)
	}
	return agents, nil
}
