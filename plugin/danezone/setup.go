package danezone

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/coredns/caddy"
	"github.com/coredns/coredns/core/dnsserver"
	"github.com/coredns/coredns/plugin"
	clog "github.com/coredns/coredns/plugin/pkg/log"
	"github.com/danelab/danelab/plugin/danezone/denial"
	"github.com/danelab/danelab/plugin/danezone/keys"
	"github.com/danelab/danelab/plugin/danezone/signer"
	"github.com/danelab/danelab/plugin/danezone/zone"
	"github.com/miekg/dns"
)

var log = clog.NewWithPlugin("danezone")

func init() { plugin.Register("danezone", setup) }

// config is the parsed danezone block.
type config struct {
	path      string
	origins   []string
	keyDir    string
	algorithm uint8
	mode      denial.Mode
	modes     map[string]denial.Mode // per zone
	policy    signer.Policy
	reload    time.Duration
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
	stop := make(chan struct{})
	var once sync.Once
	c.OnStartup(func() error {
		go d.poll(cfg, stop)
		return nil
	})
	c.OnShutdown(func() error {
		once.Do(func() { close(stop) })
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
		keyDir:    ".state/keys",
		algorithm: dns.ECDSAP256SHA256,
		mode:      denial.NSEC,
		modes:     map[string]denial.Mode{},
		policy:    signer.DefaultPolicy(),
		reload:    time.Second,
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
			dur := func() (time.Duration, error) {
				v, err := one()
				if err != nil {
					return 0, err
				}
				d, err := ParseDuration(v)
				if err != nil {
					return 0, c.Errf("%s: %v", opt, err)
				}
				return d, nil
			}
			var err error
			switch opt {
			case "keys":
				cfg.keyDir, err = one()
			case "algorithm":
				var v string
				if v, err = one(); err == nil {
					cfg.algorithm, err = keys.ParseAlgorithm(v)
				}
			case "denial":
				if len(vals) == 0 {
					return nil, c.Errf("denial needs a mode: nsec or minimal")
				}
				mode, perr := denial.ParseMode(vals[0])
				if perr != nil {
					return nil, c.Err(perr.Error())
				}
				if len(vals) == 1 {
					cfg.mode = mode
				}
				for _, z := range vals[1:] {
					cfg.modes[zone.Canonical(z)] = mode
				}
			case "validity":
				cfg.policy.Validity, err = dur()
			case "refresh":
				cfg.policy.Refresh, err = dur()
				refreshSet = true
			case "jitter":
				cfg.policy.Jitter, err = dur()
				jitterSet = true
			case "inception":
				cfg.policy.Inception, err = dur()
			case "reload":
				cfg.reload, err = dur()
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
	return cfg, nil
}

// ParseDuration reads a Go duration, also accepting whole days ("14d").
func ParseDuration(s string) (time.Duration, error) {
	if d, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.Atoi(d)
		if err != nil || n < 0 || n > math.MaxInt32/24 {
			return 0, fmt.Errorf("invalid duration %q", s)
		}
		return time.Duration(n) * 24 * time.Hour, nil
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("invalid duration %q", s)
	}
	if v < 0 {
		return 0, fmt.Errorf("negative duration %q", s)
	}
	return v, nil
}

// start loads keys and zones; any error here stops CoreDNS from starting.
func start(cfg *config) (*DaneZone, error) {
	files, err := zoneFiles(cfg.path, cfg.origins)
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
	d := &DaneZone{}
	d.zones.Store(newZoneSet(served))
	return d, nil
}

// open prepares a zone: keys (generated when there are none), signer, first load.
func (cfg *config) open(origin, file string) (*servedZone, error) {
	ks, generated, err := keys.LoadOrGenerate(cfg.keyDir, origin, cfg.algorithm)
	if err != nil {
		return nil, err
	}
	if generated {
		log.Infof("Generated a key (CSK, %s) for %s in %s", dns.AlgorithmToString[cfg.algorithm], origin, cfg.keyDir)
	}
	dsFile, err := keys.WriteDSSet(cfg.keyDir, ks)
	if err != nil {
		return nil, err
	}
	for _, ds := range ks.DS(dns.SHA256) {
		log.Infof("DS for the parent of %s (also in %s): %s", origin, dsFile, ds.String())
	}
	mode := cfg.mode
	if m, ok := cfg.modes[origin]; ok {
		mode = m
	}
	sz := &servedZone{origin: origin, file: file, mode: mode, signer: signer.New(origin, ks, cfg.policy),
		keyStamp: keyFilesStamp(cfg.keyDir, origin)}
	snap, st, err := sz.load()
	if err != nil {
		reloads.WithLabelValues(origin, "failed").Inc()
		return nil, err
	}
	sz.install(snap, st)
	log.Infof("Serving %s from %s: serial %d, %d names, denial %s", origin, file, snap.z.Serial, snap.z.Nodes(), mode)
	return sz, nil
}
