package bench

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/certgate/certgate/internal/keytype"
	"github.com/certgate/certgate/internal/pemutil"
)

// TLSOptions configures a TLS load run (`certgate bench`): full
// handshakes, resumed handshakes or keep-alive requests per second against
// one mTLS endpoint, or two side by side. Errors about a field name the
// command-line flag that sets it.
type TLSOptions struct {
	Addr    string // host:port to load (--addr)
	Compare string // a second host:port loaded with the same client, or ""
	// Names of Addr and Compare in the report (default: the addresses).
	Names []string
	// ServerPID and ComparePID name the server processes on this machine
	// (Linux): each row then gives the server's CPU time. 0: not measured.
	ServerPID, ComparePID int
	Cert, Key             string // client certificate chain and key PEM files
	// CACert holds the roots that verify the server once per target; empty:
	// the server is NOT verified (InsecureSkipVerify).
	CACert     string
	ServerName string   // the name to verify in the server certificate
	Curve      string   // key-exchange group offered: P256, X25519 or X25519MLKEM768
	Modes      []string // full, resumed, keepalive
	Path       string   // request path
	Duration   time.Duration
	Warmup     time.Duration // unmeasured load before each run
	// Concurrency is the number of concurrent connections; Rounds the
	// times every mode runs against every target, alternating the order.
	Concurrency, Rounds int
	// Out receives the report as the run goes: the client line, one row per
	// run as it ends, the ratios at the end. Nil discards it.
	Out io.Writer
}

// TLSModes are the modes of a TLS load run.
var TLSModes = []string{"full", "resumed", "keepalive"}

var tlsCurves = map[string]tls.CurveID{"P256": tls.CurveP256, "X25519": tls.X25519, "X25519MLKEM768": tls.X25519MLKEM768}

// TLSResult is what a TLS load run measured: one row per round, mode and
// target, in the order they ran.
type TLSResult struct {
	Rows []TLSRow
}

// TLSRow is one measured run of one mode against one target.
type TLSRow struct {
	Round        int
	Mode, Target string
	Ops, Errors  int64
	// WarmupOps counts the operations of the unmeasured warm-up before
	// the run: with Ops, every request the target answered (each one an
	// access log line at a gateway).
	WarmupOps int64
	// NotResumed counts, in resumed mode, connections that did a full
	// handshake (no session to resume).
	NotResumed int64
	Elapsed    time.Duration
	ServerCPU  time.Duration // 0 when not measured
	P50, P99   time.Duration
	Params     string // TLS1.3/CurveP256/ecdsa-p256: version, group, server key
	FirstErr   error
	target     int // index of the target: names may repeat
}

// Rate is operations per second.
func (r TLSRow) Rate() float64 { return float64(r.Ops) / r.Elapsed.Seconds() }

// PerCPU is operations per server CPU-second, 0 when not measured.
func (r TLSRow) PerCPU() float64 {
	if r.ServerCPU <= 0 {
		return 0
	}
	return float64(r.Ops) / r.ServerCPU.Seconds()
}

// Check returns the first problem with o's settings.
func (o *TLSOptions) Check() error {
	switch {
	case o.Addr == "":
		return errors.New("--addr: no address given")
	case o.Cert == "" || o.Key == "":
		return errors.New("--cert, --key: a client certificate and key are required")
	case o.Concurrency < 1:
		return fmt.Errorf("--concurrency: must be at least 1, got %d", o.Concurrency)
	case o.Duration <= 0:
		return fmt.Errorf("--duration: must be positive, got %s", o.Duration)
	case o.Warmup < 0:
		return fmt.Errorf("--warmup: must not be negative, got %s", o.Warmup)
	case o.Rounds < 1 || o.Rounds > 100:
		return fmt.Errorf("--rounds: must be 1 to 100, got %d", o.Rounds)
	case o.ComparePID != 0 && o.Compare == "":
		return errors.New("--compare-pid: no --compare address given")
	case len(o.Names) != 0 && len(o.Names) != o.targetCount():
		return fmt.Errorf("--names: %d names for %d targets", len(o.Names), o.targetCount())
	}
	if _, ok := tlsCurves[o.Curve]; !ok {
		return fmt.Errorf("--curve: unknown group %q (P256, X25519, X25519MLKEM768)", o.Curve)
	}
	for _, m := range o.Modes {
		if !slices.Contains(TLSModes, m) {
			return fmt.Errorf("--mode: unknown mode %q (full, resumed, keepalive)", m)
		}
	}
	for flag, pid := range map[string]int{"--server-pid": o.ServerPID, "--compare-pid": o.ComparePID} {
		if pid == 0 {
			continue
		}
		if _, err := ProcessCPU(pid); err != nil {
			return fmt.Errorf("%s: %w", flag, err)
		}
	}
	return nil
}

func (o *TLSOptions) targetCount() int {
	if o.Compare != "" {
		return 2
	}
	return 1
}

// tlsTarget is one server under load.
type tlsTarget struct {
	index      int
	name, addr string
	pid        int // 0: CPU time not measured
}

// RunTLS runs every mode against every target, o.Rounds times, and
// writes the report to o.Out as it goes. With two targets the report ends
// with the ratio of the first to the second per mode: by wall-clock rate
// and by operations per server CPU-second, the median over the rounds.
func RunTLS(ctx context.Context, o TLSOptions) (*TLSResult, error) {
	if err := o.Check(); err != nil {
		return nil, err
	}
	w := o.Out
	if w == nil {
		w = io.Discard
	}
	cert, err := tls.LoadX509KeyPair(o.Cert, o.Key) // sets cert.Leaf: parsed once
	if err != nil {
		return nil, fmt.Errorf("--cert/--key: %w", err)
	}
	var roots *x509.CertPool
	if o.CACert != "" {
		if roots, err = loadPool(o.CACert); err != nil {
			return nil, fmt.Errorf("--cacert: %w", err)
		}
	}
	targets := []tlsTarget{{name: o.Addr, addr: o.Addr, pid: o.ServerPID}}
	if o.Compare != "" {
		targets = append(targets, tlsTarget{index: 1, name: o.Compare, addr: o.Compare, pid: o.ComparePID})
	}
	for i, n := range o.Names {
		targets[i].name = n
	}
	verify := "server chain verified once, then its leaf pinned"
	if roots == nil {
		verify = "server certificate NOT verified (InsecureSkipVerify)"
	}
	fmt.Fprintf(w, "client: %s key, offers %s, %s; %d connections, GOMAXPROCS %d\n",
		keyName(cert.Leaf), o.Curve, verify, o.Concurrency, runtime.GOMAXPROCS(0))
	fmt.Fprintf(w, "%-5s %-9s %-12s %9s %9s %8s %8s %6s %8s %5s %10s %9s  %s\n",
		"round", "mode", "target", "ops", "ops/s", "p50", "p99", "errors", "srv-cpu", "core", "ops/cpu-s", "cpu/op", "tls")
	res := &TLSResult{}
	for round := 1; round <= o.Rounds; round++ {
		order := slices.Clone(targets)
		if round%2 == 0 {
			slices.Reverse(order)
		}
		for _, mode := range o.Modes {
			for _, t := range order {
				if ctx.Err() != nil {
					return res, ctx.Err()
				}
				r := runTarget(ctx, t, mode, o, cert, roots)
				r.Round, r.Mode, r.Target, r.target = round, mode, t.name, t.index
				res.Rows = append(res.Rows, r)
				printTLSRow(w, r)
			}
		}
	}
	if len(targets) == 2 {
		res.printRatios(w, o.Modes, targets[0].name, targets[1].name)
	}
	for _, t := range targets {
		fmt.Fprintf(w, "answered %s: %d requests, warm-up included\n", t.name, res.Answered(t.index))
	}
	return res, nil
}

// Answered is how many requests target (0: --addr, 1: --compare) answered
// in the run, warm-ups included: each is one access log line at a
// gateway (scripts/bench-peers.sh checks it).
func (res *TLSResult) Answered(target int) int64 {
	var n int64
	for _, r := range res.Rows {
		if r.target == target {
			n += r.Ops + r.WarmupOps
		}
	}
	return n
}

func keyName(leaf *x509.Certificate) string {
	if leaf == nil {
		return "unknown"
	}
	if t, err := keytype.Of(leaf.PublicKey); err == nil {
		return string(t)
	}
	return leaf.PublicKeyAlgorithm.String()
}

func printTLSRow(w io.Writer, r TLSRow) {
	cpu, share, perCPU, perOp := "-", "-", "-", "-"
	if r.ServerCPU > 0 {
		cpu = r.ServerCPU.Round(10 * time.Millisecond).String()
		share = fmt.Sprintf("%.0f%%", 100*r.ServerCPU.Seconds()/r.Elapsed.Seconds())
		perCPU = fmt.Sprintf("%.0f", r.PerCPU())
		if r.Ops > 0 {
			perOp = (r.ServerCPU / time.Duration(r.Ops)).Round(time.Microsecond).String()
		}
	}
	fmt.Fprintf(w, "%-5d %-9s %-12s %9d %9.0f %8s %8s %6d %8s %5s %10s %9s  %s\n", r.Round, r.Mode, r.Target, r.Ops, r.Rate(),
		r.P50.Round(time.Microsecond), r.P99.Round(time.Microsecond), r.Errors, cpu, share, perCPU, perOp, r.Params)
	if r.NotResumed > 0 {
		fmt.Fprintf(w, "  %d connections did a full handshake (no session to resume)\n", r.NotResumed)
	}
	if r.FirstErr != nil {
		fmt.Fprintf(w, "  first error: %v\n", r.FirstErr)
	}
}

// printRatios prints, per mode, the ratio of the first target (named a)
// to the second (b): by
// wall-clock rate, and by operations per server CPU-second when both CPU
// times were measured. With several rounds it is the median of the
// rounds' ratios.
func (res *TLSResult) printRatios(w io.Writer, modes []string, a, b string) {
	rows := func(mode string, target int) []TLSRow {
		var out []TLSRow
		for _, r := range res.Rows {
			if r.Mode == mode && r.target == target {
				out = append(out, r)
			}
		}
		return out
	}
	fmt.Fprintf(w, "ratio %s/%s", a, b)
	if n := len(rows(modes[0], 0)); n > 1 {
		fmt.Fprintf(w, " (median of %d rounds; each round in brackets)", n)
	}
	fmt.Fprintln(w)
	for _, mode := range modes {
		ra, rb := rows(mode, 0), rows(mode, 1)
		var wall, cpu []float64
		for i := range ra {
			if rb[i].Rate() > 0 {
				wall = append(wall, ra[i].Rate()/rb[i].Rate())
			}
			if ra[i].PerCPU() > 0 && rb[i].PerCPU() > 0 {
				cpu = append(cpu, ra[i].PerCPU()/rb[i].PerCPU())
			}
		}
		fmt.Fprintf(w, "%-9s wall-clock %s", mode, ratioText(wall))
		if len(cpu) > 0 {
			fmt.Fprintf(w, "   per server CPU-second %s", ratioText(cpu))
		}
		fmt.Fprintln(w)
		fmt.Fprintf(w, "%-9s p99 (median of the rounds) %s %s, %s %s\n", mode, a, medianP99(ra), b, medianP99(rb))
	}
}

func medianP99(rows []TLSRow) time.Duration {
	var ps []float64
	for _, r := range rows {
		ps = append(ps, float64(r.P99))
	}
	if len(ps) == 0 {
		return 0
	}
	return time.Duration(median(ps)).Round(time.Microsecond)
}

func ratioText(rs []float64) string {
	if len(rs) == 0 {
		return "-"
	}
	s := fmt.Sprintf("%.2fx", median(rs))
	if len(rs) > 1 {
		parts := make([]string, len(rs))
		for i, r := range rs {
			parts[i] = fmt.Sprintf("%.2f", r)
		}
		s += " [" + strings.Join(parts, " ") + "]"
	}
	return s
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func loadPool(path string) (*x509.CertPool, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	certs, err := pemutil.ParseCertificates(data)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	for _, c := range certs {
		pool.AddCert(c)
	}
	return pool, nil
}
