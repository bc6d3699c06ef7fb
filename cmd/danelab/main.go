// Command danelab is danelab's helper CLI. It works on the state that the
// danezone plugin keeps on disk, for example printing the DS records to hand
// to a parent zone.
//
// Usage:
//
//	danelab <command> [arguments]
//	danelab help [command]
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"

	"github.com/miekg/dns"

	"github.com/danelab/danelab/plugin/danezone/keys"
)

// defaultKeyDir is where danezone keeps its keys unless configured otherwise.
const defaultKeyDir = ".state/keys"

// Output streams, replaceable in tests.
var (
	stdout io.Writer = os.Stdout
	stderr io.Writer = os.Stderr
)

// command is one subcommand.
type command struct {
	usage   string // argument synopsis, after the command name
	summary string // one line for the command list
	help    string // longer description for "danelab help <command>"
	run     func(args []string) error
}

// commands maps subcommand names to their implementations. To add a
// subcommand, add an entry here.
var commands map[string]command

func init() {
	commands = map[string]command{
		"ds": {
			usage:   "[-keys DIR] ZONE",
			summary: "print the DS records of a zone's KSKs, for the parent zone",
			help: "Prints one DS record (SHA-256) per KSK of ZONE, read from the key directory,\n" +
				"followed by each KSK's DNSKEY as a trust anchor comment. It never generates\n" +
				"keys: start danezone once to create them.\n\n" +
				"Flags:\n\t-keys DIR\tdanezone's key directory (default " + defaultKeyDir + ")",
			run: runDS,
		},
		"help": {
			usage:   "[COMMAND]",
			summary: "show help for danelab or one of its commands",
			run:     runHelp,
		},
	}
}

// usageError marks errors caused by bad command-line usage (exit status 2).
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error {
	return &usageError{fmt.Sprintf(format, args...)}
}

func main() {
	os.Exit(run(os.Args[1:]))
}

// run executes the command line args (without the program name) and returns
// the exit status: 0 on success, 1 if the command failed, 2 on bad usage.
func run(args []string) int {
	if len(args) == 0 {
		printUsage(stderr)
		return 2
	}
	name := args[0]
	switch name {
	case "-h", "-help", "--help":
		name = "help"
	}
	cmd, ok := commands[name]
	if !ok {
		fmt.Fprintf(stderr, "danelab: unknown command %q\n\n", name)
		printUsage(stderr)
		return 2
	}
	err := cmd.run(args[1:])
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	}
	var ue *usageError
	if errors.As(err, &ue) {
		fmt.Fprintf(stderr, "danelab %s: %v\nusage: danelab %s %s\n", name, err, name, cmd.usage)
		return 2
	}
	fmt.Fprintf(stderr, "danelab %s: %v\n", name, err)
	return 1
}

func printUsage(w io.Writer) {
	fmt.Fprint(w, "danelab is a helper for danezone's on-disk state.\n\nUsage:\n\n\tdanelab <command> [arguments]\n\nCommands:\n\n")
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "\t%-8s %s\n", n, commands[n].summary)
	}
	fmt.Fprint(w, "\nRun \"danelab help <command>\" for more about a command.\n")
}

func runHelp(args []string) error {
	if len(args) == 0 {
		printUsage(stdout)
		return nil
	}
	if len(args) > 1 {
		return usagef("too many arguments")
	}
	cmd, ok := commands[args[0]]
	if !ok {
		return usagef("unknown command %q", args[0])
	}
	fmt.Fprintf(stdout, "usage: danelab %s %s\n\n%s\n", args[0], cmd.usage, cmd.summary)
	if cmd.help != "" {
		fmt.Fprintf(stdout, "\n%s\n", cmd.help)
	}
	return nil
}

// parseArgs parses args with fs, allowing flags after positional arguments
// ("danelab ds example.test -keys dir"), and returns the positional ones.
// Everything after "--" is positional.
func parseArgs(fs *flag.FlagSet, args []string) ([]string, error) {
	fs.SetOutput(io.Discard)
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			return nil, usagef("%v", err)
		}
		rest := fs.Args()
		if consumed := args[:len(args)-len(rest)]; len(consumed) > 0 && consumed[len(consumed)-1] == "--" {
			return append(pos, rest...), nil
		}
		if len(rest) == 0 {
			return pos, nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
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
	ksks := set.KSKs()
	if len(ksks) == 0 {
		return fmt.Errorf("no keys for %s in %s: start danezone once to generate them", zone, *dir)
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
