// Package server is danelab's CoreDNS build as a library: importing it registers the plugins
// danelab uses and sets their order, for cmd/coredns and for the lab's in-process server.
package server

import (
	"github.com/coredns/coredns/core/dnsserver"

	_ "github.com/coredns/coredns/plugin/acl"
	_ "github.com/coredns/coredns/plugin/any"
	_ "github.com/coredns/coredns/plugin/bind"
	_ "github.com/coredns/coredns/plugin/cache"
	_ "github.com/coredns/coredns/plugin/dnssec"
	_ "github.com/coredns/coredns/plugin/erratic"
	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/file"
	_ "github.com/coredns/coredns/plugin/health"
	_ "github.com/coredns/coredns/plugin/log"
	_ "github.com/coredns/coredns/plugin/metrics"
	_ "github.com/coredns/coredns/plugin/ready"
	_ "github.com/coredns/coredns/plugin/reload"
	_ "github.com/coredns/coredns/plugin/transfer"
	_ "github.com/coredns/coredns/plugin/tsig"
	_ "github.com/coredns/coredns/plugin/whoami"

	_ "github.com/danelab/danelab/plugin/danezone"
)

// Directives is the plugin execution order. It replaces CoreDNS's generated list, so a
// directive not named here is rejected by the Corefile parser. The order follows CoreDNS's
// own (plugin.cfg); danezone sits where file does: it is a backend.
var Directives = []string{
	"reload",
	"bind",
	"ready",
	"health",
	"prometheus",
	"errors",
	"log",
	"any",
	"acl",
	"tsig",
	"cache",
	"dnssec",
	"transfer",
	"danezone",
	"file",
	"erratic",
	"whoami",
}

func init() { dnsserver.Directives = Directives }
