package danezone

import (
	"fmt"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/coredns/caddy"
	"github.com/coredns/coredns/core/dnsserver"
	"github.com/coredns/coredns/plugin"
	clog "github.com/coredns/coredns/plugin/pkg/log"
	"github.com/coredns/coredns/plugin/transfer"
	"github.com/danelab/danelab/plugin/danezone/control"
	"github.com/danelab/danelab/plugin/danezone/denial"
	"github.com/danelab/danelab/plugin/danezone/duration"
	"github.com/danelab/danelab/plugin/danezone/fault"
	"github.com/danelab/danelab/plugin/danezone/keys"
	"github.com/danelab/danelab/plugin/danezone/roll"
	"github.com/danelab/danelab/plugin/danezone/serial"
	"github.com/danelab/danelab/plugin/danezone/signer"
	"github.com/danelab/danelab/plugin/danezone/tlsa"
	"github.com/danelab/danelab/plugin/danezone/zone"
	"github.com/miekg/dns"
)

var log = clog.NewWithPlugin("danezone")

func init() { plugin.Register("danezone", setup) }

// config is the parsed danezone block.
type config struct {
	path        string
	origins     []string
	keyDir      string
	algorithm   uint8
	mode        denial.Mode
	modes       map[string]denial.Mode // per zone
	unsigned    map[string]bool        // zones served without DNSSEC
	insecure    map[string]bool        // zones the key policy takes insecure (RFC 8078 DELETE)
	regen       map[string]bool        // zones whose lost keys may be replaced (regenerate)
	policy      signer.Policy
	reload      time.Duration
	grace       time.Duration // how long a zone file may be missing before its zone is dropped
	records     int           // the most records per zone (zone.Limits.MaxRecords)
	answerCache int           // responses kept per zone version (0: off)
	dir         bool          // path is a directory of zone files (decided at start)
	faults      []fault.Spec
	control     string // address of the control API, "" for none
	token       string
	tlsa        []tlsa.Host
	serial      serial.Policy
	keyPolicy   roll.Policy // rollover, lifetime, timing; Algorithm is algorithm's
	agents      []string    // parental_agents: where a KSK roll checks the parent's DS
	followCDS   bool        // follow_cds: parent zones served here take their children's DS from their CDS
}

func setup(c *caddy.Controller) error {
	cfg, err := parse(c)
	if err != nil {
		return plugin.Error("danezone", err)
	}
	d, err := start(cfg)
	if err != nil {
		return plugin.Error("danezone", err)
	}
	if cfg.control != "" {
		d.history = control.NewHistory(historySize)
	}
	stop := make(chan struct{})
	var once sync.Once
	acquired := false
	c.OnStartup(func() error {
		if cfg.control != "" {
			// A reload starts this instance before the old one stops: the listener is shared
			// and passes to the newest instance.
			ctl, err := control.Acquire(cfg.control, control.Backend{Faults: d.faults, Records: d, History: d.history,
				Token: cfg.token, TLSA: func() any { return d.TLSAStatus() }, Keys: func() any { return d.KeyStatus(cfg) }, Roll: d.RequestRoll})
			if err != nil {
				return plugin.Error("danezone", fmt.Errorf("control API: %v", err))
			}
			acquired = true
			log.Infof("Control API on http://%s", ctl.Addr())
		}
		go d.poll(cfg, stop)
		// Transfers: the transfer plugin of this server block, if there is one, answers
		// AXFR/IXFR with our versions and sends NOTIFY for us. Without it nothing is
		// published: a version for transfer holds a signature for every RRset of the zone
		// (a 100 000-name zone's RSS: 424 MB with it, 116 MB without), which answers do not
		// need.
		if t, ok := dnsserver.GetConfig(c).Handler("transfer").(*transfer.Transfer); ok && t != nil {
			d.startPublishing(t.Notify) // the publishers check each zone's SOA EXPIRE (checkExpire)
		}
		return nil
	})
	c.OnShutdown(func() error {
		once.Do(func() { close(stop) })
		d.stopPublishing()
		if acquired {
			return control.Release(cfg.control)
		}
		return nil
	})
	dnsserver.GetConfig(c).AddPlugin(func(next plugin.Handler) plugin.Handler {
		d.Next = next
		return d
	})
	return nil
}

func parse(c *caddy.Controller) (*config, error) {
	cfg := &config{
		keyDir:      ".state/keys",
		algorithm:   dns.ECDSAP256SHA256,
		mode:        denial.NSEC,
		modes:       map[string]denial.Mode{},
		unsigned:    map[string]bool{},
		policy:      signer.DefaultPolicy(),
		reload:      time.Second,
		grace:       defaultGrace,
		serial:      serial.Unixtime,
		keyPolicy:   roll.DefaultPolicy(),
		answerCache: defaultAnswerCache,
	}
	refreshSet, jitterSet := false, false
	i := 0
	for c.Next() {
		if i > 0 {
			return nil, plugin.ErrOnce
		}
		i++
		args := c.RemainingArgs()
		if len(args) == 0 {
			return nil, c.ArgErr()
		}
		cfg.path = args[0]
		if cfg.path == "" { // `danezone ""`
			return nil, c.Errf("danezone needs a PATH: a zone file or a directory of zone files, not an empty string")
		}
		for _, o := range args[1:] {
			if _, ok := dns.IsDomainName(o); !ok {
				return nil, c.Errf("invalid zone name %q", o)
			}
			cfg.origins = append(cfg.origins, zone.Canonical(o))
		}
		for c.NextBlock() {
			opt := c.Val()
			vals := c.RemainingArgs()
			one := func() (string, error) {
				if len(vals) != 1 {
					return "", c.Errf("%s takes one argument", opt)
				}
				return vals[0], nil
			}
			// dur reads the one argument as a duration in [lo, hi].
			dur := func(lo, hi time.Duration) (time.Duration, error) {
				v, err := one()
				if err != nil {
					return 0, err
				}
				d, err := duration.Parse(v)
				if err != nil {
					return 0, c.Errf("%s: %v", opt, err)
				}
				if err := duration.Within(d, lo, hi); err != nil {
					return 0, c.Errf("%s %v", opt, err)
				}
				return d, nil
			}
			var err error
			switch opt {
			case "keys":
				if cfg.keyDir, err = one(); err == nil && cfg.keyDir == "" {
					err = c.Errf("keys needs a directory, not an empty string")
				}
			case "algorithm":
				var v string
				if v, err = one(); err == nil {
					cfg.algorithm, err = keys.ParseAlgorithm(v)
				}
			case "denial":
				if len(vals) == 0 {
					return nil, c.Errf("denial needs a mode: nsec, minimal, nsec3 or nsec3-narrow")
				}
				mode, zones, perr := denial.ParseMode(vals)
				if perr != nil {
					return nil, c.Err(perr.Error())
				}
				if mode.Iterations > 0 || mode.Salt != "" {
					// RFC 9276 §3.1: iterations and salt cost every validator and protect
					// nothing (a zone's hashes are cracked whatever they are).
					log.Warningf("denial %s: RFC 9276 asks for 0 iterations and no salt; validators treat many iterations as insecure", mode)
				}
				if len(zones) == 0 {
					cfg.mode = mode
				}
				for _, z := range zones {
					cfg.modes[zone.Canonical(z)] = mode
				}
			case "unsigned":
				if len(vals) == 0 {
					return nil, c.Errf("unsigned needs the zones to serve without DNSSEC")
				}
				for _, z := range vals {
					cfg.unsigned[zone.Canonical(z)] = true
				}
			case "insecure":
				// Per zone: a signed zone goes insecure safely (the parent removes the DS
				// first); removing the line signs it again.
				zones, zerr := zoneNames(c, "insecure", vals, "the zones to take insecure")
				if zerr != nil {
					return nil, zerr
				}
				if cfg.insecure == nil {
					cfg.insecure = map[string]bool{}
				}
				for _, z := range zones {
					if z == "." {
						return nil, c.Errf("insecure: the root zone has no parent to remove its DS; validators trust its key as configured")
					}
					cfg.insecure[z] = true
				}
			case "regenerate":
				// Deliberately per zone, with no "all": replacing keys breaks the chain of trust
				// until the parent publishes the new DS.
				zones, zerr := zoneNames(c, "regenerate", vals, "the zones whose lost keys may be replaced by new ones")
				if zerr != nil {
					return nil, zerr
				}
				if cfg.regen == nil {
					cfg.regen = map[string]bool{}
				}
				for _, z := range zones {
					cfg.regen[z] = true
				}
			case "validity":
				// RRSIG times are 32-bit serial times (RFC 4034 §3.1.5): see signer.MaxValidity.
				cfg.policy.Validity, err = dur(signer.MinValidity, signer.MaxValidity)
			case "refresh":
				cfg.policy.Refresh, err = dur(0, signer.MaxValidity) // and below validity: policy.Check
				refreshSet = true
			case "jitter":
				cfg.policy.Jitter, err = dur(0, signer.MaxValidity) // and at most validity: policy.Check
				jitterSet = true
			case "inception":
				cfg.policy.Inception, err = dur(0, signer.MaxInception)
			case "reload":
				if cfg.reload, err = dur(0, maxReload); err == nil && cfg.reload != 0 && cfg.reload < minReload {
					err = c.Errf("reload %s is too short (at least %s; 0 turns reloading off)", duration.Format(cfg.reload), duration.Format(minReload))
				}
			case "grace":
				cfg.grace, err = dur(0, maxGrace)
			case "max_records":
				var v string
				if v, err = one(); err == nil {
					n, perr := strconv.Atoi(v)
					if perr != nil || n < 1 || n > maxMaxRecords {
						return nil, c.Errf("max_records %q: want a number of records from 1 to %d", v, maxMaxRecords)
					}
					cfg.records = n
				}
			case "answer_cache":
				var v string
				if v, err = one(); err == nil {
					n, perr := strconv.Atoi(v)
					switch {
					case v == "off":
						cfg.answerCache = 0
					case perr != nil || n < 16 || n > maxAnswerCache:
						return nil, c.Errf("answer_cache %q: want off or a number of responses from 16 to %d", v, maxAnswerCache)
					default:
						cfg.answerCache = n
					}
				}
			case "fault":
				var spec fault.Spec
				if spec, err = parseFault(vals); err == nil {
					_, err = fault.NewRegistry().Add(spec) // validate now, with a clear error
					cfg.faults = append(cfg.faults, spec)
				}
				if err != nil {
					return nil, c.Errf("fault: %v", err)
				}
			case "tlsa":
				h, err := tlsa.ParseHost(vals)
				if err != nil {
					return nil, c.Errf("tlsa: %v", err)
				}
				cfg.tlsa = append(cfg.tlsa, h)
			case "serial":
				var v string
				if v, err = one(); err == nil {
					var perr error
					if cfg.serial, perr = serial.Parse(v); perr != nil {
						err = c.Err(perr.Error())
					}
				}
			case "rollover":
				var v string
				if v, err = one(); err == nil {
					switch v {
					case "csk":
						cfg.keyPolicy.Split = false
					case "split":
						cfg.keyPolicy.Split = true
					default:
						err = c.Errf("rollover %q: want csk (one key signs everything) or split (a KSK and a ZSK)", v)
					}
				}
			case "lifetime":
				if len(vals) != 2 {
					return nil, c.Errf("lifetime takes a role (csk, ksk or zsk) and a duration or never")
				}
				var d time.Duration
				if vals[1] != "never" {
					if d, err = duration.Parse(vals[1]); err == nil {
						err = duration.Within(d, time.Second, 100*365*24*time.Hour)
					}
					if err != nil {
						return nil, c.Errf("lifetime %s: %v", vals[0], err)
					}
				}
				switch vals[0] {
				case "csk", "ksk":
					cfg.keyPolicy.KSKLifetime = d
				case "zsk":
					cfg.keyPolicy.ZSKLifetime = d
				default:
					return nil, c.Errf("lifetime %q: want csk, ksk or zsk", vals[0])
				}
			case "timing":
				if len(vals) == 0 || len(vals)%2 != 0 {
					return nil, c.Errf("timing takes pairs: NAME DURATION (%s)", strings.Join(timingNames, ", "))
				}
				for i := 0; i < len(vals); i += 2 {
					d, perr := duration.Parse(vals[i+1])
					if perr == nil {
						perr = duration.Within(d, 0, 10*365*24*time.Hour)
					}
					if perr != nil {
						return nil, c.Errf("timing %s: %v", vals[i], perr)
					}
					if !setTiming(&cfg.keyPolicy, vals[i], d) {
						return nil, c.Errf("timing %q: want one of %s", vals[i], strings.Join(timingNames, ", "))
					}
				}
			case "parental_agents":
				if len(vals) == 0 {
					return nil, c.Errf("parental_agents needs the addresses of the parent zone's servers")
				}
				for _, a := range vals {
					host := a
					if h, _, serr := net.SplitHostPort(a); serr == nil {
						host = h
					}
					if net.ParseIP(host) == nil {
						return nil, c.Errf("parental_agents: %q is not an IP address[:port]", a)
					}
				}
				cfg.agents = append(cfg.agents, vals...)
			case "follow_cds":
				if len(vals) != 0 {
					return nil, c.Errf("follow_cds takes no arguments")
				}
				cfg.followCDS = true
			case "control":
				if len(vals) < 1 || len(vals) > 2 {
					return nil, c.Errf("control takes an address and an optional token")
				}
				cfg.control = vals[0]
				if len(vals) == 2 {
					cfg.token = vals[1]
				}
				if err := control.CheckAddress(cfg.control, cfg.token); err != nil {
					return nil, c.Err(err.Error())
				}
			default:
				return nil, c.Errf("unknown property %q", opt)
			}
			if err != nil {
				return nil, err
			}
		}
	}
	if !refreshSet {
		cfg.policy.Refresh = cfg.policy.Validity / 2
	}
	if !jitterSet {
		cfg.policy.Jitter = min(cfg.policy.Jitter, cfg.policy.Validity/4)
	}
	if err := cfg.policy.Check(); err != nil {
		return nil, c.Err(err.Error())
	}
	cfg.keyPolicy.Algorithm = cfg.algorithm
	if !cfg.keyPolicy.Split && cfg.keyPolicy.ZSKLifetime > 0 {
		return nil, c.Errf("lifetime zsk needs rollover split (a CSK has one lifetime: lifetime csk)")
	}
	if err := cfg.keyPolicy.Check(); err != nil {
		return nil, c.Errf("key policy: %v", err)
	}
	for z := range cfg.insecure {
		if cfg.unsigned[z] {
			return nil, c.Errf("%s is both unsigned (served without DNSSEC at once) and insecure (taken insecure safely): choose one", z)
		}
	}
	if len(cfg.insecure) > 0 && cfg.reload == 0 {
		return nil, c.Errf("insecure needs the poll, which takes the zones insecure step by step: reload is 0")
	}
	return cfg, nil
}

// zoneNames checks the zone names of a directive and returns them canonical.
func zoneNames(c *caddy.Controller, directive string, vals []string, need string) ([]string, error) {
	if len(vals) == 0 {
		return nil, c.Errf("%s needs %s", directive, need)
	}
	out := make([]string, 0, len(vals))
	for _, z := range vals {
		if _, ok := dns.IsDomainName(z); !ok {
			return nil, c.Errf("%s: invalid zone name %q", directive, z)
		}
		out = append(out, zone.Canonical(z))
	}
	return out, nil
}

// timingNames are the parameters of the timing directive (roll.Policy, RFC 7583 §2).
var timingNames = []string{"dnskey-ttl", "max-zone-ttl", "propagation", "safety", "parent-ds-ttl", "parent-propagation", "parent-warn"}

// setTiming sets one timing parameter of p by its name; false for an unknown name.
func setTiming(p *roll.Policy, name string, d time.Duration) bool {
	field := map[string]*time.Duration{"dnskey-ttl": &p.DNSKEYTTL, "max-zone-ttl": &p.MaxTTL, "propagation": &p.Propagation,
		"safety": &p.Safety, "parent-ds-ttl": &p.ParentDSTTL, "parent-propagation": &p.ParentPropagation, "parent-warn": &p.ParentWarn}[name]
	if field == nil {
		return false
	}
	*field = d
	return true
}

// historySize is how many queries the control API's history keeps.
const historySize = 10000

// Bounds of the Corefile's durations, beside those of the signing policy (signer.MinValidity,
// MaxValidity, MaxInception) of faults (fault.MaxWindow, MaxDelay) and of `tlsa` lines (package tlsa).
const (
	// reload: files are polled at most every 10ms (a busy loop below that), and at least
	// daily, or a fixed zone file or renewed certificate would wait for days. 0 turns
	// reloading off.
	minReload, maxReload = 10 * time.Millisecond, 24 * time.Hour
	// grace: how long a zone file may be missing before its zone is dropped. A file is
	// missing for a moment when a tool deletes and writes it again; dropping the zone then
	// would also drop the records added over the control API. A day is past any edit.
	defaultGrace, maxGrace = 30 * time.Second, 24 * time.Hour
)

// maxMaxRecords bounds max_records: a hundred million records take some 200 GB.
const maxMaxRecords = 100_000_000

// parseFault reads `fault MODE NAME [TYPE] [count N] [share P] [after D] [for D] [delay D] [iterations N] [zone Z]`.
func parseFault(args []string) (fault.Spec, error) {
	var s fault.Spec
	if len(args) < 2 {
		return s, fmt.Errorf("needs a mode and a name: fault MODE NAME [TYPE] [count N] [share P] [after D] [for D] [delay D] [iterations N] [zone Z]")
	}
	m, err := fault.ParseMode(args[0])
	if err != nil {
		return s, err
	}
	s.Mode, s.Name = m, args[1]
	rest := args[2:]
	if len(rest) > 0 {
		if _, ok := dns.StringToType[strings.ToUpper(rest[0])]; ok {
			s.Type, rest = rest[0], rest[1:]
		}
	}
	if len(rest)%2 != 0 {
		return s, fmt.Errorf("%q needs a value", rest[len(rest)-1])
	}
	for i := 0; i < len(rest); i += 2 {
		k, v := rest[i], rest[i+1]
		var d time.Duration
		switch k {
		case "count":
			s.Count, err = strconv.Atoi(v)
		case "share":
			s.Share, err = strconv.ParseFloat(v, 64)
		case "after", "for", "delay": // bounded by fault.MaxWindow and fault.MaxDelay (Spec.compile)
			if d, err = duration.Parse(v); err != nil {
				return s, fmt.Errorf("%s: %v", k, err) // the error quotes v
			}
			switch k {
			case "after":
				s.After = fault.Duration(d)
			case "for":
				s.For = fault.Duration(d)
			default:
				s.Delay = fault.Duration(d)
			}
		case "zone":
			s.Zone = v
		case "iterations":
			s.Iterations, err = strconv.Atoi(v)
		default:
			return s, fmt.Errorf("unknown option %q (count, share, after, for, delay, iterations, zone)", k)
		}
		if err != nil {
			return s, fmt.Errorf("%s %q: %v", k, v, err)
		}
	}
	return s, nil
}

// start loads keys and zones; any error here stops CoreDNS from starting.
func start(cfg *config) (*DaneZone, error) {
	files, err := cfg.startFiles()
	if err != nil {
		return nil, err
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("%s: %w", cfg.path, errNoZones)
	}
	var served []*servedZone
	for origin, file := range files {
		sz, err := cfg.open(origin, file)
		if err != nil {
			return nil, err
		}
		served = append(served, sz)
	}
	d := &DaneZone{faults: fault.NewRegistry(), keyPolicy: cfg.keyPolicy, rolling: cfg.reload > 0, insecure: cfg.insecure}
	if len(cfg.insecure) > 0 && len(cfg.agents) == 0 {
		log.Warningf("insecure: without parental_agents the zones wait for ever for the parent to remove the DS, and keep signing")
	}
	if cfg.reload == 0 && (cfg.keyPolicy.KSKLifetime > 0 || cfg.keyPolicy.ZSKLifetime > 0) {
		log.Warningf("reload 0: the key policy does not run (no poll), so the lifetimes set are not kept")
	}
	d.zones.Store(newZoneSet(served))
	d.faults.OnChange = func() {
		for _, sz := range d.zones.Load().byName {
			sz.alts.reset()
		}
	}
	for _, spec := range cfg.faults {
		if _, err := d.faults.Add(spec); err != nil {
			return nil, err
		}
	}
	d.tlsaLogged, d.expiryLogged = map[string]string{}, map[string]time.Time{}
	if err := d.startTLSA(cfg); err != nil {
		return nil, err
	}
	// Before the first answer: a parent served from its file alone would deny its children's
	// DS until the first poll, and validators would cache them as insecure (seen after a
	// restart in the middle of a KSK roll).
	if cfg.followCDS {
		d.followCDS(d.zones.Load())
	}
	return d, nil
}

// open prepares a zone: keys (generated when there are none), signer, first load.
func (cfg *config) open(origin, file string) (*servedZone, error) {
	if cfg.unsigned[origin] {
		sz := &servedZone{origin: origin, file: file, mode: denial.NSEC, unsigned: true,
			signer: signer.New(origin, &keys.Set{Zone: origin}, cfg.policy), maxRecords: cfg.records, answerCache: cfg.answerCache}
		if err := cfg.first(sz); err != nil {
			return nil, err
		}
		log.Infof("Serving %s from %s unsigned: serial %d, %d names", origin, file, sz.cur.Load().z.Serial, sz.cur.Load().z.Nodes())
		return sz, nil
	}
	ks, err := cfg.openKeys(origin)
	if err != nil {
		return nil, err
	}
	// No DS (every key's CDS schedule over or to come, e.g. a successor's files deleted after
	// CDS moved to it): the zone is served all the same, and the key policy repairs it.
	switch dsFile, err := writeDSSet(cfg, ks); {
	case ks.Unsigned():
		log.Infof("%s has no key in use: served unsigned", origin)
	case dsFile == "" && ks.DeleteDS:
		log.Infof("%s asks its parent to remove its DS, or is signed again and waits to name its key: CDS and CDNSKEY are the DELETE records (RFC 8078)", origin)
	case err != nil:
		log.Warningf("No DS for the parent of %s now: %v; CDS names no key until the key policy repairs the schedules", origin, err)
	default:
		for _, ds := range ks.DS(dns.SHA256) {
			log.Infof("DS for the parent of %s (also in %s): %s", origin, dsFile, ds.String())
		}
	}
	mode := cfg.mode
	if m, ok := cfg.modes[origin]; ok {
		mode = m
	}
	sz := &servedZone{origin: origin, file: file, mode: mode, signer: signer.New(origin, ks, cfg.policy),
		keyStamp: keyFilesStamp(cfg.keyDir, origin), maxRecords: cfg.records, answerCache: cfg.answerCache}
	if err := cfg.first(sz); err != nil {
		return nil, err
	}
	z := sz.cur.Load().z
	log.Infof("Serving %s from %s: serial %d, %d names, denial %s", origin, file, z.Serial, z.Nodes(), mode)
	return sz, nil
}

// first loads the zone for the first time, under a serial greater than the last one served
// before (kept in the serial state file): every signature is new after a restart, so a
// secondary must not take this version for the one it has.
func (cfg *config) first(sz *servedZone) error {
	sz.policy = cfg.serial
	sz.poke, sz.quit = make(chan struct{}, 1), make(chan struct{})
	st, err := serial.Open(cfg.serialState())
	if err != nil {
		return err
	}
	sz.serials = st
	sz.last, sz.haveLast = st.Last(sz.origin)
	sz.mu.Lock()
	defer sz.mu.Unlock()
	z, fz, stamp, err := sz.load()
	if err != nil {
		reloads.WithLabelValues(sz.origin, "failed").Inc()
		return err
	}
	sz.install(z, fz, stamp)
	return nil
}

// serialState is the file that keeps the last serial of each zone: in the key directory, like
// the TLSA publication times.
func (cfg *config) serialState() string { return filepath.Join(cfg.keyDir, "serial-state.json") }
