// Command coredns is danelab's CoreDNS build: the stock server with only the plugins danelab
// uses, plus danezone (see package server for the list and order). Keeping the stock file and
// dnssec plugins lets users (and make bench) compare them with danezone in one binary.
package main

import (
	"flag"
	"os"

	"github.com/coredns/caddy"
	_ "github.com/coredns/coredns/core/dnsserver"
	"github.com/coredns/coredns/coremain"

	"github.com/danelab/danelab/server"
)

// A Corefile loader that loads nothing but checks the Corefile the stock loaders will load,
// so that a bad transfer or tsig line stops CoreDNS with its file and line
// (server.CheckCorefile).
func init() {
	caddy.RegisterCaddyfileLoader("check", caddy.LoaderFunc(func(string) (caddy.Input, error) {
		conf := caddy.DefaultConfigFile
		if f := flag.Lookup("conf"); f != nil && f.Value.String() != "" {
			conf = f.Value.String()
		}
		if conf == "stdin" {
			return nil, nil
		}
		data, err := os.ReadFile(conf)
		if err != nil {
			return nil, nil // the stock loaders report it
		}
		return nil, server.CheckCorefile(conf, data)
	}))
}

func main() { coremain.Run() }
