// Command coredns is danelab's CoreDNS build: the stock server with only the plugins danelab
// uses, plus danezone (see package server for the list and order). Keeping the stock file and
// dnssec plugins lets users (and make bench) compare them with danezone in one binary.
package main

import (
	_ "github.com/coredns/coredns/core/dnsserver"
	"github.com/coredns/coredns/coremain"

	_ "github.com/danelab/danelab/server"
)

func main() { coremain.Run() }
