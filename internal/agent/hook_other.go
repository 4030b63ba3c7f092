//go:build !unix

package agent

import "os/exec"

// killGroupOnCancel leaves the default: only the shell is killed, and
// hookWaitDelay bounds the wait for its children's pipes.
func killGroupOnCancel(*exec.Cmd) {}
