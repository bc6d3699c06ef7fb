package lab_test

import (
	"os"
	"regexp"
	"strings"
	"testing"
)

// TestReadmeExamples: every Go snippet of the README is the body of an example function of
// this package (compiled and run by go test), so the README cannot drift from the code.
func TestReadmeExamples(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	examples, err := os.ReadFile("example_test.go")
	if err != nil {
		t.Fatal(err)
	}
	squash := func(s string) string { return strings.Join(strings.Fields(s), " ") }
	code := squash(string(examples))
	blocks := regexp.MustCompile("(?s)```go\n(.*?)```").FindAllStringSubmatch(string(readme), -1)
	if len(blocks) == 0 {
		t.Fatal("the README has no Go snippet: this test is pointless or the pattern is wrong")
	}
	for _, b := range blocks {
		if !strings.Contains(code, squash(b[1])) {
			t.Errorf("README snippet is not in example_test.go (update one from the other):\n%s", b[1])
		}
	}
}
