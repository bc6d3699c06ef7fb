// Package peer finds the external programs, "peers", that tests run to judge the lab or
// to compare with: delv, unbound, openssl, postfix, ldns-dane, the BIND tools, pebble, lego.
//
// A test whose peer is not installed skips locally, but fails under CI=true: CI installs every
// peer (.ci/run), so a skip there would only hide a missing install step.
//
//	delv := peer.Need(t, "delv") // the path of delv, or the test ends here
package peer

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
)

// Packages maps each peer the tests run to the Debian package that installs it. .ci/run
// installs each of these packages, except the base system's (Base).
var Packages = map[string]string{
	"delv":              "bind9-dnsutils",
	"dig":               "bind9-dnsutils",
	"dnssec-dsfromkey":  "bind9-utils",
	"dnssec-keygen":     "bind9-utils",
	"dnssec-settime":    "bind9-utils",
	"dnssec-signzone":   "bind9-utils",
	"dnssec-verify":     "bind9-utils",
	"unbound":           "unbound",
	"unbound-checkconf": "unbound",
	"ldns-dane":         "ldnsutils",
	"ldns-verify-zone":  "ldnsutils",
	"openssl":           "openssl",
	"postfix":           "postfix",
	"chromium":          "chromium",
	"postconf":          "postfix",
	"postqueue":         "postfix",
	"posttls-finger":    "postfix",
	"tlsa":              "hash-slinger",
	"pebble":            "pebble",
	"lego":              "lego",
	"unshare":           "util-linux",
	"mount":             "mount",
}

// Base holds the packages of Packages that every Debian system has (Priority: required).
var Base = map[string]bool{"util-linux": true, "mount": true}

// CI reports whether the tests run in CI: the environment variable CI is true (CI=true, as
// .ci/run and most CI services set it; CI=1 counts too).
func CI() bool {
	ci, _ := strconv.ParseBool(os.Getenv("CI"))
	return ci
}

// sbin holds the directories Look searches after PATH.
var sbin = []string{"/usr/sbin", "/usr/bin", "/sbin", "/usr/local/sbin"}

// Look returns the path of program: found in PATH, or else as an executable file in an sbin
// directory (unbound and postfix live in /usr/sbin, which a user's PATH often lacks).
func Look(program string) (string, error) {
	if p, err := exec.LookPath(program); err == nil {
		return p, nil
	}
	for _, d := range sbin {
		p := filepath.Join(d, program)
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", exec.ErrNotFound
}

// Missing returns "" when program is installed, else a message that says so and names the
// Debian package that installs it.
func Missing(program string) string {
	if _, err := Look(program); err == nil {
		return ""
	}
	msg := fmt.Sprintf("peer %q is not installed", program)
	if pkg, ok := Packages[program]; ok {
		msg += fmt.Sprintf(" (Debian package %s)", pkg)
	}
	return msg + "; CI installs it via .ci/run"
}

// Need returns the path of program. When it is not installed, Need ends tb: it fails tb
// under CI=true and skips it otherwise (see Absent). Call it from the test's goroutine.
func Need(tb testing.TB, program string) string {
	tb.Helper()
	p, err := Look(program)
	if err != nil {
		Absent(tb, Missing(program))
	}
	return p
}

// Absent ends tb for want of a peer; why says which (e.g. from Missing). Under CI=true it
// fails tb, since CI installs every peer; otherwise it skips tb.
func Absent(tb testing.TB, why string) {
	tb.Helper()
	if CI() {
		tb.Fatalf("%s\nCI=true: a missing peer fails the test rather than skip it; install it in .ci/run", why)
	}
	tb.Skip(why)
}
