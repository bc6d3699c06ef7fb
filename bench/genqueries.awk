# genqueries.awk: dnsperf query files ("name TYPE" per line) for the zone made by genzone.awk.
# Usage: awk -v MIX=positive|nodata|nxdomain|mail -v COUNT=100000 -v HOSTS=1000 -v MXHOSTS=20 \
#            -v SEED=1 -f genqueries.awk
#   positive  MX, A, TLSA, TXT of existing names (hosts, MX hosts, apex, mail policy names)
#   nodata    existing names asked for types they lack (and empty non-terminals)
#   nxdomain  COUNT unique random names (unique by construction: the label carries a counter),
#             some directly under the apex, some under existing hosts
#   mail      what a sending MTA (DANE, MTA-STS, TLSRPT) and a receiving MTA (SPF, DMARC) ask
#             about a mail domain: MX, A/AAAA and _25._tcp TLSA of the MX host, TXT at the
#             domain, _dmarc, _mta-sts and _smtp._tls; plus about 10% NXDOMAIN (typo'd domains)
# Deterministic for a given SEED; use a different SEED for warm-up files so warm-up does not
# pre-sign the measured NXDOMAIN names.
BEGIN {
	if (COUNT == "") COUNT = 100000
	if (HOSTS == "") HOSTS = 1000
	if (MXHOSTS == "") MXHOSTS = 20
	if (SEED == "") SEED = 1
	srand(SEED)
	Z = ".example.test"
	split("a b c d e f g h i j k l m n o p q r s t u v w x y z", L, " ")
	nx = 0
	if (MIX == "positive") positive()
	else if (MIX == "nodata") nodata()
	else if (MIX == "nxdomain") nxdomain()
	else if (MIX == "mail") mail()
	else { print "genqueries.awk: unknown MIX " MIX > "/dev/stderr"; exit 2 }
}
function r(n) { return 1 + int(rand() * n) }
function pick(list,   a, n) { n = split(list, a, " "); return a[r(n)] }
function host() { return "host" r(HOSTS) }
function mxhost() { return "mx" r(MXHOSTS) }
# A unique never-existing label: random letters, then a counter (no zone name looks like it).
function nxlabel(   s, i, n) {
	n = 6 + int(rand() * 7); s = ""
	for (i = 0; i < n; i++) s = s L[r(26)]
	return s (++nx) "x" int(rand() * 1000)
}
function q(name, type) { print name " " type }
function positive(   i, x, h) {
	for (i = 0; i < COUNT; i++) {
		x = rand()
		if (x < 0.25) q(host() Z, "MX")
		else if (x < 0.45) q(host() Z, "A")
		else if (x < 0.65) q("_25._tcp." host() Z, "TLSA")
		else if (x < 0.75) q(host() Z, "TXT")
		else if (x < 0.80) q("_dmarc.host" 2 * r(int(HOSTS / 2)) Z, "TXT")
		else if (x < 0.85) q(mxhost() Z, pick("A AAAA"))
		else if (x < 0.90) q("_25._tcp." mxhost() Z, "TLSA")
		else if (x < 0.95) q("example.test", pick("MX TXT A NS SOA"))
		else q(pick("_dmarc _mta-sts _smtp._tls") Z, "TXT")
	}
}
function nodata(   i, x) {
	for (i = 0; i < COUNT; i++) {
		x = rand()
		if (x < 0.30) q(host() Z, pick("AAAA TLSA SRV CAA"))
		else if (x < 0.45) q(mxhost() Z, pick("MX TXT TLSA"))
		else if (x < 0.60) q("_25._tcp." host() Z, pick("A TXT"))
		else if (x < 0.70) q("_tcp." host() Z, pick("A TLSA"))
		else if (x < 0.80) q("_dmarc.host" 2 * r(int(HOSTS / 2)) Z, "A")
		else if (x < 0.90) q("example.test", pick("AAAA TLSA CAA SRV"))
		else q(pick("www _dmarc _mta-sts ns1 ns2") Z, pick("MX AAAA TLSA"))
	}
}
function nxdomain(   i) {
	for (i = 0; i < COUNT; i++) {
		if (rand() < 0.8) q(nxlabel() Z, pick("A A AAAA MX TXT"))
		else q(nxlabel() "." host() Z, pick("A TXT"))
	}
}
function mail(   n, x, d, m, k) {
	n = 0
	while (n < COUNT) {
		if (rand() < 0.10) { q(nxlabel() Z, "MX"); n++; continue }
		if (rand() < 0.05) { d = "example.test"; m = pick("mx1 mx2") }
		else { k = r(HOSTS); d = "host" k Z; m = "mx" (1 + k % MXHOSTS) }
		sub(/^\./, "", d)
		q(d, "MX"); q(m Z, "A"); q(m Z, "AAAA"); q("_25._tcp." m Z, "TLSA")
		q("_mta-sts." d, "TXT"); q("_smtp._tls." d, "TXT")
		q(d, "TXT"); q("_dmarc." d, "TXT")
		n += 8
	}
}
