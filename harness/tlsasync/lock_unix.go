//go:build unix

package tlsasync

import (
	"fmt"
	"os"
	"syscall"
)

// lockState takes an exclusive lock on path's lock file (path + ".lock"), so that runs of
// danelab tlsa sync and gate on one state file do not lose each other's changes.
func lockState(path string) (unlock func(), err error) {
	f, err := os.OpenFile(path+".lock", os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("state lock: %v", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("state lock %s: %v", f.Name(), err)
	}
	return func() { syscall.Flock(int(f.Fd()), syscall.LOCK_UN); f.Close() }, nil
}
