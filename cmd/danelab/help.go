package main

import (
	"fmt"
	"io"
	"sort"
)

func init() {
	register("help", command{
		group:   groupOther,
		usage:   "[COMMAND]",
		summary: "show help for danelab or one of its commands",
		run:     runHelp,
	})
}

// printUsage prints what danelab is and its commands, section by section.
func printUsage(w io.Writer) {
	fmt.Fprint(w, `danelab is the command line of the danelab DANE lab. It runs every DANE scenario end to end
(run), serves the scenarios as a fixture for another MTA and judges what that MTA did (serve,
expect), serves a validating resolver for the lab (resolver), and has operator tools for
danezone, the DNSSEC-signing CoreDNS plugin (check, ds, keys, status, tlsa).

Usage:

	danelab <command> [arguments]
`)
	names := make([]string, 0, len(commands))
	width := 0
	for n := range commands {
		names = append(names, n)
		width = max(width, len(n))
	}
	sort.Strings(names)
	for _, g := range groups {
		fmt.Fprintf(w, "\n%s:\n\n", g)
		for _, n := range names {
			if commands[n].group == g {
				fmt.Fprintf(w, "\t%-*s  %s\n", width, n, commands[n].summary)
			}
		}
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
