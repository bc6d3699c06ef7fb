package duration

import (
	"strings"
	"testing"
	"time"
)

func TestParse(t *testing.T) {
	tests := []struct {
		in   string
		want time.Duration
		err  string // a part of the error; "" for none
	}{
		{"90s", 90 * time.Second, ""},
		{"1h30m", 90 * time.Minute, ""},
		{"200ms", 200 * time.Millisecond, ""},
		{"1.5h", 90 * time.Minute, ""},
		{"+2h", 2 * time.Hour, ""},
		{"0", 0, ""},
		{"0s", 0, ""},
		{"0d", 0, ""},
		{"14d", 14 * Day, ""},
		{"106751d", 106751 * Day, ""}, // the last whole day a time.Duration holds
		{"2562047h", 2562047 * time.Hour, ""},

		// Overflow: these used to wrap around to a negative duration, or were refused as if
		// they were garbage.
		{"200000d", 0, `invalid duration "200000d": out of range (at most 106751d)`},
		{"106752d", 0, "out of range"},
		{"99999999999999999999d", 0, "out of range"},
		{"9999999h", 0, `invalid duration "9999999h": out of range`},
		{"2562048h", 0, "out of range"},
		{"9223372036854775808ns", 0, "out of range"},
		{"1000000000000000000000s", 0, "out of range"},

		// Negative values.
		{"-1h", 0, `invalid duration "-1h": negative`},
		{"-14d", 0, `invalid duration "-14d": negative`},
		{"-0s", 0, "negative"},

		// Bare numbers: only 0 goes without a unit.
		{"30", 0, `invalid duration "30": a unit is missing`},
		{"1.5", 0, "a unit is missing"},

		// Days are whole.
		{"1.5d", 0, `invalid duration "1.5d": days must be a whole number`},
		{"d", 0, `invalid duration "d"`},
		{"+3d", 3 * Day, ""},
		{"+d", 0, `invalid duration "+d"`},
		{"++3d", 0, "whole number"},

		// Garbage.
		{"", 0, `invalid duration "": empty`},
		{"soon", 0, `invalid duration "soon"`},
		{"14 d", 0, `invalid duration "14 d"`},
		{"1d12h", 0, `invalid duration "1d12h"`},
		{"1w", 0, `invalid duration "1w"`},
		{"1e3s", 0, `invalid duration "1e3s"`},
		{"1..5s", 0, `invalid duration "1..5s"`},
		{".", 0, `invalid duration "."`},
		{"h", 0, `invalid duration "h"`},
		{" 1h", 0, `invalid duration " 1h"`},
	}
	for _, tc := range tests {
		got, err := Parse(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("Parse(%q) = %v, %v; want error %q", tc.in, got, err, tc.err)
			}
			if err != nil && !strings.Contains(err.Error(), `"`+tc.in+`"`) {
				t.Errorf("Parse(%q): error %q does not quote the input", tc.in, err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("Parse(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
}

func TestSeconds(t *testing.T) {
	tests := []struct {
		in   string
		want time.Duration
		err  string
	}{
		{"30", 30 * time.Second, ""},
		{"0.5", 500 * time.Millisecond, ""},
		{"0", 0, ""},
		{"1e-400", 0, ""}, // too small for a float64: zero
		{"9223372036", 9223372036 * time.Second, ""},
		{"-60", 0, "invalid duration -60 seconds: negative"},
		{"-1e400", 0, "negative"},
		{"1e300", 0, "invalid duration 1e300 seconds: out of range"},
		{"1e400", 0, "out of range"},
		{"9223372037", 0, "out of range"},
		{"NaN", 0, "not a number"},
		{"Inf", 0, "not finite"},
		{"x", 0, "not a number"},
	}
	for _, tc := range tests {
		got, err := Seconds(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("Seconds(%q) = %v, %v; want error %q", tc.in, got, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("Seconds(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
}

func TestWithin(t *testing.T) {
	tests := []struct {
		d   time.Duration
		err string
	}{
		{time.Hour, ""},
		{730 * Day, ""},
		{59 * time.Minute, "59m is too short (at least 1h)"},
		{731 * Day, "731d is too long (at most 730d)"},
		{30000 * Day, "30000d is too long (at most 730d)"},
	}
	for _, tc := range tests {
		err := Within(tc.d, time.Hour, 730*Day)
		if (err == nil) != (tc.err == "") || err != nil && err.Error() != tc.err {
			t.Errorf("Within(%v) = %v, want %q", tc.d, err, tc.err)
		}
	}
}

func TestFormat(t *testing.T) {
	for d, want := range map[time.Duration]string{
		0: "0s", 14 * Day: "14d", time.Hour: "1h", 90 * time.Minute: "1h30m", 10 * time.Minute: "10m",
		90 * time.Second: "1m30s", 200 * time.Millisecond: "200ms", 36 * time.Hour: "36h",
	} {
		if got := Format(d); got != want {
			t.Errorf("Format(%v) = %q, want %q", time.Duration(d), got, want)
		}
		if d == 0 {
			continue
		}
		if back, err := Parse(Format(d)); err != nil || back != d {
			t.Errorf("Parse(Format(%v)) = %v, %v", time.Duration(d), back, err)
		}
	}
}
