package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/miekg/dns"

	"github.com/danelab/danelab/plugin/danezone/keys"
)

func TestDS(t *testing.T) {
	dir := t.TempDir()
	ksk, err := keys.Generate(dir, "example.test", dns.ECDSAP256SHA256)
	if err != nil {
		t.Fatal(err)
	}
	// A second zone in the same directory must not show up.
	if _, err := keys.Generate(dir, "other.test", dns.ED25519); err != nil {
		t.Fatal(err)
	}

	for _, args := range [][]string{
		{"-keys", dir, "example.test"},
		{"-keys=" + dir, "EXAMPLE.test."},
		{"example.test", "-keys", dir},
	} {
		out, _ := capture(t)
		if err := commands["ds"].run(args); err != nil {
			t.Fatalf("ds %v: %v", args, err)
		}
		var ds []*dns.DS
		var anchors []string
		for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n") {
			if strings.HasPrefix(line, ";") {
				anchors = append(anchors, line)
				continue
			}
			rr, err := dns.NewRR(line)
			if err != nil {
				t.Fatalf("parsing %q: %v", line, err)
			}
			d, ok := rr.(*dns.DS)
			if !ok {
				t.Fatalf("not a DS: %q", line)
			}
			ds = append(ds, d)
		}
		want := ksk.DNSKEY.ToDS(dns.SHA256)
		if len(ds) != 1 || ds[0].String() != want.String() {
			t.Errorf("ds %v printed %v, want %v", args, ds, want)
		}
		if len(anchors) != 1 || !strings.Contains(anchors[0], ksk.DNSKEY.PublicKey) ||
			!strings.Contains(anchors[0], "DNSKEY\t257 3 13") {
			t.Errorf("trust anchor lines %q", anchors)
		}
		// The DNSKEY in the comment is a parseable record.
		_, rest, _ := strings.Cut(anchors[0], "): ")
		if rr, err := dns.NewRR(rest); err != nil || rr.String() != ksk.DNSKEY.String() {
			t.Errorf("trust anchor %q: %v", rest, err)
		}
	}
}

func TestDSNoKeys(t *testing.T) {
	for _, dir := range []string{t.TempDir(), filepath.Join(t.TempDir(), "missing")} {
		capture(t)
		err := commands["ds"].run([]string{"-keys", dir, "example.test"})
		want := "no keys for example.test in " + dir + ": start danezone once to generate them"
		if err == nil || err.Error() != want {
			t.Errorf("err = %v, want %q", err, want)
		}
		// ds must never generate keys, nor create the directory.
		ents, err := os.ReadDir(dir)
		if filepath.Base(dir) == "missing" && !os.IsNotExist(err) {
			t.Errorf("ds created %s", dir)
		}
		if len(ents) != 0 {
			t.Errorf("ds wrote %d files to %s", len(ents), dir)
		}
	}
}

func TestDSBadKeys(t *testing.T) {
	dir := t.TempDir()
	k, err := keys.Generate(dir, "example.test", dns.ED25519)
	if err != nil {
		t.Fatal(err)
	}
	os.Remove(strings.TrimSuffix(k.File, ".key") + ".private")
	capture(t)
	err = commands["ds"].run([]string{"-keys", dir, "example.test"})
	if err == nil || !strings.Contains(err.Error(), strings.TrimSuffix(filepath.Base(k.File), ".key")+".private") {
		t.Errorf("err = %v, want one naming the key file", err)
	}
}
