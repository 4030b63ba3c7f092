package agent

import (
	"context"
	"encoding/json"
	"errors"
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
)

// TestKeysInPKCS11Token: a client enrolled with its key generated inside
// a real SoftHSM2 token, renewed three times by the agent (a new key in
// the token each time, the old one deleted after the switch), calls a real
// gateway through the agent's forward proxy and through the SDK after
// each renewal; the token reports every key sensitive and not
// extractable, and the directory never holds a key.
func TestKeysInPKCS11Token(t *testing.T) {
	tokenURI := testenv.SoftHSMToken(t, "clients")
	e := newEnv(t, time.Hour)
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "client")
	id := "spiffe://" + td + "/svc/hsm"
	if _, err := enroll.Enroll(ctx, enroll.Options{Token: e.te.Token(t, id, 0), OutDir: dir, Now: e.clock.Now, KeyStore: tokenURI}); err != nil {
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
		if !strings.HasPrefix(u, "pkcs11:") || strings.Contains(u, "pin-value") || !strings.Contains(u, "pin-source=file:") {
			t.Fatalf("key.uri holds %q", u)
		}
		for _, f := range []string{certgatetls.KeyFile, CombinedFile} {
			if _, err := os.Stat(filepath.Join(dir, f)); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("%s exists beside a key in a token: %v", f, err)
			}
		}
		return u
	}
	inToken := func(u string) {
		t.Helper()
		extractable, sensitive, err := devicekey.Attributes(u)
		if err != nil || extractable || !sensitive {
			t.Fatalf("%s: CKA_EXTRACTABLE %v, CKA_SENSITIVE %v, %v", u, extractable, sensitive, err)
		}
	}
	first := keyURI()
	inToken(first)

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
		inToken(cur)
		if _, err := devicekey.Load(prev); !errors.Is(err, devicekey.ErrNotFound) {
			t.Fatalf("renewal %d: the replaced key is still in the token: %v", i, err)
		}
		prev = cur
		check("after renewal " + string(rune('0'+i)))
	}
}
