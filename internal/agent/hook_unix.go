//go:build unix

package agent

import (
	"os/exec"
	"syscall"
)

// killGroupOnCancel runs the hook in its own process group and kills the
// whole group on timeout, so a child the shell started (a reload that
// hangs, a stray sleep) dies with it instead of holding the output pipes.
func killGroupOnCancel(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
}
