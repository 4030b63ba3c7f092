package workloadapi

import (
	"fmt"
	"net"

	"golang.org/x/sys/unix"
)

func peerCred(c *net.UnixConn) (Caller, error) {
	raw, err := c.SyscallConn()
	if err != nil {
		return Caller{}, fmt.Errorf("workloadapi: %w", err)
	}
	var cred *unix.Ucred
	var serr error
	if err := raw.Control(func(fd uintptr) {
		cred, serr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil {
		return Caller{}, fmt.Errorf("workloadapi: %w", err)
	}
	if serr != nil {
		return Caller{}, fmt.Errorf("workloadapi: SO_PEERCRED: %w", serr)
	}
	return Caller{PID: cred.Pid, UID: cred.Uid, GID: cred.Gid}, nil
}
