package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"runtime"
	"sync"
	"time"

	"github.com/certgate/certgate/internal/apiclient"
	"github.com/certgate/certgate/internal/csr"
	"github.com/certgate/certgate/internal/identity"
	"github.com/certgate/certgate/internal/keytype"
	"github.com/certgate/certgate/internal/wire"
)

// Enrollment is one prepared enrollment: the encoded body of
// POST /v1/enroll (token and CSR), ready to send.
type Enrollment struct {
	TokenID  string
	Identity string
	Body     []byte
}

// PrepareOptions says what to prepare.
type PrepareOptions struct {
	Count       int
	TrustDomain string
	// PathPrefix names the identities: PathPrefix + "/client-N". "/bench"
	// if empty.
	PathPrefix string
	KeyType    keytype.Type  // of the client keys; keytype.Default if empty
	TokenTTL   time.Duration // 1 h if zero: long enough for the longest run
	// Parallel is how many tokens are minted at once (the server
	// group-commits them); 32 if zero. Keys and CSRs are made on every CPU.
	Parallel int
}

// Prepare mints o.Count tokens through the admin API and makes a key and a
// CSR for each. The keys are thrown away: only the server's work is
// measured, and a load run's certificates are never used.
func Prepare(ctx context.Context, admin *apiclient.Client, o PrepareOptions) ([]Enrollment, error) {
	if o.Count < 1 {
		return nil, fmt.Errorf("bench: count %d: need at least one enrollment", o.Count)
	}
	if o.PathPrefix == "" {
		o.PathPrefix = "/bench"
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
	ids := make([]identity.ID, o.Count)
	for i := range ids {
		id, err := identity.New(o.TrustDomain, fmt.Sprintf("%s/client-%d", o.PathPrefix, i))
		if err != nil {
			return nil, fmt.Errorf("bench: %w", err)
		}
		ids[i] = id
	}
	out := make([]Enrollment, o.Count)
	csrs := make([][]byte, o.Count)
	err := parallel(ctx, o.Count, runtime.GOMAXPROCS(0), func(i int) error {
		key, err := keytype.Generate(o.KeyType)
		if err != nil {
			return err
		}
		csrs[i], err = csr.Create(key, ids[i])
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("bench: make CSRs: %w", err)
	}
	err = parallel(ctx, o.Count, o.Parallel, func(i int) error {
		tok, err := admin.CreateToken(ctx, ids[i].String(), o.TokenTTL)
		if err != nil {
			return err
		}
		body, err := json.Marshal(wire.EnrollRequest{Token: tok.Token, CSR: string(csrs[i])})
		if err != nil {
			return err
		}
		out[i] = Enrollment{TokenID: tok.ID, Identity: ids[i].String(), Body: body}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("bench: mint tokens: %w", err)
	}
	return out, nil
}

// parallel runs fn(0..n-1) on par goroutines and returns the first error;
// after an error or the end of ctx no new index is started.
func parallel(ctx context.Context, n, par int, fn func(i int) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		mu    sync.Mutex
		next  int
		first error
		wg    sync.WaitGroup
	)
	take := func() (int, bool) {
		mu.Lock()
		defer mu.Unlock()
		if next >= n || first != nil || ctx.Err() != nil {
			return 0, false
		}
		next++
		return next - 1, true
	}
	for range min(par, n) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i, ok := take()
				if !ok {
					return
				}
				if err := fn(i); err != nil {
					mu.Lock()
					if first == nil {
						first = err
					}
					mu.Unlock()
					cancel()
					return
				}
			}
		}()
	}
	wg.Wait()
	if first != nil {
		return first
	}
	// Only the parent can have ended ctx here: then the work is incomplete.
	return ctx.Err()
}
