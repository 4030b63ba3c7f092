package certgatetls_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log"
	"net"
	"net/http"
	"time"

	"github.com/certgate/certgate/certgatetls"
	"github.com/certgate/certgate/internal/ca"
)

// A client calls an API behind a certgate gateway with the certificate
// that `certgate enroll` wrote and `certgate agent` keeps renewed.
func ExampleNewHTTPClient() {
	// This example runs a throwaway certgate on 127.0.0.1 (CA, server, and a
	// gateway in front of an API that echoes the caller's identity) and
	// enrolls a client with a token into a temporary directory. In
	// production, dir is what `certgate enroll --out` filled, e.g.
	// /var/lib/certgate/billing, and the URL is your gateway's.
	d, err := startDemo()
	if err != nil {
		log.Fatal(err)
	}
	defer d.Close()
	dir, err := d.enrollDir("billing", "/svc/billing")
	if err != nil {
		log.Fatal(err)
	}
	gatewayURL, err := d.startGateway("spiffe://example.org/svc/*")
	if err != nil {
		log.Fatal(err)
	}

	src, err := certgatetls.NewSource(dir)
	if err != nil {
		log.Fatal(err)
	}
	defer src.Close()
	client := certgatetls.NewHTTPClient(src, certgatetls.ClientOptions{})
	defer client.CloseIdleConnections()

	resp, err := client.Get(gatewayURL + "/v1/invoices")
	if err != nil {
		log.Fatal(err)
	}
	defer resp.Body.Close()
	var echo struct{ Identity string }
	if err := json.NewDecoder(resp.Body).Decode(&echo); err != nil {
		log.Fatal(err)
	}
	fmt.Println(resp.Status)
	fmt.Println("the API saw", echo.Identity)
	// Output:
	// 200 OK
	// the API saw spiffe://example.org/svc/billing
}

// A Go service accepts certgate clients itself, without a gateway in
// front: it serves with its own gateway certificate, checks revocation
// against the certgate server and lets in only one identity.
func ExampleServerConfig() {
	// A throwaway certgate server on 127.0.0.1 and two credentials
	// directories: the service's own (a gateway identity, see the package
	// documentation) and a client's. In production these come from
	// `certgate enroll`.
	d, err := startDemo()
	if err != nil {
		log.Fatal(err)
	}
	defer d.Close()
	serviceDir, _, err := d.issueDir("invoices", "/gateway/invoices", ca.GatewayProfile)
	if err != nil {
		log.Fatal(err)
	}
	clientDir, err := d.enrollDir("billing", "/svc/billing")
	if err != nil {
		log.Fatal(err)
	}

	ctx := context.Background()
	src, err := certgatetls.NewSource(serviceDir)
	if err != nil {
		log.Fatal(err)
	}
	defer src.Close()
	// The revoked set follows the server's change feed: a revocation is
	// enforced as soon as the server has committed it.
	revs, err := certgatetls.StartRevocations(ctx, certgatetls.RevocationOptions{ServerURL: d.ServerURL, Source: src})
	if err != nil {
		log.Fatal(err)
	}
	defer revs.Close()
	tlsConfig, err := certgatetls.ServerConfig(certgatetls.ServerOptions{
		Source:      src,
		Revocations: revs,
		Authorizer:  certgatetls.AllowIdentities("spiffe://example.org/svc/billing"),
	})
	if err != nil {
		log.Fatal(err)
	}
	hello := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, err := certgatetls.IdentityFromRequest(r)
		if err != nil {
			http.Error(w, err.Error(), http.StatusUnauthorized)
			return
		}
		fmt.Fprintf(w, "hello %s", id)
	})
	srv := &http.Server{
		TLSConfig: tlsConfig,
		// The handshake checks revocation; RejectRevoked checks every
		// request too, so an open keep-alive connection of a certificate
		// revoked since is answered 403.
		Handler:           certgatetls.RejectRevoked(revs, hello),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       time.Minute,
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	go srv.ServeTLS(ln, "", "")
	defer srv.Close()

	// The client side, as in ExampleNewHTTPClient.
	clientSrc, err := certgatetls.NewSource(clientDir)
	if err != nil {
		log.Fatal(err)
	}
	defer clientSrc.Close()
	client := certgatetls.NewHTTPClient(clientSrc, certgatetls.ClientOptions{})
	defer client.CloseIdleConnections()
	resp, err := client.Get("https://" + ln.Addr().String() + "/")
	if err != nil {
		log.Fatal(err)
	}
	defer resp.Body.Close()
	var body [64]byte
	n, _ := resp.Body.Read(body[:])
	fmt.Println(resp.Status, resp.Proto)
	fmt.Println(string(body[:n]))
	// Output:
	// 200 OK HTTP/2.0
	// hello spiffe://example.org/svc/billing
}
