package agent

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/certgate/certgate/certgatetls"
	"github.com/certgate/certgate/internal/devicekey"
	"github.com/certgate/certgate/internal/enroll"
	"github.com/certgate/certgate/internal/testenv"
	"github.com/certgate/certgate/internal/workloadapi"
)

// TestKeysInPKCS11Token: a client enrolled with its key generated inside
// a real SoftHSM2 token, renewed three times by the agent (a new key in
// the token each time, the old one deleted after the switch), calls a real
// gateway through the agent's forward proxy and through the SDK after
// each renewal; the token reports every key sensitive and not
// extractable, and the directory never holds a key.
func TestKeysInPKCS11Token(t *testing.T) {
	tokenURI := testenv.SoftHSMToken(t, "clients")
	deviceKeys(t, tokenURI, "hsm", filepath.Join(t.TempDir(), "client"), func(u string) {
		t.Helper()
		if !strings.HasPrefix(u, "pkcs11:") || strings.Contains(u, "pin-value") || !strings.Contains(u, "pin-source=file:") {
			t.Fatalf("key.uri holds %q", u)
		}
		extractable, sensitive, err := devicekey.Attributes(u)
		if err != nil || extractable || !sensitive {
			t.Fatalf("%s: CKA_EXTRACTABLE %v, CKA_SENSITIVE %v, %v", u, extractable, sensitive, err)
		}
	}, func(i int, prev string) {
		t.Helper()
		if _, err := devicekey.Load(prev); !errors.Is(err, devicekey.ErrNotFound) {
			t.Fatalf("renewal %d: the replaced key is still in the token: %v", i, err)
		}
	})
}

// deviceKeys enrolls a client with its key made in the device store
// names, has the agent renew it three times and calls a real gateway
// through the agent's forward proxy and the SDK after each, with dir the
// credentials directory; inDevice checks a key.uri's key, gone that
// renewal i took the previous key away.
func deviceKeys(t *testing.T, store, name, dir string, inDevice func(keyURI string), gone func(i int, prev string)) {
	e := newEnv(t, time.Hour)
	ctx := context.Background()
	id := "spiffe://" + td + "/svc/" + name
	if _, err := enroll.Enroll(ctx, enroll.Options{Token: e.te.Token(t, id, 0), OutDir: dir, Now: e.clock.Now, KeyStore: store}); err != nil {
		t.Fatal(err)
	}
	keyURI := func() string {
		t.Helper()
		fi, err := os.Stat(filepath.Join(dir, certgatetls.KeyURIFile))
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("key.uri: %v %v", fi, err)
		}
		b, _ := os.ReadFile(filepath.Join(dir, certgatetls.KeyURIFile))
		u := strings.TrimSpace(string(b))
		for _, f := range []string{certgatetls.KeyFile, CombinedFile} {
			if _, err := os.Stat(filepath.Join(dir, f)); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("%s exists beside a key in a device: %v", f, err)
			}
		}
		inDevice(u)
		return u
	}
	first := keyURI()

	gw := e.startGateway()
	a, _ := e.newAgent(dir, func(o *Options) { o.Rand = func() float64 { return 0.5 }; o.CheckInterval = -1 })
	p, err := NewProxy(a, gw.url, nil)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	pctx, stopProxy := context.WithCancel(ctx)
	proxyDone := make(chan error, 1)
	go func() { proxyDone <- p.Serve(pctx, ln) }()
	t.Cleanup(func() { stopProxy(); <-proxyDone })
	src, err := certgatetls.NewSource(dir, certgatetls.WithClock(e.clock), certgatetls.WithPollInterval(10*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { src.Close() })
	sdk := certgatetls.NewHTTPClient(src, certgatetls.ClientOptions{})
	plain := &http.Client{Timeout: 10 * time.Second}

	// get asks the upstream, through the gateway, who called.
	get := func(c *http.Client, url string) (identity, serial string) {
		t.Helper()
		resp, err := c.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var body map[string]string
		if resp.StatusCode != 200 || json.NewDecoder(resp.Body).Decode(&body) != nil {
			t.Fatalf("%s: %d", url, resp.StatusCode)
		}
		return body["identity"], body["serial"]
	}
	check := func(when string) {
		t.Helper()
		want := a.Credentials().Serial
		if who, serial := get(plain, "http://"+ln.Addr().String()+"/pay"); who != id || !strings.EqualFold(serial, want) {
			t.Fatalf("%s, forward proxy: %s %s, want %s %s", when, who, serial, id, want)
		}
		waitFor(t, "the SDK to load the new credentials", func() bool { return src.Current().Serial == want })
		if who, serial := get(sdk, gw.url+"/pay"); who != id || !strings.EqualFold(serial, want) {
			t.Fatalf("%s, SDK: %s %s, want %s %s", when, who, serial, id, want)
		}
	}
	check("enrolled")

	run(t, a)
	seen := map[string]bool{first: true}
	prev := first
	for i := 1; i <= 3; i++ {
		e.waitSleeping(t)
		before := a.Credentials().Serial
		e.clock.Set(a.Status().NextRenewal.Add(time.Second))
		waitFor(t, "a renewal", func() bool { return a.Status().Serial != before && a.Status().Renewals == i })
		cur := keyURI()
		if seen[cur] {
			t.Fatalf("renewal %d kept a key: %s", i, cur)
		}
		seen[cur] = true
		gone(i, prev)
		prev = cur
		check("after renewal " + string(rune('0'+i)))
	}
}

// TestKeysInTPM: TestKeysInPKCS11Token with the keys made in a TPM 2.0
// (swtpm): the TPM reports every key fixedTPM, fixedParent and
// sensitiveDataOrigin (TPM2_ReadPublic), a renewal leaves nothing of the
// old key in the directory nor anything in the TPM, and a key.uri whose
// key this TPM cannot load, or that names no key, is refused when read.
func TestKeysInTPM(t *testing.T) {
	store := testenv.SWTPM(t)
	dir := filepath.Join(t.TempDir(), "client")
	objects := func(when string) {
		t.Helper()
		tr, pe, err := devicekey.TPMObjects(store)
		if err != nil || tr != 0 || pe != 0 {
			t.Fatalf("%s: the TPM holds %d transient and %d persistent objects (%v), want none", when, tr, pe, err)
		}
	}
	deviceKeys(t, store, "tpm", dir, func(u string) {
		t.Helper()
		if !strings.HasPrefix(u, store+";public=") {
			t.Fatalf("key.uri holds %q", u)
		}
		attrs, err := devicekey.TPMObjectAttributes(u)
		if err != nil || !attrs.FixedTPM || !attrs.FixedParent || !attrs.SensitiveDataOrigin || !attrs.SignEncrypt || attrs.Decrypt {
			t.Fatalf("TPM2_ReadPublic: %+v %v", attrs, err)
		}
		objects("after reading a key's attributes")
	}, func(i int, prev string) {
		t.Helper()
		// The old key's blob is nowhere in the directory any more.
		priv := prev[strings.Index(prev, ";private=")+len(";private="):]
		files := 0
		filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
			if err != nil {
				t.Fatal(err)
			}
			if !d.IsDir() {
				files++
				if b, _ := os.ReadFile(p); strings.Contains(string(b), priv) {
					t.Fatalf("renewal %d: %s still holds the replaced key", i, p)
				}
			}
			return nil
		})
		if files < 3 {
			t.Fatalf("renewal %d: %d files in %s", i, files, dir)
		}
		objects("after renewal " + string(rune('0'+i)))
	})
	// A key.uri this TPM cannot load (the key of another TPM), and one
	// naming no key: refused when the credentials are read.
	other := testenv.SWTPM(t)
	b, _ := os.ReadFile(filepath.Join(dir, certgatetls.KeyURIFile))
	for _, c := range []struct{ uri, want string }{
		{strings.Replace(string(b), store, other, 1), "devicekey: TPM " + strings.TrimPrefix(other, "tpm:") + ": this TPM cannot load the key: it was made by another TPM, or this TPM's owner hierarchy was cleared since (TPM_RC_INTEGRITY (parameter 1): integrity check failed)"},
		{store + "\n", "devicekey: " + store + " names no key (public and private)"},
	} {
		bad := t.TempDir()
		for _, f := range []string{certgatetls.CertFile, certgatetls.BundleFile} {
			data, _ := os.ReadFile(filepath.Join(dir, f))
			os.WriteFile(filepath.Join(bad, f), data, 0o644)
		}
		os.WriteFile(filepath.Join(bad, certgatetls.KeyURIFile), []byte(c.uri), 0o600)
		_, err := certgatetls.ReadCredentials(bad)
		if want := "certgatetls: " + filepath.Join(bad, certgatetls.KeyURIFile) + ": " + c.want; err == nil || err.Error() != want {
			t.Fatalf("reading credentials:\n got %v\nwant %s", err, want)
		}
	}
	// The Workload API hands keys to workloads: not a TPM key.
	creds, err := certgatetls.ReadCredentials(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := workloadapi.New(creds, workloadapi.Options{}); err == nil || err.Error() != "workloadapi: the key is held in a device (a PKCS#11 token or a TPM) and cannot be handed to workloads; enroll with --key-store file for the Workload API" {
		t.Fatalf("Workload API with a TPM key: %v", err)
	}
	objects("at the end")
}

// TestGatewayIdentityInTPM: a gateway's own identity with its key made in
// a TPM (identity.key_store): enrolled by SetupGateway, it serves TLS
// handshakes signed in the TPM, and after the agent renews it, with the
// next key made in the same TPM.
func TestGatewayIdentityInTPM(t *testing.T) {
	store := testenv.SWTPM(t)
	e := newEnv(t, time.Hour)
	dir := filepath.Join(t.TempDir(), "gw")
	o := GatewayOptions{Dir: dir, TrustDomain: td, Hosts: []string{"127.0.0.1"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyStore: store, Token: e.te.Token(t, "spiffe://"+td+"/gateway/gw1", time.Hour), Clock: e.clock, Log: slog.New(slog.DiscardHandler)}
	g, err := SetupGateway(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	keyURI := func() string {
		t.Helper()
		b, err := os.ReadFile(filepath.Join(dir, certgatetls.KeyURIFile))
		if err != nil || !strings.HasPrefix(string(b), store+";public=") {
			t.Fatalf("key.uri: %v", err)
		}
		if _, err := os.Stat(filepath.Join(dir, certgatetls.KeyFile)); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("key.pem beside a key in a TPM: %v", err)
		}
		attrs, err := devicekey.TPMObjectAttributes(string(b))
		if err != nil || !attrs.FixedTPM || !attrs.FixedParent || !attrs.SensitiveDataOrigin {
			t.Fatalf("TPM2_ReadPublic: %+v %v", attrs, err)
		}
		return string(b)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return g.Certificate(), nil }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { c.(*tls.Conn).Handshake(); c.Write([]byte("x")); c.Close() }()
		}
	}()
	handshake := func(when string) {
		t.Helper()
		c, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{RootCAs: e.te.Roots, Time: e.clock.Now})
		if err != nil {
			t.Fatalf("%s: %v", when, err)
		}
		defer c.Close()
		if got, want := c.ConnectionState().PeerCertificates[0].SerialNumber, g.Certificate().Leaf.SerialNumber; got.Cmp(want) != 0 {
			t.Fatalf("%s: the gateway served %v, want %v", when, got, want)
		}
	}
	first := keyURI()
	handshake("enrolled")
	run(t, g.Agent)
	e.waitSleeping(t)
	before := g.Certificate().Leaf.SerialNumber
	e.clock.Set(g.Agent.Status().NextRenewal.Add(time.Second))
	waitFor(t, "a renewal", func() bool { return g.Certificate().Leaf.SerialNumber.Cmp(before) != 0 })
	if keyURI() == first {
		t.Fatal("the renewal kept the key")
	}
	handshake("renewed")
}
