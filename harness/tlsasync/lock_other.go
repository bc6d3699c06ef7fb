//go:build !unix

package tlsasync

// lockState does nothing where there is no flock: one program per state file there.
func lockState(string) (func(), error) { return func() {}, nil }
