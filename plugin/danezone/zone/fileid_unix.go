//go:build unix

package zone

import (
	"os"
	"syscall"
)

// FileID returns the device and inode of a file: a new inode at the same path means the file
// was replaced (renamed into place), not written over.
func FileID(fi os.FileInfo) (dev, ino uint64) {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return uint64(st.Dev), uint64(st.Ino) // Dev is an int32 on some systems
	}
	return 0, 0
}
