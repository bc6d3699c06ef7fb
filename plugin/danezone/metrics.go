package danezone

import (
	"github.com/coredns/coredns/plugin"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// Every metric counted per query carries CoreDNS's server label (metrics.WithServer), as the
// metrics of CoreDNS's own plugins do; the others (reloads, zone state, keys, certificates)
// are not per query and carry none.
var (
	signaturesMade = promauto.NewCounterVec(prometheus.CounterOpts{
		Namespace: plugin.Namespace, Subsystem: "danezone", Name: "signatures_total",
		Help: "Counter of RRSIG records made.",
	}, []string{"server", "zone"})
	sigCacheHits = promauto.NewCounterVec(prometheus.CounterOpts{
		Namespace: plugin.Namespace, Subsystem: "danezone", Name: "signature_cache_hits_total",
		Help: "Counter of RRsets served with cached signatures.",
	}, []string{"server", "zone"})
	sigCacheMisses = promauto.NewCounterVec(prometheus.CounterOpts{
		Namespace: plugin.Namespace, Subsystem: "danezone", Name: "signature_cache_misses_total",
		Help: "Counter of RRsets that had to be signed to be served (first use, refresh, or minimal denial).",
	}, []string{"server", "zone"})
	answerCacheHits = promauto.NewCounterVec(prometheus.CounterOpts{
		Namespace: plugin.Namespace, Subsystem: "danezone", Name: "answer_cache_hits_total",
		Help: "Counter of responses sent from the answer cache.",
	}, []string{"server", "zone"})
	answerCacheMisses = promauto.NewCounterVec(prometheus.CounterOpts{
		Namespace: plugin.Namespace, Subsystem: "danezone", Name: "answer_cache_misses_total",
		Help: "Counter of queries the answer cache could have answered but had no usable response for.",
	}, []string{"server", "zone"})
	responses = promauto.NewCounterVec(prometheus.CounterOpts{
		Namespace: plugin.Namespace, Subsystem: "danezone", Name: "responses_total",
		Help: "Counter of responses by kind (answer, cname, nodata, nxdomain, referral).",
	}, []string{"server", "zone", "kind"})
	reloads = promauto.NewCounterVec(prometheus.CounterOpts{
		Namespace: plugin.Namespace, Subsystem: "danezone", Name: "reloads_total",
		Help: "Counter of zone loads by result (ok, failed). A failed load keeps the last good version serving.",
	}, []string{"zone", "result"})
	serialGauge = promauto.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: plugin.Namespace, Subsystem: "danezone", Name: "zone_serial",
		Help: "SOA serial of the version being served.",
	}, []string{"zone"})
	earliestExpiry = promauto.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: plugin.Namespace, Subsystem: "danezone", Name: "signature_expiry_earliest_timestamp_seconds",
		Help: "Unix time of the earliest expiration among signatures that would be served now.",
	}, []string{"zone"})
	faultsApplied = promauto.NewCounterVec(prometheus.CounterOpts{
		Namespace: plugin.Namespace, Subsystem: "danezone", Name: "faults_applied_total",
		Help: "Counter of queries a fault was applied to, by mode.",
	}, []string{"server", "zone", "mode"})
	faultDelayDropped = promauto.NewCounterVec(prometheus.CounterOpts{
		Namespace: plugin.Namespace, Subsystem: "danezone", Name: "fault_delays_dropped_total",
		Help: "Counter of queries a delay fault dropped instead of delaying, because the most queries delayed at once were waiting.",
	}, []string{"server", "zone"})
	tlsaErrors = promauto.NewCounterVec(prometheus.CounterOpts{
		Namespace: plugin.Namespace, Subsystem: "danezone", Name: "tlsa_source_errors_total",
		Help: "Counter of problems with certificate sources or staged keys (each distinct problem once); the last good TLSA records keep serving.",
	}, []string{"host"})
	tlsaChanges = promauto.NewCounterVec(prometheus.CounterOpts{
		Namespace: plugin.Namespace, Subsystem: "danezone", Name: "tlsa_changes_total",
		Help: "Counter of changes of the TLSA records published for a host.",
	}, []string{"host"})
	tlsaUnstaged = promauto.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: plugin.Namespace, Subsystem: "danezone", Name: "tlsa_unstaged_key",
		Help: "1 when the host's current certificate uses a key whose TLSA was not published at least one TTL before use.",
	}, []string{"host"})
	certExpiry = promauto.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: plugin.Namespace, Subsystem: "danezone", Name: "tlsa_certificate_expiry_timestamp_seconds",
		Help: "Unix time when the host's current certificate expires.",
	}, []string{"host"})
	keysMissing = promauto.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: plugin.Namespace, Subsystem: "danezone", Name: "keys_missing",
		Help: "1 when the key directory has no keys for a zone whose state shows it had keys: the zone is not served, or still signed with the keys in memory.",
	}, []string{"zone"})
	keysGenerated = promauto.NewCounterVec(prometheus.CounterOpts{
		Namespace: plugin.Namespace, Subsystem: "danezone", Name: "keys_generated_total",
		Help: "Counter of keys generated: for a zone that never had keys, or replacing lost ones (regenerate).",
	}, []string{"zone"})
	transfers = promauto.NewCounterVec(prometheus.CounterOpts{
		Namespace: plugin.Namespace, Subsystem: "danezone", Name: "transfers_total",
		Help: "Counter of outgoing zone transfers by type (axfr; ixfr: differences from the journal; ixfr_uptodate: the secondary had the serial; ixfr_full: the whole zone, the journal not reaching back).",
	}, []string{"zone", "type"})
	notifies = promauto.NewCounterVec(prometheus.CounterOpts{
		Namespace: plugin.Namespace, Subsystem: "danezone", Name: "notifies_total",
		Help: "Counter of NOTIFY rounds to the secondaries by result (ok: every secondary acknowledged; failed: one did not, retried with backoff).",
	}, []string{"zone", "result"})
	resigns = promauto.NewCounterVec(prometheus.CounterOpts{
		Namespace: plugin.Namespace, Subsystem: "danezone", Name: "resigns_total",
		Help: "Counter of new serials made because signatures were refreshed ahead of time for the secondaries.",
	}, []string{"zone"})
	buildSeconds = promauto.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: plugin.Namespace, Subsystem: "danezone", Name: "transfer_build_seconds",
		Help:    "Time to build a version of a zone for transfer: signing what is due and diffing with the last version.",
		Buckets: prometheus.ExponentialBuckets(0.001, 4, 10),
	}, []string{"zone"})
)
