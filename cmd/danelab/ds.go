package main

import (
	"errors"
	"flag"
	"fmt"

	"github.com/miekg/dns"

	"github.com/danelab/danelab/plugin/danezone/keys"
)

// defaultKeyDir is where danezone keeps its keys unless configured otherwise.
const defaultKeyDir = ".state/keys"

func init() {
	register("ds", command{
		group:   groupOperator,
		usage:   "[-keys DIR] ZONE",
		summary: "print the DS records of a zone's KSKs, for the parent zone",
		help: "Prints one DS record (SHA-256) per KSK of ZONE, read from the key directory,\n" +
			"followed by each KSK's DNSKEY as a trust anchor comment. It never generates\n" +
			"keys: start danezone once to create them.\n\n" +
			"Flags:\n\t-keys DIR\tdanezone's key directory (default " + defaultKeyDir + ")",
		run: runDS,
	})
}

// runDS implements "danelab ds [-keys DIR] ZONE".
func runDS(args []string) error {
	fs := flag.NewFlagSet("ds", flag.ContinueOnError)
	dir := fs.String("keys", defaultKeyDir, "danezone's key directory")
	pos, err := parseArgs(fs, args)
	if errors.Is(err, flag.ErrHelp) {
		return runHelp([]string{"ds"})
	}
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef("want exactly one ZONE, got %d arguments", len(pos))
	}
	zone := pos[0]
	set, err := keys.Load(*dir, zone)
	if err != nil {
		return err
	}
	if len(set.Keys) == 0 {
		return fmt.Errorf("no keys for %s in %s: start danezone once to generate them", zone, *dir)
	}
	// The keys CDS names now: those the parent's DS should name (during a KSK roll, the new
	// key once its schedule says so).
	ksks := set.CDSKeys()
	if len(ksks) == 0 {
		return fmt.Errorf("no key of %s in %s is to be named by the parent's DS now (see danelab keys for their schedules)", zone, *dir)
	}
	for _, k := range ksks {
		ds := k.DNSKEY.ToDS(dns.SHA256)
		if ds == nil {
			return fmt.Errorf("%s: cannot compute DS", k.File)
		}
		fmt.Fprintln(stdout, ds.String())
		fmt.Fprintf(stdout, "; trust anchor (%s, key id %d): %s\n",
			dns.AlgorithmToString[k.DNSKEY.Algorithm], k.Tag, k.DNSKEY.String())
	}
	return nil
}
