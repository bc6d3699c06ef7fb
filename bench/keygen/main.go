// Command keygen writes an ECDSAP256SHA256 DNSSEC key in BIND format
// (K<zone>.+013+<tag>.key and .private) for the stock CoreDNS dnssec plugin, when
// dnssec-keygen (bind9-utils) is not installed. It prints the key prefix (path without
// extension), as `dnssec-keygen -K dir` does (dnssec-keygen prints only the base name).
//
//	go run ./bench/keygen -zone example.test -dir /tmp/keys [-ksk]
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"github.com/miekg/dns"
)

func main() {
	zone := flag.String("zone", "example.test", "zone the key is for")
	dir := flag.String("dir", ".", "directory to write the key files to")
	ksk := flag.Bool("ksk", false, "set the SEP bit (flags 257) instead of a ZSK (256)")
	flag.Parse()
	if err := run(dns.Fqdn(*zone), *dir, *ksk); err != nil {
		fmt.Fprintln(os.Stderr, "keygen:", err)
		os.Exit(1)
	}
}

func run(zone, dir string, ksk bool) error {
	key := &dns.DNSKEY{
		Hdr:       dns.RR_Header{Name: zone, Rrtype: dns.TypeDNSKEY, Class: dns.ClassINET, Ttl: 3600},
		Flags:     dns.ZONE,
		Protocol:  3,
		Algorithm: dns.ECDSAP256SHA256,
	}
	if ksk {
		key.Flags |= dns.SEP
	}
	priv, err := key.Generate(256)
	if err != nil {
		return err
	}
	prefix := filepath.Join(dir, fmt.Sprintf("K%s+%03d+%05d", zone, key.Algorithm, key.KeyTag()))
	if err := os.WriteFile(prefix+".key", []byte(key.String()+"\n"), 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(prefix+".private", []byte(key.PrivateKeyString(priv)), 0o600); err != nil {
		return err
	}
	fmt.Println(prefix)
	return nil
}
