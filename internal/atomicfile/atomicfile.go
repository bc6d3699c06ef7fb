// Package atomicfile writes files so that a reader (or a crash) sees the old content or the
// new, never a part: keys, state files, installed certificates.
package atomicfile

import (
	"fmt"
	"os"
	"path/filepath"
)

// Temp writes data to a new temporary file beside path (same directory, so a rename is
// atomic), with mode, synced to disk, and returns its name. The caller renames or links it
// into place, and removes it if that fails.
func Temp(path string, data []byte, mode os.FileMode) (name string, err error) {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return "", fmt.Errorf("writing %s: %w", path, err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	// CreateTemp makes the file 0600; Chmod, not the umask, decides.
	if err := f.Chmod(mode); err != nil {
		return "", fmt.Errorf("writing %s: %w", path, err)
	}
	if _, err := f.Write(data); err != nil {
		return "", fmt.Errorf("writing %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		return "", fmt.Errorf("writing %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return "", fmt.Errorf("writing %s: %w", path, err)
	}
	return f.Name(), nil
}

// Write replaces path by data with mode: a temporary file renamed over it.
func Write(path string, data []byte, mode os.FileMode) error {
	tmp, err := Temp(path, data, mode)
	if err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}
