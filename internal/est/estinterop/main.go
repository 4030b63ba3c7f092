// Command estinterop is one EST (RFC 7030) operation of the
// github.com/globalsign/est client against a server, for certgate's
// interoperability test (internal/server TestESTGlobalsignClient), which
// builds it with `go build` in this directory and runs it once per
// operation:
//
//	estinterop -host HOST:PORT -anchor ROOTS.pem OP [flags]
//
// OP is cacerts, csrattrs, enroll or reenroll. enroll and reenroll send
// the DER PKCS#10 request -csr names, authenticated by -password (HTTP
// Basic, user "device") and/or -cert and -key (a TLS client certificate:
// the chain PEM, the leaf first, and its PKCS#8 key PEM). The answer goes
// to stdout: certificates as PEM, CSR attributes as JSON. A refusal goes
// to stderr as JSON {"status":N,"message":"..."} (status 0 when the
// client failed without an HTTP answer), exit status 1.
package main

import (
	"context"
	"crypto"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/globalsign/est"
)

func main() {
	host := flag.String("host", "", "EST server, HOST:PORT")
	anchor := flag.String("anchor", "", "PEM file of the roots that verify the server")
	password := flag.String("password", "", "HTTP Basic password (user \"device\")")
	certFile := flag.String("cert", "", "client certificate chain, PEM, the leaf first")
	keyFile := flag.String("key", "", "the client certificate's key, PKCS#8 PEM")
	csrFile := flag.String("csr", "", "DER PKCS#10 request to enroll")
	flag.Parse()
	if err := run(*host, *anchor, *password, *certFile, *keyFile, *csrFile, flag.Args()); err != nil {
		status := 0
		var se interface{ StatusCode() int }
		if errors.As(err, &se) {
			status = se.StatusCode()
		}
		b, _ := json.Marshal(struct {
			Status  int    `json:"status"`
			Message string `json:"message"`
		}{status, strings.TrimSpace(err.Error())})
		fmt.Fprintln(os.Stderr, string(b))
		os.Exit(1)
	}
}

func run(host, anchor, password, certFile, keyFile, csrFile string, args []string) error {
	if len(args) != 1 {
		return errors.New("usage: estinterop -host HOST:PORT -anchor ROOTS.pem cacerts|csrattrs|enroll|reenroll")
	}
	roots, err := readCerts(anchor)
	if err != nil {
		return err
	}
	c := &est.Client{Host: host, ExplicitAnchor: x509.NewCertPool(), DisableKeepAlives: true}
	for _, r := range roots {
		c.ExplicitAnchor.AddCert(r)
	}
	if password != "" {
		c.Username, c.Password = "device", password
	}
	if certFile != "" {
		if c.Certificates, err = readCerts(certFile); err != nil {
			return err
		}
		if c.PrivateKey, err = readKey(keyFile); err != nil {
			return err
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	switch args[0] {
	case "cacerts":
		certs, err := c.CACerts(ctx)
		if err != nil {
			return err
		}
		return writeCerts(certs...)
	case "csrattrs":
		attrs, err := c.CSRAttrs(ctx)
		if err != nil {
			return err
		}
		out := struct {
			OIDs       []string `json:"oids"`
			Attributes int      `json:"attributes"`
		}{OIDs: []string{}, Attributes: len(attrs.Attributes)}
		for _, o := range attrs.OIDs {
			out.OIDs = append(out.OIDs, o.String())
		}
		return json.NewEncoder(os.Stdout).Encode(out)
	case "enroll", "reenroll":
		der, err := os.ReadFile(csrFile)
		if err != nil {
			return err
		}
		req, err := x509.ParseCertificateRequest(der)
		if err != nil {
			return fmt.Errorf("%s: %w", csrFile, err)
		}
		var cert *x509.Certificate
		if args[0] == "enroll" {
			cert, err = c.Enroll(ctx, req)
		} else {
			cert, err = c.Reenroll(ctx, req)
		}
		if err != nil {
			return err
		}
		return writeCerts(cert)
	}
	return fmt.Errorf("unknown operation %q", args[0])
}

func readCerts(name string) ([]*x509.Certificate, error) {
	b, err := os.ReadFile(name)
	if err != nil {
		return nil, err
	}
	var certs []*x509.Certificate
	for {
		var blk *pem.Block
		if blk, b = pem.Decode(b); blk == nil {
			break
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		certs = append(certs, c)
	}
	if len(certs) == 0 {
		return nil, fmt.Errorf("%s: no certificate", name)
	}
	return certs, nil
}

func readKey(name string) (crypto.Signer, error) {
	b, err := os.ReadFile(name)
	if err != nil {
		return nil, err
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		return nil, fmt.Errorf("%s: no PEM block", name)
	}
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	s, ok := k.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("%s: %T is not a signing key", name, k)
	}
	return s, nil
}

func writeCerts(certs ...*x509.Certificate) error {
	for _, c := range certs {
		if err := pem.Encode(os.Stdout, &pem.Block{Type: "CERTIFICATE", Bytes: c.Raw}); err != nil {
			return err
		}
	}
	return nil
}
