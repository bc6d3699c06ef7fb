package server

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"net"

	"github.com/coredns/caddy/caddyfile"
	"github.com/coredns/coredns/plugin/pkg/parse"
	"github.com/coredns/coredns/plugin/pkg/transport"
	"github.com/miekg/dns"
)

// CheckCorefile checks, with the file and line of each problem, what the stock plugins that
// danezone relies on for zone transfers accept without naming a line (transfer: "must
// specify an IP address") or at all (tsig: a secret that is not base64 makes every signed
// request fail with BADSIG). The plugins' own parsing stays the rule; this only finds the
// line: `to` is checked by the function the transfer plugin calls.
func CheckCorefile(file string, data []byte) error {
	blocks, err := caddyfile.Parse(file, bytes.NewReader(data), Directives)
	if err != nil {
		return nil // the parser's own error, with its line, comes when CoreDNS parses it
	}
	for _, b := range blocks {
		if err := checkTransfer(file, b.Tokens["transfer"]); err != nil {
			return err
		}
		if err := checkTSIG(file, b.Tokens["tsig"]); err != nil {
			return err
		}
	}
	return nil
}

// lines groups tokens by line: a subdirective and its arguments.
func lines(toks []caddyfile.Token) [][]caddyfile.Token {
	var out [][]caddyfile.Token
	for i, t := range toks {
		if i == 0 || t.Line != toks[i-1].Line {
			out = append(out, nil)
		}
		out[len(out)-1] = append(out[len(out)-1], t)
	}
	return out
}

func checkTransfer(file string, toks []caddyfile.Token) error {
	for _, l := range lines(toks) {
		if len(l) < 2 {
			continue
		}
		switch l[0].Text {
		case "to":
			for _, a := range l[1:] {
				if a.Text == "*" {
					continue
				}
				if _, err := parse.HostPort(a.Text, transport.Port); err != nil {
					return fmt.Errorf("%s:%d - transfer: to %q is not an address (IP or IP:port, or *): %v", file, a.Line, a.Text, err)
				}
			}
		case "source":
			if net.ParseIP(l[1].Text) == nil {
				return fmt.Errorf("%s:%d - transfer: source %q is not an IP address", file, l[1].Line, l[1].Text)
			}
		}
	}
	return nil
}

func checkTSIG(file string, toks []caddyfile.Token) error {
	for _, l := range lines(toks) {
		if l[0].Text != "secret" || len(l) != 3 {
			continue
		}
		if _, ok := dns.IsDomainName(l[1].Text); !ok {
			return fmt.Errorf("%s:%d - tsig: secret %q: the key name is not a domain name", file, l[1].Line, l[1].Text)
		}
		if _, err := base64.StdEncoding.DecodeString(l[2].Text); err != nil || l[2].Text == "" {
			return fmt.Errorf("%s:%d - tsig: secret %s: the key is not base64 (RFC 8945 §3: as `tsig-keygen` or `openssl rand -base64 32` print it)", file, l[2].Line, l[1].Text)
		}
	}
	return nil
}
