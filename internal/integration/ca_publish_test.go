package integration

import (
	"crypto/tls"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/certgate/certgate/internal/testenv"
)

// TestNextIntermediatePublished: a new intermediate is published through
// the feed before it signs, so the moment it does, a client of it that
// sends only its leaf (openssl -cert without the chain, many Java and
// device stacks) is accepted by a gateway whose own certificate is still
// from the old intermediate: the gateway learned the new one from the
// feed's CA state, not from its own chain.
func TestNextIntermediatePublished(t *testing.T) {
	f := newCASetup(t)
	// Far enough ahead that the command has published before it is due:
	// under load (average 25) the command took more than 4 s and, finding
	// the time passed, went on to activate at once.
	at := time.Now().Add(12 * time.Second).UTC().Truncate(time.Second)
	out := testenv.MustCLI(t, f.bin, "ca", "rotate-intermediate", "--dir", f.dir, "--at", at.Format(time.RFC3339))
	if !strings.Contains(out, "intermediate rotation 1: published") {
		t.Fatalf("rotate-intermediate --at:\n%s", out)
	}
	// The server's schedule activates it (check_interval is a minute by
	// default: a ca command activates it as well once it is due).
	time.Sleep(time.Until(at) + 100*time.Millisecond)
	testenv.MustCLI(t, f.bin, "ca", "rotate-intermediate", "--dir", f.dir)
	// The server learns of a change another process made from the event
	// log, which it reads every second (SQLite has no notification across
	// processes); until then the old intermediate, retiring, may still
	// sign. So enroll until the new one signs, within a few polls.
	var dir string
	for deadline := time.Now().Add(10 * time.Second); ; {
		dir = f.enrollCLI(t, "leafonly")
		issuer := readChain(t, dir)[1].Subject.CommonName
		if strings.HasSuffix(issuer, " G2") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the client's issuer is %q 10 s after the rotation, want the new intermediate (G2)", issuer)
		}
		time.Sleep(200 * time.Millisecond)
	}
	pair, err := tls.LoadX509KeyPair(filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	pair.Certificate = pair.Certificate[:1] // the leaf alone
	tc := &tls.Config{RootCAs: f.roots, ServerName: "127.0.0.1", Certificates: []tls.Certificate{pair}, NextProtos: []string{"http/1.1"}}
	c, _, _, err := openLive(f.gwAddr, tc)
	if err != nil {
		t.Fatalf("a leaf-only client of the new intermediate: %v", err)
	}
	c.Close()
}
