//go:build !unix

package zone

import "os"

// FileID returns 0, 0 where files have no inode: every change then waits to settle.
func FileID(fi os.FileInfo) (dev, ino uint64) { return 0, 0 }
