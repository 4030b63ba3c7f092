//go:build !linux

package workloadapi

import (
	"errors"
	"net"
)

func peerCred(*net.UnixConn) (Caller, error) {
	return Caller{}, errors.New("workloadapi: caller credentials (SO_PEERCRED) need Linux")
}
