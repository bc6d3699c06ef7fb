package scenario

import (
	"bytes"
	"encoding/json"
	"testing"
)

// FuzzScenarioParse feeds arbitrary bytes to Parse: it must return an error or a scenario,
// never panic, and a scenario it accepts must survive being written back as JSON: the
// re-encoding parses, and encodes to the same bytes (the same value: validation's
// normalisation is stable, and nil and empty lists are one value in the format).
// Seeds: testdata/fuzz/FuzzScenarioParse (files of harness/scenarios) and the literals below.
func FuzzScenarioParse(f *testing.F) {
	f.Add([]byte(good))
	f.Add([]byte(`{"name": "Every.field", "description": "d", "profile": "postfix", "submit": "90s",
  "sender": {"cache": true, "warmup": true, "dns_timeout": 0.5},
  "dns": {"domain": "Example.TEST.", "mx": [
      {"host": "mx1", "zone": "other.test.", "preference": 10, "personality": "self-signed",
       "tlsa": ["3 1 1", "2 1 1", "3 1 1 wrong", "wrong", "1 0 0 00ff"], "tlsa_owner": "_25._tcp.mx1.other.test.",
       "tlsa_ttl": 60, "renew": {"at": "1h6m40s", "staged": true}},
      {"host": "mx2", "no_receiver": true, "no_mx": true}],
    "records": ["www 60 IN A 192.0.2.1", "@ MX 20 mx2"],
    "zones": [{"name": "other.test", "unsigned": true, "records": ["x TXT \"a b\""]}]},
  "faults": [{"mode": "delay", "name": "*.example.test", "type": "a", "zone": "example.test", "count": 2,
              "share": 0.25, "delay": "1500ms", "start": 1.5, "heal": "2d"}],
  "expect": [{"at": "90s", "status": "4.7.5", "result": "dnssec-invalid", "tls": "dane", "tlsa": "3 1 1 next", "host": "mx1"},
             {"at": 30, "status": "2.0.0", "repeat": true}],
  "final": {"state": "delivered", "code": "2.0.0", "at": 30},
  "profiles": {"rfc": {"expect": [{"status": "delivered"}], "final": {"state": "delivered"}}}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := Parse("fuzz.json", data)
		if err != nil {
			if s != nil {
				t.Fatalf("a scenario and an error: %v", err)
			}
			return
		}
		once, err := json.Marshal(s)
		if err != nil {
			t.Fatalf("a parsed scenario does not encode: %v", err)
		}
		again, err := Parse("fuzz.json", once)
		if err != nil {
			t.Fatalf("the re-encoded scenario does not parse: %v\ninput: %q\nre-encoded: %s", err, data, once)
		}
		twice, err := json.Marshal(again)
		if err != nil {
			t.Fatalf("a re-parsed scenario does not encode: %v", err)
		}
		if !bytes.Equal(once, twice) {
			t.Fatalf("the scenario changed on a round trip:\ninput: %q\nonce:  %s\ntwice: %s", data, once, twice)
		}
	})
}
