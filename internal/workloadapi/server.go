package workloadapi

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"

	workload "github.com/spiffe/go-spiffe/v2/proto/spiffe/workload"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/certgate/certgate/certgatetls"
	"github.com/certgate/certgate/internal/identity"
)

// Header is the metadata every Workload API call must carry, with the
// value "true" (SPIFFE Workload Endpoint, "Transport").
const Header = "workload.spiffe.io"

// Options configure a Server.
type Options struct {
	// UIDs and GIDs are the callers served: a caller whose uid is in
	// UIDs or whose gid (primary, as the kernel reports it) is in GIDs.
	// Both empty: the agent's own uid only.
	UIDs, GIDs []uint32
	Log        *slog.Logger // discards if nil
}

// Server is the Workload API. Its methods are safe for concurrent use.
type Server struct {
	workload.UnimplementedSpiffeWorkloadAPIServer
	o Options

	mu      sync.Mutex
	cur     *certgatetls.Credentials
	changed chan struct{} // closed and replaced by Update
}

// New returns a server of c, which Update replaces.
func New(c *certgatetls.Credentials, o Options) (*Server, error) {
	if c == nil {
		return nil, errors.New("workloadapi: no credentials")
	}
	if c.Key() == nil {
		return nil, errors.New("workloadapi: the credentials have no key")
	}
	if c.KeyURI() != "" {
		// The API hands the private key to the workload; a key in a
		// token or a TPM never leaves it.
		return nil, errors.New("workloadapi: the key is held in a device (a PKCS#11 token or a TPM) and cannot be handed to workloads; enroll with --key-store file for the Workload API")
	}
	if len(o.UIDs) == 0 && len(o.GIDs) == 0 {
		o.UIDs = []uint32{uint32(os.Getuid())}
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	return &Server{o: o, cur: c, changed: make(chan struct{})}, nil
}

// Update makes c the credentials served and sends them to every open
// stream.
func (s *Server) Update(c *certgatetls.Credentials) {
	s.mu.Lock()
	s.cur = c
	close(s.changed)
	s.changed = make(chan struct{})
	s.mu.Unlock()
}

func (s *Server) current() (*certgatetls.Credentials, <-chan struct{}) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cur, s.changed
}

// ParseAddr accepts the socket address as SPIFFE_ENDPOINT_SOCKET spells
// it, unix:///path (or unix:/path), and returns the path.
func ParseAddr(addr string) (string, error) {
	u, err := url.Parse(addr)
	if err != nil || u.Scheme != "unix" {
		return "", fmt.Errorf("workloadapi: %q is not a unix:///path address", addr)
	}
	p := u.Path
	if u.Opaque != "" || u.Host != "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil || !strings.HasPrefix(p, "/") {
		return "", fmt.Errorf("workloadapi: %q is not a unix:///path address (absolute path, nothing else)", addr)
	}
	return p, nil
}

// Listen removes a stale socket at path and listens there, mode 0666:
// who may call is decided by the allow list on each call, by the kernel's
// word, not by the file's mode.
func Listen(path string) (net.Listener, error) {
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode()&os.ModeSocket == 0 {
			return nil, fmt.Errorf("workloadapi: %s exists and is not a socket", path)
		}
		if c, err := net.Dial("unix", path); err == nil {
			c.Close()
			return nil, fmt.Errorf("workloadapi: %s is in use by another process", path)
		}
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("workloadapi: %w", err)
		}
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("workloadapi: %w", err)
	}
	if err := os.Chmod(path, 0o666); err != nil {
		ln.Close()
		return nil, fmt.Errorf("workloadapi: %w", err)
	}
	return ln, nil
}

// Serve serves the Workload API on ln until ctx ends.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	g := grpc.NewServer(grpc.Creds(peerCredentials{}),
		grpc.UnaryInterceptor(func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
			if err := s.admit(ctx, info.FullMethod); err != nil {
				return nil, err
			}
			return h(ctx, req)
		}),
		grpc.StreamInterceptor(func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
			if err := s.admit(ss.Context(), info.FullMethod); err != nil {
				return err
			}
			return h(srv, ss)
		}))
	workload.RegisterSpiffeWorkloadAPIServer(g, s)
	done := make(chan struct{})
	go func() {
		select {
		case <-ctx.Done():
			g.Stop() // streams never end by themselves
		case <-done:
		}
	}()
	err := g.Serve(ln)
	close(done)
	if ctx.Err() != nil {
		return nil
	}
	return err
}

// admit checks the security header, then who the caller is.
func (s *Server) admit(ctx context.Context, method string) error {
	md, _ := metadata.FromIncomingContext(ctx)
	if v := md.Get(Header); len(v) != 1 || v[0] != "true" {
		s.o.Log.Info("workload API call refused", "method", method, "reason", "security header missing")
		return status.Error(codes.InvalidArgument, "security header missing from request")
	}
	p, ok := peer.FromContext(ctx)
	var who Caller
	if ok {
		who, ok = p.AuthInfo.(Caller)
	}
	if !ok {
		return status.Error(codes.Unauthenticated, "caller's unix credentials are unknown")
	}
	if !slices.Contains(s.o.UIDs, who.UID) && !slices.Contains(s.o.GIDs, who.GID) {
		s.o.Log.Warn("workload API call refused", "method", method, "uid", who.UID, "gid", who.GID, "pid", who.PID)
		return status.Errorf(codes.PermissionDenied, "no identity issued: uid %d, gid %d is not allowed", who.UID, who.GID)
	}
	return nil
}

// FetchX509SVID streams the SVID: now, then after every renewal.
func (s *Server) FetchX509SVID(_ *workload.X509SVIDRequest, stream grpc.ServerStreamingServer[workload.X509SVIDResponse]) error {
	for {
		c, changed := s.current()
		resp, err := svidResponse(c)
		if err != nil {
			return status.Errorf(codes.Internal, "%v", err)
		}
		if err := stream.Send(resp); err != nil {
			return err
		}
		select {
		case <-changed:
		case <-stream.Context().Done():
			return nil
		}
	}
}

// FetchX509Bundles streams the trust bundle: now, then after every
// renewal (a rotation of the root shows there).
func (s *Server) FetchX509Bundles(_ *workload.X509BundlesRequest, stream grpc.ServerStreamingServer[workload.X509BundlesResponse]) error {
	for {
		c, changed := s.current()
		td, err := trustDomainOf(c)
		if err != nil {
			return status.Errorf(codes.Internal, "%v", err)
		}
		if err := stream.Send(&workload.X509BundlesResponse{Bundles: map[string][]byte{td: concat(c.Bundle)}}); err != nil {
			return err
		}
		select {
		case <-changed:
		case <-stream.Context().Done():
			return nil
		}
	}
}

func svidResponse(c *certgatetls.Credentials) (*workload.X509SVIDResponse, error) {
	key, err := x509.MarshalPKCS8PrivateKey(c.Key())
	if err != nil {
		// A key held in a device cannot be handed to a workload.
		return nil, fmt.Errorf("workloadapi: the key cannot be handed out: %w", err)
	}
	return &workload.X509SVIDResponse{Svids: []*workload.X509SVID{{
		SpiffeId:    c.Identity,
		X509Svid:    concat(c.Chain),
		X509SvidKey: key,
		Bundle:      concat(c.Bundle),
	}}}, nil
}

func trustDomainOf(c *certgatetls.Credentials) (string, error) {
	id, err := identity.Parse(c.Identity)
	if err != nil {
		return "", fmt.Errorf("workloadapi: %w", err)
	}
	return "spiffe://" + id.TrustDomain(), nil
}

func concat(certs []*x509.Certificate) []byte {
	var b []byte
	for _, c := range certs {
		b = append(b, c.Raw...)
	}
	return b
}
