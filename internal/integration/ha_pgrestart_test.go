package integration

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/certgate/certgate/internal/testenv"
)

// privatePostgres is a PostgreSQL cluster of the test's own, in a
// temporary directory on a free port, so the test can really stop and
// start the database without touching the machine's shared one.
type privatePostgres struct {
	bin, dir, port string
	asPostgres     bool // run the binaries as the postgres user (we are root)
}

// startPrivatePostgres makes and starts a cluster, or skips the test when
// the server binaries cannot be run here (failing instead under
// CERTGATE_REQUIRE_POSTGRES=1).
func startPrivatePostgres(t *testing.T) *privatePostgres {
	t.Helper()
	skip := func(why string) {
		if os.Getenv("CERTGATE_REQUIRE_POSTGRES") == "1" {
			t.Fatalf("private PostgreSQL: %s, and CERTGATE_REQUIRE_POSTGRES=1", why)
		}
		t.Skipf("private PostgreSQL: %s: skipping", why)
	}
	bins, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	if len(bins) == 0 {
		skip("no initdb under /usr/lib/postgresql")
	}
	p := &privatePostgres{bin: filepath.Dir(bins[len(bins)-1]), asPostgres: os.Geteuid() == 0}
	if p.asPostgres {
		if _, err := exec.LookPath("runuser"); err != nil {
			skip("running as root without runuser")
		}
	}
	// PostgreSQL refuses to run as root, and the postgres user cannot enter
	// t.TempDir(), so the cluster lives in a directory of its own.
	dir, err := os.MkdirTemp("", "certgate-pg-")
	if err != nil {
		t.Fatal(err)
	}
	p.dir = dir
	t.Cleanup(func() {
		p.run(t, "pg_ctl", "-D", p.dir, "-m", "immediate", "stop")
		os.RemoveAll(dir)
	})
	if p.asPostgres {
		if out, err := exec.Command("chown", "postgres:postgres", dir).CombinedOutput(); err != nil {
			t.Fatalf("chown: %v %s", err, out)
		}
	}
	addr := testenv.FreeAddr(t)
	p.port = addr[strings.LastIndexByte(addr, ':')+1:]
	if out, err := p.run(t, "initdb", "-D", dir, "-A", "trust", "-U", "postgres", "--no-sync"); err != nil {
		skip(fmt.Sprintf("initdb: %v %s", err, out))
	}
	p.start(t)
	return p
}

func (p *privatePostgres) run(t *testing.T, name string, args ...string) ([]byte, error) {
	t.Helper()
	cmd := exec.Command(filepath.Join(p.bin, name), args...)
	if p.asPostgres {
		cmd = exec.Command("runuser", append([]string{"-u", "postgres", "--", filepath.Join(p.bin, name)}, args...)...)
	}
	return cmd.CombinedOutput()
}

func (p *privatePostgres) start(t *testing.T) {
	t.Helper()
	opts := fmt.Sprintf("-p %s -c listen_addresses=127.0.0.1 -k %s -c fsync=on", p.port, p.dir)
	if out, err := p.run(t, "pg_ctl", "-D", p.dir, "-o", opts, "-l", filepath.Join(p.dir, "log"), "-w", "start"); err != nil {
		t.Fatalf("pg_ctl start: %v %s", err, out)
	}
}

// stop shuts the server down the way a restart does: sessions are
// terminated, new connections refused until start.
func (p *privatePostgres) stop(t *testing.T) {
	t.Helper()
	if out, err := p.run(t, "pg_ctl", "-D", p.dir, "-m", "fast", "-w", "stop"); err != nil {
		t.Fatalf("pg_ctl stop: %v %s", err, out)
	}
}

func (p *privatePostgres) url() string {
	return "postgres://postgres@127.0.0.1:" + p.port + "/postgres?sslmode=disable"
}

// TestHARealPostgresRestartDuringIssuance is the outage scenario of
// TestHAPostgresRestartDuringIssuance with a real PostgreSQL restart
// (pg_ctl stop -m fast, then start) instead of a cut relay: the database
// terminates every session with its shutdown error, refuses connections
// while down, and comes back with the same data.
func TestHARealPostgresRestartDuringIssuance(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a private PostgreSQL cluster")
	}
	pg := startPrivatePostgres(t)
	issueThroughOutage(t, pg.url(), pg.url(), func() { pg.stop(t) }, func() { pg.start(t) })
}
