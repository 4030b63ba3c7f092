package csr_test

import (
	"fmt"

	"github.com/certgate/certgate/internal/csr"
	"github.com/certgate/certgate/internal/identity"
	"github.com/certgate/certgate/internal/keytype"
)

func Example() {
	// Client side: a fresh key and a request for the identity it enrolls as.
	id := identity.MustParse("spiffe://example.org/svc/billing")
	key, err := keytype.Generate(keytype.Default)
	if err != nil {
		panic(err)
	}
	pemBytes, err := csr.Create(key, id)
	if err != nil {
		panic(err)
	}

	// Server side: the token grants id; the request must ask for exactly that.
	req, err := csr.ParseAndCheck(pemBytes, id)
	fmt.Println(req.Identity, req.KeyType, err)

	_, err = csr.ParseAndCheck(pemBytes, identity.MustParse("spiffe://example.org/svc/payroll"))
	fmt.Println(err)
	// Output:
	// spiffe://example.org/svc/billing ecdsa-p256 <nil>
	// csr: asks for identity spiffe://example.org/svc/billing but may only have spiffe://example.org/svc/payroll
}
