package workloadapi

import (
	"context"
	"errors"
	"net"

	"google.golang.org/grpc/credentials"
)

// Caller is who is on the other end of a unix socket, as the kernel says
// (SO_PEERCRED: the credentials of the process that connected).
type Caller struct {
	PID      int32
	UID, GID uint32
}

// AuthType implements credentials.AuthInfo.
func (Caller) AuthType() string { return "unix-peercred" }

// peerCredentials are gRPC transport credentials that secure nothing (the
// socket is local) but read the caller's unix credentials at accept.
type peerCredentials struct{}

func (peerCredentials) ServerHandshake(c net.Conn) (net.Conn, credentials.AuthInfo, error) {
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return nil, nil, errors.New("workloadapi: not a unix socket connection")
	}
	who, err := peerCred(uc)
	if err != nil {
		return nil, nil, err
	}
	return c, who, nil
}

func (peerCredentials) ClientHandshake(context.Context, string, net.Conn) (net.Conn, credentials.AuthInfo, error) {
	return nil, nil, errors.New("workloadapi: server-side credentials only")
}

func (peerCredentials) Info() credentials.ProtocolInfo {
	return credentials.ProtocolInfo{SecurityProtocol: "unix-peercred"}
}

func (p peerCredentials) Clone() credentials.TransportCredentials { return p }

func (peerCredentials) OverrideServerName(string) error { return nil }
