// Package duration is danezone's one duration parser: the Corefile (validity, fault windows,
// TLSA hold-downs...), the control API's JSON and the lab harness all read durations with it.
// It accepts Go durations ("90s", "1h30m") and whole days ("14d"), and refuses, with an error
// that quotes the input, anything else: empty strings, bare numbers other than 0, negative
// values and values beyond what a time.Duration holds (about 292 years), which would
// otherwise wrap around to a negative duration. What range makes sense for a setting is the
// setting's business: see Within.
package duration

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// Day is 24 hours: a "d" in a duration.
const Day = 24 * time.Hour

// maxDays is the longest duration there is, in whole days (106751, some 292 years).
const maxDays = math.MaxInt64 / int64(Day)

// Parse reads a Go duration or a whole number of days ("14d"). "0" is zero.
func Parse(s string) (time.Duration, error) {
	switch {
	case s == "":
		return 0, fmt.Errorf("invalid duration %q: empty", s)
	case strings.HasPrefix(s, "-"):
		return 0, fmt.Errorf("invalid duration %q: negative", s)
	}
	if n, ok := strings.CutSuffix(s, "d"); ok {
		n = strings.TrimPrefix(n, "+") // as Go durations allow
		if n == "" || strings.Trim(n, "0123456789") != "" {
			return 0, fmt.Errorf("invalid duration %q: days must be a whole number (%s)", s, want)
		}
		days, err := strconv.ParseInt(n, 10, 64)
		if errors.Is(err, strconv.ErrRange) || days > maxDays {
			return 0, overflow(s)
		}
		if err != nil {
			return 0, fmt.Errorf("invalid duration %q (%s)", s, want)
		}
		return time.Duration(days) * Day, nil
	}
	v, err := time.ParseDuration(s)
	if err == nil {
		return v, nil
	}
	switch {
	case strings.Trim(s, "+0123456789.") == "" && strings.ContainsAny(s, "0123456789"):
		return 0, fmt.Errorf("invalid duration %q: a unit is missing (%s)", s, want)
	case wellFormed(s):
		return 0, overflow(s) // time.ParseDuration refuses only the size of a well-formed value
	}
	return 0, fmt.Errorf("invalid duration %q (%s)", s, want)
}

// want is what a duration looks like, for error messages.
const want = `like "90s", "1h30m" or "14d"`

func overflow(s string) error {
	return fmt.Errorf("invalid duration %q: out of range (at most %dd)", s, maxDays)
}

// wellFormed reports whether s has the syntax of a Go duration: [+] then one or more of a
// decimal number and a unit.
func wellFormed(s string) bool {
	s = strings.TrimPrefix(s, "+")
	if s == "" {
		return false
	}
	for s != "" {
		digits := 0
		i := 0
		for ; i < len(s) && (s[i] >= '0' && s[i] <= '9' || s[i] == '.'); i++ {
			if s[i] != '.' {
				digits++
			}
		}
		if digits == 0 || strings.Count(s[:i], ".") > 1 {
			return false
		}
		s = s[i:]
		unit := ""
		for _, u := range []string{"ns", "us", "µs", "μs", "ms", "s", "m", "h"} {
			if strings.HasPrefix(s, u) && len(u) > len(unit) {
				unit = u
			}
		}
		if unit == "" {
			return false
		}
		s = s[len(unit):]
	}
	return true
}

// Seconds reads a JSON number of seconds (the control API accepts "after": 30 as well as
// "after": "30s"). Fractions are fine; negative, non-finite and out-of-range numbers are not.
func Seconds(s string) (time.Duration, error) {
	f, err := strconv.ParseFloat(s, 64)
	switch {
	case err != nil && !errors.Is(err, strconv.ErrRange), math.IsNaN(f):
		return 0, fmt.Errorf("invalid duration %s: not a number of seconds", s)
	case f < 0:
		return 0, fmt.Errorf("invalid duration %s seconds: negative", s)
	case math.IsInf(f, 1) && err == nil:
		return 0, fmt.Errorf("invalid duration %s seconds: not finite", s)
	// ErrRange with +Inf: beyond float64. 2^63 ns (float64(math.MaxInt64) rounds up to it) is
	// the first duration that overflows.
	case math.IsInf(f, 1), f*float64(time.Second) >= math.MaxInt64:
		return 0, fmt.Errorf("invalid duration %s seconds: out of range (at most %dd)", s, maxDays)
	}
	return time.Duration(f * float64(time.Second)), nil
}

// Within checks that d is in [lo, hi]; the error says which side it is off and by what
// bound, for the caller to prefix with the setting's name.
func Within(d, lo, hi time.Duration) error {
	switch {
	case d < lo:
		return fmt.Errorf("%s is too short (at least %s)", Format(d), Format(lo))
	case d > hi:
		return fmt.Errorf("%s is too long (at most %s)", Format(d), Format(hi))
	}
	return nil
}

// Format writes d as Parse reads it, compactly: "14d", "1h30m", "90s", "200ms".
func Format(d time.Duration) string {
	if d > 0 && d%Day == 0 {
		return strconv.FormatInt(int64(d/Day), 10) + "d"
	}
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = s[:len(s)-2]
	}
	if strings.HasSuffix(s, "h0m") {
		s = s[:len(s)-2]
	}
	return s
}
