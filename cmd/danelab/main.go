// Command danelab is the command line of the danelab DANE lab. It runs every DANE
// scenario end to end in an in-process lab (run); serves the scenarios as a fixture for
// another MTA, then judges what that MTA did (serve, expect); serves a validating resolver
// for the lab (resolver); and has operator tools for danezone, the DNSSEC-signing CoreDNS
// plugin (check, ds, keys, status, tlsa).
//
// Usage:
//
//	danelab <command> [arguments]
//	danelab help [command]
//
// Each command lives in a file of its own, named after it (run.go, serve.go, ...), which
// registers it from an init function.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
)

// Output streams, replaceable in tests.
var (
	stdout io.Writer = os.Stdout
	stderr io.Writer = os.Stderr
)

// command is one subcommand.
type command struct {
	group   string // its section of the command list (groupLab, ...)
	usage   string // argument synopsis, after the command name
	summary string // one line for the command list
	help    string // longer description for "danelab help <command>"
	run     func(args []string) error
}

// The sections of the command list, in the order "danelab help" prints them.
const (
	groupLab      = "Lab commands"
	groupOperator = "danezone operator commands"
	groupOther    = "Other commands"
)

var groups = []string{groupLab, groupOperator, groupOther}

// commands maps subcommand names to their implementations. It is filled by register, from
// the init function of each command's file; being initialized here, before any init function
// runs, it does not depend on the order in which the files' init functions run.
var commands = map[string]command{}

// register adds the command name; every command's file calls it from its init function.
func register(name string, cmd command) {
	if _, dup := commands[name]; dup {
		panic("danelab: command " + name + " registered twice")
	}
	commands[name] = cmd
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
	var se *statusError
	if errors.As(err, &se) {
		return se.code
	}
	var ue *usageError
	if errors.As(err, &ue) {
		fmt.Fprintf(stderr, "danelab %s: %v\nusage: danelab %s %s\n", name, err, name, cmd.usage)
		return 2
	}
	fmt.Fprintf(stderr, "danelab %s: %v\n", name, err)
	return 1
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
