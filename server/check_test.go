package server

import (
	"strings"
	"testing"
)

func TestCheckCorefile(t *testing.T) {
	const good = `. {
    tsig {
        secret xfr.example.test. OGRzhsPrR4k7Xde8J8jXlUdZ9Q1lJ1Yk9I2l3TGa3sM=
        require AXFR IXFR
    }
    transfer {
        to 192.0.2.53 [2001:db8::53]:5300 *
        source 192.0.2.1
    }
    danezone zones/
}
`
	if err := CheckCorefile("Corefile", []byte(good)); err != nil {
		t.Fatalf("a good Corefile: %v", err)
	}
	for _, c := range []struct{ from, to, want string }{
		{"to 192.0.2.53", "to ns2.example.test", `Corefile:7 - transfer: to "ns2.example.test" is not an address`},
		{"source 192.0.2.1", "source here", `Corefile:8 - transfer: source "here" is not an IP address`},
		{"OGRzhsPrR4k7Xde8J8jXlUdZ9Q1lJ1Yk9I2l3TGa3sM=", "not!base64", "Corefile:3 - tsig: secret xfr.example.test.: the key is not base64"},
		{"secret xfr.example.test.", "secret xfr..test.", `Corefile:3 - tsig: secret "xfr..test.": the key name is not a domain name`},
	} {
		err := CheckCorefile("Corefile", []byte(strings.Replace(good, c.from, c.to, 1)))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: got %v, want %q", c.to, err, c.want)
		}
	}
}
