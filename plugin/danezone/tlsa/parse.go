package tlsa

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/danelab/danelab/plugin/danezone/duration"
	"github.com/miekg/dns"
)

// Bounds of a `tlsa` line's durations.
const (
	// hold: how long the TLSA records of a replaced certificate stay published. Two TTLs (at
	// most 86400 s) suffice (RFC 7671 §8); beyond a month a retired key is trusted for no
	// reason.
	maxHold = 30 * duration.Day
	// interval: how often a certificate source is read; a probe re-run less than daily would
	// miss a renewal for longer than any sender's retry patience.
	maxInterval = 24 * time.Hour
	// warn: how long before expiry a certificate is reported; no publicly trusted
	// certificate lives longer than 398 days, so a year ahead is already "always".
	maxWarn = 365 * duration.Day
)

// ParseHost reads the arguments of a `tlsa` line (danezone's Corefile, danelab tlsa sync's
// configuration): `tlsa HOST (cert FILE | probe ADDR [tls]) [ports P,..] [records 311,..]
// [next PATH] [ttl N] [hold D] [interval D] [warn D]`.
func ParseHost(args []string) (Host, error) {
	var h Host
	if len(args) < 3 {
		return h, fmt.Errorf("tlsa HOST (cert FILE | probe ADDRESS [tls]) [ports P,...] [records 311,...] [next PATH] [ttl N] [hold D] [interval D] [warn D]")
	}
	if _, ok := dns.IsDomainName(args[0]); !ok {
		return h, fmt.Errorf("invalid host %q", args[0])
	}
	h.Name = args[0]
	rest := args[1:]
	for len(rest) > 0 {
		k := rest[0]
		if k == "tls" {
			p, ok := h.Source.(Probe)
			if !ok {
				return h, fmt.Errorf("tls goes after probe ADDRESS")
			}
			p.Implicit = true
			h.Source = p
			rest = rest[1:]
			continue
		}
		if len(rest) < 2 {
			return h, fmt.Errorf("%q needs a value", k)
		}
		v := rest[1]
		rest = rest[2:]
		var err error
		switch k {
		case "cert":
			h.Source = File{Path: v}
		case "probe":
			h.Source = Probe{Addr: v, ServerName: h.Name}
		case "ports":
			for _, p := range strings.Split(v, ",") {
				n, perr := strconv.Atoi(p)
				if perr != nil || n < 1 || n > 65535 {
					return h, fmt.Errorf("ports: %q is not a port", p)
				}
				h.Ports = append(h.Ports, n)
			}
		case "records":
			for _, p := range strings.Split(v, ",") {
				var param Param
				if param, err = ParseParam(p); err != nil {
					return h, err
				}
				h.Params = append(h.Params, param)
			}
		case "next":
			h.Next = v
		case "ttl":
			var n int
			if n, err = strconv.Atoi(v); err == nil && (n < 1 || n > 86400) {
				err = fmt.Errorf("out of range 1..86400")
			}
			h.TTL = uint32(n)
		case "hold", "interval", "warn": // 0: the default
			var d time.Duration
			if d, err = duration.Parse(v); err != nil {
				return h, fmt.Errorf("%s: %v", k, err) // the error quotes v
			}
			switch k {
			case "hold":
				err = duration.Within(d, 0, maxHold)
				h.Hold = d
			case "interval":
				err = duration.Within(d, 0, maxInterval)
				h.Every = d
			default:
				err = duration.Within(d, 0, maxWarn)
				h.Warn = d
			}
			if err != nil {
				return h, fmt.Errorf("%s %v", k, err)
			}
		default:
			return h, fmt.Errorf("unknown option %q (cert, probe, tls, ports, records, next, ttl, hold, interval, warn)", k)
		}
		if err != nil {
			return h, fmt.Errorf("%s %q: %v", k, v, err)
		}
	}
	if h.Source == nil {
		return h, fmt.Errorf("tlsa %s: a source is needed: cert FILE or probe ADDRESS", h.Name)
	}
	if p, ok := h.Source.(Probe); ok && h.Every == 0 {
		h.Every = time.Hour // probes are re-run hourly; files are read at every poll
		h.Source = p
	}
	return h, nil
}
