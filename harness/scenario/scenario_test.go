package scenario

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const good = `{
  "name": "ok",
  "dns": {"mx": [{"host": "mx1", "tlsa": ["3 1 1"]}]},
  "expect": [{"at": 0, "status": "delivered", "tls": "dane"}],
  "final": {"state": "delivered"}
}`

func TestParseGood(t *testing.T) {
	s, err := Parse("x.json", []byte(good))
	if err != nil {
		t.Fatal(err)
	}
	if s.Profile != "exchange" || s.DNS.Domain != "example.test" || s.DNS.MX[0].Personality != "self-signed" {
		t.Errorf("defaults not applied: %+v", s)
	}
	if got := s.Summary(); got != "delivered/dane@0 ⇒ delivered" {
		t.Errorf("summary %q", got)
	}
}

// TestParseErrors: every problem names the file and the field.
func TestParseErrors(t *testing.T) {
	for _, tc := range []struct {
		name, json, want string
	}{
		{"unknown code", `{"name": "x", "dns": {"mx": [{"host": "mx1"}]}, "expect": [{"status": "4.7.324"}, {"status": "4.7.999"}], "final": {"state": "ndr", "code": "5.7.324"}}`,
			`x.json: expect[1].status: "4.7.999" is not a known code of the exchange profile`},
		{"postfix code under exchange", `{"name": "x", "dns": {"mx": [{"host": "mx1"}]}, "expect": [{"status": "4.7.5"}], "final": {"state": "ndr", "code": "4.7.5"}}`,
			`x.json: expect[0].status: "4.7.5" is not a known code of the exchange profile`},
		{"unknown field", `{"name": "x", "dns": {"mx": [{"host": "mx1", "tlsaa": []}]}, "expect": [{"status": "delivered"}], "final": {"state": "delivered"}}`,
			`x.json: dns.mx[0].tlsaa: unknown field; known fields here: host, zone`},
		{"wrong type", `{"name": "x", "dns": {"mx": [{"host": "mx1", "tlsa": "3 1 1"}]}, "expect": [{"status": "delivered"}], "final": {"state": "delivered"}}`,
			`x.json: dns.mx[0].tlsa: want a list, got the string "3 1 1"`},
		{"bad minutes", `{"name": "x", "dns": {"mx": [{"host": "mx1"}]}, "expect": [{"at": "soon", "status": "delivered"}], "final": {"state": "delivered"}}`,
			`x.json: expect[0].at: "soon" is not a duration`},
		{"minutes overflow", `{"name": "x", "dns": {"mx": [{"host": "mx1"}]}, "expect": [{"at": 1e300, "status": "delivered"}], "final": {"state": "delivered"}}`,
			`x.json: expect[0].at: 1e300 minutes is later than 720h`},
		{"duration overflow", `{"name": "x", "dns": {"mx": [{"host": "mx1"}]}, "faults": [{"mode": "servfail", "name": "example.test", "heal": "200000d"}], "expect": [{"status": "delivered"}], "final": {"state": "delivered"}}`,
			`x.json: faults[0].heal: "200000d" is not a duration`},
		{"late time", `{"name": "x", "dns": {"mx": [{"host": "mx1"}]}, "faults": [{"mode": "servfail", "name": "example.test", "heal": "31d"}], "expect": [{"status": "delivered"}], "final": {"state": "delivered"}}`,
			`x.json: faults[0].heal: "31d" is later than 720h`},
		{"tlsa hex", `{"name": "x", "dns": {"mx": [{"host": "mx1", "tlsa": ["3 1 1 zz"]}]}, "expect": [{"status": "delivered"}], "final": {"state": "delivered"}}`,
			`x.json: dns.mx[0].tlsa[0]: "3 1 1 zz": "zz" is not hex`},
		{"unknown field in a profile", `{"name": "x", "dns": {"mx": [{"host": "mx1"}]}, "expect": [{"status": "delivered"}], "final": {"state": "delivered"}, "profiles": {"postfix": {"expect": [{"status": "delivered", "colour": "red"}], "final": {"state": "delivered"}}}}`,
			`x.json: profiles.postfix.expect[0].colour: unknown field`},
		{"usage 2 without a CA", `{"name": "x", "dns": {"mx": [{"host": "mx1", "tlsa": ["2 0 1"]}]}, "expect": [{"status": "delivered"}], "final": {"state": "delivered"}}`,
			`x.json: dns.mx[0].tlsa[0]: "2 0 1" names the issuing CA, but the self-signed personality has none`},
		{"syntax", "{\n  \"name\": \"x\",,\n}", `x.json:2:15: invalid JSON`},
		{"personality", `{"name": "x", "dns": {"mx": [{"host": "mx1", "personality": "grumpy"}]}, "expect": [{"status": "delivered"}], "final": {"state": "delivered"}}`,
			`x.json: dns.mx[0].personality: "grumpy" is not a personality: self-signed, ca-chain`},
		{"tlsa", `{"name": "x", "dns": {"mx": [{"host": "mx1", "tlsa": ["3 1 9"]}]}, "expect": [{"status": "delivered"}], "final": {"state": "delivered"}}`,
			`x.json: dns.mx[0].tlsa[0]: TLSA matching type 9`},
		{"fault mode", `{"name": "x", "dns": {"mx": [{"host": "mx1"}]}, "faults": [{"mode": "explode", "name": "a.test"}], "expect": [{"status": "delivered"}], "final": {"state": "delivered"}}`,
			`x.json: faults[0].mode: unknown fault mode "explode"`},
		{"heal before start", `{"name": "x", "dns": {"mx": [{"host": "mx1"}]}, "faults": [{"mode": "servfail", "name": "a.test", "start": 30, "heal": 15}], "expect": [{"status": "delivered"}], "final": {"state": "delivered"}}`,
			`x.json: faults[0].heal: 15m is not after start 30m`},
		{"missing final", `{"name": "x", "dns": {"mx": [{"host": "mx1"}]}, "expect": [{"status": "delivered"}]}`,
			`x.json: final.state: is required`},
		{"ndr without code", `{"name": "x", "dns": {"mx": [{"host": "mx1"}]}, "expect": [{"status": "4.7.323"}], "final": {"state": "ndr"}}`,
			`x.json: final.code: is required for an NDR`},
		{"times go back", `{"name": "x", "dns": {"mx": [{"host": "mx1"}]}, "expect": [{"at": 15, "status": "4.7.323"}, {"at": 15, "status": "4.7.323"}], "final": {"state": "ndr", "code": "5.7.323"}}`,
			`x.json: expect[1].at: 15m is not after the previous attempt's 15m`},
		{"repeat not last", `{"name": "x", "dns": {"mx": [{"host": "mx1"}]}, "expect": [{"status": "4.7.323", "repeat": true}, {"status": "4.7.323"}], "final": {"state": "ndr", "code": "5.7.323"}}`,
			`x.json: expect[0].repeat: only the last attempt may repeat`},
		{"no mx", `{"name": "x", "dns": {}, "expect": [{"status": "delivered"}], "final": {"state": "delivered"}}`,
			`x.json: dns.mx: no MX hosts`},
		{"bad record", `{"name": "x", "dns": {"mx": [{"host": "mx1"}], "records": ["www A not-an-ip"]}, "expect": [{"status": "delivered"}], "final": {"state": "delivered"}}`,
			`x.json: dns.records[0]: "www A not-an-ip"`},
		{"profiles: unknown", `{"name": "x", "dns": {"mx": [{"host": "mx1"}]}, "expect": [{"status": "delivered"}], "final": {"state": "delivered"}, "profiles": {"sendmail": {"expect": [{"status": "delivered"}], "final": {"state": "delivered"}}}}`,
			`x.json: profiles.sendmail: "sendmail" is not a profile`},
		{"profiles: main again", `{"name": "x", "dns": {"mx": [{"host": "mx1"}]}, "expect": [{"status": "delivered"}], "final": {"state": "delivered"}, "profiles": {"exchange": {"expect": [{"status": "delivered"}], "final": {"state": "delivered"}}}}`,
			`x.json: profiles.exchange: is the main profile`},
		{"profiles: exchange code under postfix", `{"name": "x", "dns": {"mx": [{"host": "mx1"}]}, "expect": [{"status": "4.7.323", "repeat": true}], "final": {"state": "ndr", "code": "5.7.323"}, "profiles": {"postfix": {"expect": [{"status": "4.7.323"}], "final": {"state": "ndr", "code": "4.7.5"}}}}`,
			`x.json: profiles.postfix.expect[0].status: "4.7.323" is not a known code of the postfix profile`},
		{"expected tlsa", `{"name": "x", "dns": {"mx": [{"host": "mx1", "tlsa": ["3 1 1"]}]}, "expect": [{"status": "delivered", "tlsa": "3 1 1 later"}], "final": {"state": "delivered"}}`,
			`x.json: expect[0].tlsa: "3 1 1 later": "later" is not current, next or hex`},
		{"renew key", `{"name": "x", "dns": {"mx": [{"host": "mx1", "tlsa": ["3 1 1"], "renew": {"at": 10, "key": "old"}}]}, "expect": [{"status": "delivered"}], "final": {"state": "delivered"}}`,
			`x.json: dns.mx[0].renew.key: "old": want new or same`},
		{"renew at", `{"name": "x", "dns": {"mx": [{"host": "mx1", "tlsa": ["3 1 1"], "renew": {"staged": true}}]}, "expect": [{"status": "delivered"}], "final": {"state": "delivered"}}`,
			`x.json: dns.mx[0].renew.at: is required`},
		{"renew staged without record", `{"name": "x", "dns": {"mx": [{"host": "mx1", "tlsa": ["3 1 1 wrong"], "renew": {"at": 5, "staged": true}}]}, "expect": [{"status": "delivered"}], "final": {"state": "delivered"}}`,
			`x.json: dns.mx[0].renew.staged: no computed usage 3 record`},
		{"attempt before submission", `{"name": "x", "submit": 20, "dns": {"mx": [{"host": "mx1"}]}, "expect": [{"at": 10, "status": "delivered"}], "final": {"state": "delivered"}}`,
			`x.json: expect[0].at: 10m is before the submission at 20m`},
		{"mailbox domain", `{"name": "x", "dns": {"domain": "sender.test", "mx": [{"host": "mx1"}]}, "expect": [{"status": "delivered"}], "final": {"state": "delivered"}}`,
			`x.json: dns.domain: "sender.test" is the sender's own domain`},
		{"expected host", `{"name": "x", "dns": {"mx": [{"host": "mx1"}]}, "expect": [{"status": "delivered", "host": "mx9"}], "final": {"state": "delivered"}}`,
			`x.json: expect[0].host: "mx9" is not one of dns.mx[].host`},
		{"ndr after delivery", `{"name": "x", "dns": {"mx": [{"host": "mx1"}]}, "expect": [{"status": "delivered"}], "final": {"state": "ndr", "code": "5.7.323"}}`,
			`x.json: final.state: ndr, but the last expected attempt is delivered`},
		{"warmup without submit", `{"name": "x", "sender": {"cache": true, "warmup": true}, "dns": {"mx": [{"host": "mx1"}]}, "expect": [{"status": "delivered"}], "final": {"state": "delivered"}}`,
			`x.json: submit: the warm-up message is delivered at 0`},
		{"fault type", `{"name": "x", "dns": {"mx": [{"host": "mx1"}]}, "faults": [{"mode": "servfail", "name": "example.test", "type": "TLSAX"}], "expect": [{"status": "delivered"}], "final": {"state": "delivered"}}`,
			`x.json: faults[0].type: "TLSAX" is not a record type`},
		{"fault outside", `{"name": "x", "dns": {"mx": [{"host": "mx1"}]}, "faults": [{"mode": "servfail", "name": "other.test"}], "expect": [{"status": "delivered"}], "final": {"state": "delivered"}}`,
			`x.json: faults[0].name: "other.test" is not in dns.domain or dns.zones`},
		{"fault zone", `{"name": "x", "dns": {"mx": [{"host": "mx1"}]}, "faults": [{"mode": "servfail", "name": "example.test", "zone": "other.test"}], "expect": [{"status": "delivered"}], "final": {"state": "delivered"}}`,
			`x.json: faults[0].zone: "other.test" is not dns.domain nor one of dns.zones`},
		{"tlsa owner", `{"name": "x", "dns": {"mx": [{"host": "mx1", "tlsa_owner": "foo bar"}]}, "expect": [{"status": "delivered"}], "final": {"state": "delivered"}}`,
			`x.json: dns.mx[0].tlsa_owner: "foo bar" is not a domain name`},
		{"dotted name", `{"name": "a..b", "dns": {"mx": [{"host": "mx1"}]}, "expect": [{"status": "delivered"}], "final": {"state": "delivered"}}`,
			`x.json: name: "a..b": use letters, digits`},
		{"profile", `{"name": "x", "profile": "sendmail", "dns": {"mx": [{"host": "mx1"}]}, "expect": [{"status": "delivered"}], "final": {"state": "delivered"}}`,
			`x.json: profile: "sendmail" is not a profile`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("x.json", []byte(tc.json))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v\nwant it to contain %q", err, tc.want)
			}
		})
	}
}

func TestParsePostfixCodes(t *testing.T) {
	js := `{"name": "x", "profile": "postfix", "dns": {"mx": [{"host": "mx1", "tlsa": ["wrong"]}]},
	  "expect": [{"at": 0, "status": "4.7.5"}, {"at": "5m", "status": "4.7.5", "repeat": true}], "final": {"state": "ndr", "code": "4.7.5", "at": "5d"}}`
	s, err := Parse("p.json", []byte(js))
	if err != nil {
		t.Fatal(err)
	}
	if time.Duration(*s.Final.At) != 5*24*time.Hour || time.Duration(*s.Expect[1].At) != 5*time.Minute {
		t.Errorf("times %v %v", *s.Final.At, *s.Expect[1].At)
	}
}

func TestLoadDir(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "a.json"), []byte(good), 0o644)
	os.WriteFile(filepath.Join(dir, "b.json"), []byte(good), 0o644)
	os.WriteFile(filepath.Join(dir, "c.json"), []byte(`{"name": 3}`), 0o644)
	ss, err := LoadDir(dir)
	if len(ss) != 1 || err == nil {
		t.Fatalf("%d scenarios, err %v", len(ss), err)
	}
	for _, want := range []string{
		filepath.Join(dir, "b.json") + `: name: "ok" is also the name of ` + filepath.Join(dir, "a.json"),
		filepath.Join(dir, "c.json") + `: name: want a string, got the number 3`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %v\nlacks %q", err, want)
		}
	}
	if _, err := LoadDir(t.TempDir()); err == nil || !strings.Contains(err.Error(), "no scenario files") {
		t.Errorf("empty dir: %v", err)
	}
}

func TestCompare(t *testing.T) {
	m := func(d time.Duration) *Minutes { x := Minutes(d); return &x }
	s := &Scenario{
		Expect: []Attempt{{At: m(0), Status: "4.7.324"}, {At: m(15 * time.Minute), Status: "4.7.324"}, {At: m(30 * time.Minute), Status: "delivered", TLS: "dane"}},
		Final:  Final{State: StateDelivered},
	}
	ok := Result{Attempts: []Observed{
		{N: 1, Age: 0, At: "0", Status: "4.7.324"},
		{N: 2, Age: 15 * time.Minute, At: "15m", Status: "4.7.324"},
		{N: 3, Age: 30 * time.Minute, At: "30m", Status: "2.0.0", TLS: "dane"},
	}, FinalState: StateDelivered, FinalAge: 30 * time.Minute}
	if d := Compare(s, ok); len(d) != 0 {
		t.Errorf("diffs %v", d)
	}
	bad := ok
	bad.Attempts = append([]Observed(nil), ok.Attempts...)
	bad.Attempts[2] = Observed{N: 3, Age: 30 * time.Minute, At: "30m", Status: "4.7.324", Result: "dnssec-invalid"}
	bad.Attempts = append(bad.Attempts, Observed{N: 4, Age: 45 * time.Minute, At: "45m", Status: "2.0.0", TLS: "may"})
	bad.FinalAge = 45 * time.Minute
	got := strings.Join(Compare(s, bad), "\n")
	for _, want := range []string{
		"attempt 3 (+30m): status 4.7.324, want delivered (dnssec-invalid)",
		`attempt 3 (+30m): tls "", want "dane"`,
		"attempt 4 (+45m): unexpected: delivered tls=may",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("diffs\n%s\nlack %q", got, want)
		}
	}
	// Repeat: every remaining attempt must match; at least one.
	r := &Scenario{Expect: []Attempt{{At: m(0), Status: "4.7.323", Repeat: true}}, Final: Final{State: StateNDR, Code: "5.7.323", At: m(24 * time.Hour)}}
	obs := Result{Attempts: []Observed{{N: 1, At: "0", Status: "4.7.323"}, {N: 2, Age: time.Hour, At: "1h", Status: "4.7.324"}},
		FinalState: StateNDR, FinalCode: "5.7.324", FinalAge: 24 * time.Hour}
	got = strings.Join(Compare(r, obs), "\n")
	for _, want := range []string{"attempt 2 (+1h): status 4.7.324, want 4.7.323", "final: NDR code 5.7.324, want 5.7.323"} {
		if !strings.Contains(got, want) {
			t.Errorf("diffs\n%s\nlack %q", got, want)
		}
	}
	if d := Compare(r, Result{FinalState: "queued"}); len(d) != 2 {
		t.Errorf("no attempts: %v", d)
	}
}

func TestFormatAge(t *testing.T) {
	for d, want := range map[time.Duration]string{0: "0", 15 * time.Minute: "15m", 24 * time.Hour: "24h",
		1425 * time.Minute: "23h45m", 4000 * time.Second: "1h6m40s"} {
		if got := FormatAge(d); got != want {
			t.Errorf("FormatAge(%v) = %q, want %q", d, got, want)
		}
	}
}
