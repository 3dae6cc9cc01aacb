package harness

import (
	"os/exec"
	"syscall"
)

// setProcAttr makes the kernel kill the child when the test binary dies, so
// that an interrupted test run never leaves servers behind.
func setProcAttr(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
