package lab_test

import (
	"log"

	"github.com/danelab/danelab/harness/lab"
	"github.com/danelab/danelab/plugin/danezone/fault"
)

// The README's example, compiled by go test (TestReadmeExamples keeps the two the same).
func ExampleStart() {
	l, err := lab.Start(lab.Config{Domains: []lab.Domain{
		{Name: "example.test", Records: []string{"@ MX 10 mx1", "mx1 A 127.0.0.11",
			"_25._tcp.mx1 TLSA 3 1 1 8cb0fc6c527506a053f4f14c8464bebbd6dede2738d11468dd953d7d6a3021f1"}},
		{Name: "minimal.test", Denial: "minimal"},
		{Name: "plain.test", Unsigned: true, Records: []string{"@ MX 10 mx", "mx A 127.0.0.12"}},
	}})
	if err != nil {
		log.Fatal(err)
	}
	defer l.Stop()
	// Break the chain of trust on purpose: the parent's DS matches no key of example.test.
	if _, err := l.AddFault(fault.Spec{Mode: fault.DSMismatch, Name: "example.test"}); err != nil {
		log.Fatal(err)
	}
}
