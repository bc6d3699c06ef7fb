//go:build unix

package danezone

import (
	"os"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Item 4: a named pipe put in place of the zone file is an error like a directory, and the
// poll does not hang reading it (nothing would ever write to it).
func TestZoneFileReplacedByPipe(t *testing.T) {
	d, cfg, zf := startBad(t, true, nil)
	if err := os.Remove(zf); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(zf, 0o644); err != nil {
		t.Skipf("no named pipes here: %v", err)
	}
	failed := map[string]string{}
	done := make(chan struct{})
	go func() {
		d.check(cfg, failed)
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		f, _ := os.OpenFile(zf, os.O_WRONLY, 0) // let the reader go
		f.Close()
		t.Fatal("the poll hung on a named pipe in place of the zone file")
	}
	if !strings.Contains(failed[zf], zf+": is a named pipe, not a zone file") {
		t.Errorf("want the error %q, got %v", zf+": is a named pipe, not a zone file", failed)
	}
	checkCases(t, d, lastGood)
}
