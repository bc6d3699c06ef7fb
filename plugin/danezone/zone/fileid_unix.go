//go:build unix

package zone

import (
	"os"
	"syscall"
	"time"
)

// FileID returns the device and inode of a file, and when its inode last changed. A new
// inode at the same path means the file was replaced, not written over; a change time later
// than the modification time means it was renamed into place after its last write (rename(2)
// sets the change time), so it is complete.
func FileID(fi os.FileInfo) (dev, ino uint64, changed time.Time) {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		// Dev is an int32 on some systems; Ctim's fields are int32 on some 32-bit ones.
		return uint64(st.Dev), uint64(st.Ino), time.Unix(int64(st.Ctim.Sec), int64(st.Ctim.Nsec))
	}
	return 0, 0, time.Time{}
}
