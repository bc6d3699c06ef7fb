// Package serial owns the SOA serial danezone serves: the policy that picks the next one, RFC
// 1982 arithmetic, and the state file that keeps it from going backwards across restarts.
//
// A secondary transfers a zone only when the primary's serial is greater than its own (RFC
// 1982 §3.2 comparison), so every change of what a secondary would receive (the zone file,
// runtime records, TLSA records, signatures) gets a new, greater serial, and no serial is
// ever served twice for different contents: not after a restart either, when every signature
// is made anew.
package serial

import (
	"fmt"
	"time"
)

// Policy picks the next serial.
type Policy string

// The policies.
const (
	// Unixtime: the time of the change in seconds since 1970 (or one more than the last
	// serial, if that is greater): what Knot and PowerDNS call unixtime/epoch.
	Unixtime Policy = "unixtime"
	// Increment: one more than the last serial served.
	Increment Policy = "increment"
	// File: the zone file's serial, when it is greater than the last one served (the
	// operator bumps it on every edit); danezone's own changes add one to the last.
	File Policy = "file"
)

// Parse checks a policy name.
func Parse(s string) (Policy, error) {
	switch p := Policy(s); p {
	case Unixtime, Increment, File:
		return p, nil
	}
	return "", fmt.Errorf("unknown serial policy %q: valid are unixtime, increment, file", s)
}

// Less reports s1 < s2 in serial number arithmetic (RFC 1982 §3.2, SERIAL_BITS 32). Serials
// 2^31 apart compare as neither: Less is false both ways.
func Less(s1, s2 uint32) bool {
	return s1 != s2 && s2-s1 < 1<<31
}

// Next returns the serial for a new version of a zone. last is the serial served before
// (have: there was one, here or in the state file), file is the zone file's serial.
// The result is always greater than last (RFC 1982 §3.1 addition: at most 2^31-1 ahead).
func (p Policy) Next(last uint32, have bool, file uint32, now time.Time) uint32 {
	var want uint32
	switch p {
	case Increment:
		want = last + 1
		if !have {
			want = file
		}
	case File:
		want = file
	default: // Unixtime, the default
		want = uint32(now.Unix())
	}
	if !have || (Less(last, want) && want-last <= 1<<31-1) {
		return want
	}
	return last + 1
}
