package main

import (
	"bytes"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/miekg/dns"

	"github.com/danelab/danelab/plugin/danezone/keys"
)

// capture redirects stdout and stderr for the duration of the test.
func capture(t *testing.T) (out, errOut *bytes.Buffer) {
	t.Helper()
	out, errOut = new(bytes.Buffer), new(bytes.Buffer)
	oldOut, oldErr := stdout, stderr
	stdout, stderr = out, errOut
	t.Cleanup(func() { stdout, stderr = oldOut, oldErr })
	return out, errOut
}

func TestRun(t *testing.T) {
	dir := t.TempDir()
	if _, err := keys.Generate(dir, "example.test", dns.ED25519); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args             []string
		code             int
		wantOut, wantErr string
	}{
		{nil, 2, "", "Lab commands:"},
		{[]string{"help"}, 0, "ds ", ""},
		{[]string{"-h"}, 0, "Lab commands:", ""},
		{[]string{"help", "ds"}, 0, "-keys DIR", ""},
		{[]string{"help", "nope"}, 2, "", "unknown command"},
		{[]string{"nope"}, 2, "", `unknown command "nope"`},
		{[]string{"ds"}, 2, "", "usage: danelab ds [-keys DIR] ZONE"},
		{[]string{"ds", "a.test", "b.test"}, 2, "", "exactly one ZONE"},
		{[]string{"ds", "-bogus", "a.test"}, 2, "", "-bogus"},
		{[]string{"ds", "-h"}, 0, "usage: danelab ds", ""},
		{[]string{"ds", "-keys", t.TempDir(), "a.test"}, 1, "", "start danezone once"},
		{[]string{"ds", "-keys", dir, "example.test"}, 0, "\tDS\t", ""},
		{[]string{"ds", "-keys", dir, "--", "example.test"}, 0, "\tDS\t", ""},
	} {
		out, errOut := capture(t)
		if code := run(tc.args); code != tc.code {
			t.Errorf("run(%q) = %d, want %d; stderr:\n%s", tc.args, code, tc.code, errOut)
		}
		if !strings.Contains(out.String(), tc.wantOut) {
			t.Errorf("run(%q) stdout %q lacks %q", tc.args, out, tc.wantOut)
		}
		if !strings.Contains(errOut.String(), tc.wantErr) {
			t.Errorf("run(%q) stderr %q lacks %q", tc.args, errOut, tc.wantErr)
		}
	}
}

// TestCommands checks the registry: every command has a usage, a summary, a run function and
// a section of the command list, lives in a file named after it, and is listed by "danelab
// help" in its section and explained by "danelab help NAME". (ds.go, expect.go and help.go
// register commands and sort before main.go: that the package starts at all shows the
// registry does not depend on the order of the files.)
func TestCommands(t *testing.T) {
	if len(commands) < 2 {
		t.Fatalf("only %d commands registered", len(commands))
	}
	for name, cmd := range commands {
		if cmd.usage == "" || cmd.summary == "" || cmd.run == nil {
			t.Errorf("command %s: usage %q, summary %q, run set %v: want all three", name, cmd.usage, cmd.summary, cmd.run != nil)
		}
		if strings.Contains(cmd.summary, "\n") {
			t.Errorf("command %s: summary %q is more than one line", name, cmd.summary)
		}
		if !slices.Contains(groups, cmd.group) {
			t.Errorf("command %s: group %q is none of %q", name, cmd.group, groups)
		}
		src, err := os.ReadFile(name + ".go")
		if err != nil || !strings.Contains(string(src), `register("`+name+`", command{`) {
			t.Errorf("command %s is not registered by %s.go (%v)", name, name, err)
		}
	}
	// Conversely, a file registers the command named after it, and no other.
	files, err := os.ReadDir(".")
	if err != nil {
		t.Fatal(err)
	}
	registers := regexp.MustCompile(`register\("([^"]+)"`)
	for _, f := range files {
		if !strings.HasSuffix(f.Name(), ".go") || strings.HasSuffix(f.Name(), "_test.go") {
			continue
		}
		src, err := os.ReadFile(f.Name())
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range registers.FindAllStringSubmatch(string(src), -1) {
			if m[1]+".go" != f.Name() {
				t.Errorf("%s registers the command %s: each command has a file of its own, %s.go", f.Name(), m[1], m[1])
			}
		}
	}

	// "danelab help" lists every command once, under its section's heading.
	out, errOut := capture(t)
	if code := run([]string{"help"}); code != 0 {
		t.Fatalf("danelab help: exit %d; stderr:\n%s", code, errOut)
	}
	listed := map[string]string{} // command -> section
	section := ""
	line := regexp.MustCompile(`^\t(\S+) +(.+)$`)
	for _, l := range strings.Split(out.String(), "\n") {
		if h, ok := strings.CutSuffix(l, ":"); ok && slices.Contains(groups, h) {
			section = h
			continue
		}
		m := line.FindStringSubmatch(l)
		if m == nil || section == "" {
			continue
		}
		if cmd, ok := commands[m[1]]; !ok || m[2] != cmd.summary {
			t.Errorf("danelab help lists %q, which is not a command with that summary", l)
		}
		if _, dup := listed[m[1]]; dup {
			t.Errorf("danelab help lists %s twice", m[1])
		}
		listed[m[1]] = section
	}
	for name, cmd := range commands {
		if got, ok := listed[name]; !ok || got != cmd.group {
			t.Errorf("danelab help lists %s under %q, want under %q; output:\n%s", name, got, cmd.group, out)
		}
	}

	// "danelab help NAME" and "danelab NAME -h" print its usage and summary.
	for name, cmd := range commands {
		want := "usage: danelab " + name + " " + cmd.usage + "\n\n" + cmd.summary + "\n"
		for _, args := range [][]string{{"help", name}, {name, "-h"}} {
			if name == "help" && args[0] == "help" && args[1] == "-h" {
				continue
			}
			out, errOut := capture(t)
			if code := run(args); code != 0 || !strings.HasPrefix(out.String(), want) {
				t.Errorf("danelab %s: exit %d, stdout %q, want it to begin with %q; stderr:\n%s", strings.Join(args, " "), code, out, want, errOut)
			}
		}
	}
}

func TestRegisterTwice(t *testing.T) {
	defer func() {
		if r := recover(); r == nil || !strings.Contains(r.(string), "ds registered twice") {
			t.Errorf("registering ds again: recovered %v, want a panic", r)
		}
	}()
	register("ds", commands["ds"])
}
