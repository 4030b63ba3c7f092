// Command stepca-rekey is the load generator of scripts/bench-stepca.sh
// MODE=renew on the step-ca side: renewals through step-ca's POST
// /1.0/rekey, each on a NEW mTLS connection (full handshake, no session
// cache) presenting the client's current certificate, body {"csr": PEM}
// with a new key, Connection: close. "scripts/stepca-load.py
// --rekey-prepare" enrolls the clients and writes WORKDIR/rekey-I.pem
// (certificate and key, 0600) and WORKDIR/rekey-I.json (the body) before;
// this program loads them all before the clock starts.
//
// It is in Go rather than Python because Python's ssl with a thread pool
// could not drive step-ca past about a quarter of its core from one core
// (measured: 26%), while Go's crypto/tls costs the client about as much as
// "certgate bench renew" costs on the certgate side, so both servers are
// driven by load generators of the same kind.
//
// usage: stepca-rekey CA_URL ROOT PID COUNT CLIENTS DURATION WORKDIR [KEX]
//
//	stepca-rekey -sign CA_URL ROOT PID COUNT CLIENTS DURATION WORKDIR
//
// With -sign it is the issuance side instead (scripts/bench-stepca.sh
// MODE=issue LOADGEN=go): "scripts/stepca-load.py --sign-prepare WORKDIR"
// writes WORKDIR/sign-I.json (a P-256 CSR and a one-time ES256 JWK token
// each, made before the clock starts), and this program sends them to POST
// /1.0/sign over CLIENTS keep-alive TLS connections, one per client, each
// opened by a GET /health before the clock starts, as "certgate bench
// enroll" does on the certgate side. The Python sender drove step-ca to only
// 29-40% of its core from one core, which flatters certgate's ratio.
//
// KEX "default" (the default) offers Go's default key exchanges, as
// "certgate bench renew" does: step-ca then picks the hybrid
// X25519MLKEM768, which certgate's server does not accept (it picks X25519).
// KEX "x25519" offers X25519 only, so that both servers do the same
// exchange.
//
// It prints one line: renewals, errors, elapsed time, step-ca's CPU time
// over the run (from /proc/PID/stat), the rate, latency p50/p99 (dial to
// answer), renewals per server CPU-second, and the key exchanges
// negotiated.
package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "stepca-rekey:", err)
		os.Exit(1)
	}
}

type client struct {
	conf *tls.Config
	req  []byte
}

func run(args []string) error {
	if len(args) > 0 && args[0] == "-sign" {
		return sign(args[1:])
	}
	if len(args) != 7 && len(args) != 8 {
		return errors.New("usage: stepca-rekey CA_URL ROOT PID COUNT CLIENTS DURATION WORKDIR [KEX]")
	}
	var curves []tls.CurveID
	if len(args) == 8 {
		switch args[7] {
		case "default":
		case "x25519":
			curves = []tls.CurveID{tls.X25519}
		default:
			return fmt.Errorf("KEX %q: want default or x25519", args[7])
		}
	}
	c, err := parseCommon(args[:6])
	if err != nil {
		return err
	}
	u, roots, count := c.url, c.roots, c.count
	work := args[6]

	cs := make([]client, count)
	for i := range cs {
		pair := filepath.Join(work, fmt.Sprintf("rekey-%d.pem", i))
		cert, err := tls.LoadX509KeyPair(pair, pair)
		if err != nil {
			return fmt.Errorf("client %d: %w", i, err)
		}
		body, err := os.ReadFile(filepath.Join(work, fmt.Sprintf("rekey-%d.json", i)))
		if err != nil {
			return fmt.Errorf("client %d: %w", i, err)
		}
		cs[i] = client{
			// A config of its own per client and no ClientSessionCache:
			// every renewal is a full handshake.
			conf: &tls.Config{RootCAs: roots, ServerName: u.Hostname(), Certificates: []tls.Certificate{cert}, CurvePreferences: curves},
			req: append([]byte("POST /1.0/rekey HTTP/1.1\r\nHost: "+u.Host+
				"\r\nContent-Type: application/json\r\nContent-Length: "+strconv.Itoa(len(body))+
				"\r\nConnection: close\r\n\r\n"), body...),
		}
	}
	addr := net.JoinHostPort("127.0.0.1", u.Port())
	var kexMu sync.Mutex
	kex := map[string]int{}
	return c.measure("renewed", func(i int) error {
		curve, err := renew(addr, cs[i])
		if err == nil {
			kexMu.Lock()
			kex[curve.String()]++
			kexMu.Unlock()
		}
		return err
	}, func() { fmt.Printf("step-ca key exchanges %v\n", kex) }, false)
}

// common are the arguments both modes take: CA_URL ROOT PID COUNT CLIENTS
// DURATION.
type common struct {
	url                 *url.URL
	roots               *x509.CertPool
	pid, count, clients int
	duration            time.Duration
}

func parseCommon(args []string) (common, error) {
	var c common
	var err error
	if c.url, err = url.Parse(args[0]); err != nil {
		return c, fmt.Errorf("CA URL: %w", err)
	}
	rootPEM, err := os.ReadFile(args[1])
	if err != nil {
		return c, fmt.Errorf("reading the roots: %w", err)
	}
	c.roots = x509.NewCertPool()
	if !c.roots.AppendCertsFromPEM(rootPEM) {
		return c, fmt.Errorf("no certificate in %s", args[1])
	}
	var n [4]int
	for i, a := range args[2:6] {
		if n[i], err = strconv.Atoi(a); err != nil {
			return c, fmt.Errorf("argument %q: %w", a, err)
		}
	}
	c.pid, c.count, c.clients, c.duration = n[0], n[1], n[2], time.Duration(n[3])*time.Second
	return c, nil
}

// measure runs one(0..count-1) from CLIENTS goroutines until all were sent
// or DURATION passed, and prints one line: how many succeeded ("step-ca
// VERB N"), errors, elapsed time, step-ca's CPU time over the run (from
// /proc/PID/stat), the rate, latency p50/p99 and the figure per server
// CPU-second; then whatever after prints, and the first error. A goroutine
// whose call failed stops if stopOnError (its keep-alive connection is
// gone).
func (c common) measure(verb string, one func(i int) error, after func(), stopOnError bool) error {
	var (
		mu    sync.Mutex
		next  int
		ok    int
		fails int
		first string
		lat   []time.Duration
	)
	deadline := time.Now().Add(c.duration)
	c0, err := cpu(c.pid)
	if err != nil {
		return err
	}
	t0 := time.Now()
	var wg sync.WaitGroup
	for range c.clients {
		wg.Go(func() {
			for time.Now().Before(deadline) {
				mu.Lock()
				i := next
				next++
				mu.Unlock()
				if i >= c.count {
					return
				}
				start := time.Now()
				err := one(i)
				el := time.Since(start)
				mu.Lock()
				if err == nil {
					ok++
					lat = append(lat, el)
				} else {
					fails++
					if first == "" {
						first = err.Error()
					}
				}
				mu.Unlock()
				if err != nil && stopOnError {
					return
				}
			}
		})
	}
	wg.Wait()
	el := time.Since(t0)
	c1, err := cpu(c.pid)
	if err != nil {
		return err
	}
	used := c1 - c0
	slices.Sort(lat)
	q := func(p float64) float64 {
		if len(lat) == 0 {
			return 0
		}
		return float64(lat[min(len(lat)-1, int(p*float64(len(lat))))]) / float64(time.Millisecond)
	}
	per := 0.0
	if used > 0 {
		per = float64(ok) / used.Seconds()
	}
	fmt.Printf("step-ca %s %d errors %d in %.2fs, server CPU %.2fs (%.0f%% of one core), %.0f/s, latency p50 %.1fms p99 %.1fms, per server CPU-second %.0f\n",
		verb, ok, fails, el.Seconds(), used.Seconds(), 100*used.Seconds()/el.Seconds(), float64(ok)/el.Seconds(), q(0.5), q(0.99), per)
	if after != nil {
		after()
	}
	if first != "" {
		fmt.Println("first error:", first)
	}
	return nil
}

// renew does one renewal on a new connection and checks that a certificate
// came back.
func renew(addr string, c client) (tls.CurveID, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	d := tls.Dialer{Config: c.conf}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return 0, fmt.Errorf("dial: %w", err)
	}
	defer conn.Close()
	curve := conn.(*tls.Conn).ConnectionState().CurveID
	dl, _ := ctx.Deadline()
	if err := conn.SetDeadline(dl); err != nil {
		return 0, fmt.Errorf("deadline: %w", err)
	}
	if _, err := conn.Write(c.req); err != nil {
		return 0, fmt.Errorf("request: %w", err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		return 0, fmt.Errorf("response: %w", err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return 0, fmt.Errorf("response body: %w", err)
	}
	if resp.StatusCode != http.StatusCreated || !bytes.Contains(body, []byte(`"crt"`)) {
		return 0, fmt.Errorf("status %d: %s", resp.StatusCode, strings.TrimSpace(string(body[:min(len(body), 200)])))
	}
	return curve, nil
}

// cpu is the user and system CPU time of process pid.
func cpu(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, fmt.Errorf("server CPU: %w", err)
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, fmt.Errorf("server CPU: %w", err)
	}
	// USER_HZ is 100 on Linux.
	return time.Duration(ut+st) * 10 * time.Millisecond, nil
}
