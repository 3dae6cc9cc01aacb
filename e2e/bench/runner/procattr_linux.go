package runner

import (
	"os/exec"
	"syscall"
)

// setProcAttr makes the kernel kill a server when the harness dies, so an
// interrupted run never leaves servers behind.
func setProcAttr(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
