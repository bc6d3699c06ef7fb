# genzone.awk: the bench zone. Copies the base zone (zones/example.test.zone) and appends
# synthetic mail hosts so that lookups are spread over many RRsets:
#   mx3..mxM          A, AAAA, and _25._tcp.mxK TLSA          (M = MXHOSTS, base has mx1, mx2)
#   hostN             A, MX (-> mxK), TXT (SPF)                (N = 1..HOSTS)
#   _25._tcp.hostN    TLSA
#   _dmarc.hostN      TXT (every second host)
# so HOSTS hosts add about 2.5*HOSTS owner names (plus the empty non-terminals _tcp.hostN).
# Usage: awk -v HOSTS=1000 -v MXHOSTS=20 -f genzone.awk zones/example.test.zone > out.zone
# The output is deterministic (fixed seed). Names are listed by gen_queries.awk with the same
# conventions; keep the two in step.
function hex(n,   s, i) { s = ""; for (i = 0; i < n; i++) s = s sprintf("%x", int(rand() * 16)); return s }
BEGIN { srand(20261122); if (HOSTS == "") HOSTS = 1000; if (MXHOSTS == "") MXHOSTS = 20 }
{ print }
END {
	print ""
	print "; ---- synthetic bench data: " HOSTS " hosts, " MXHOSTS " MX hosts ----"
	for (k = 3; k <= MXHOSTS; k++) {
		printf "mx%d\tIN A\t127.0.%d.%d\n", k, 1 + int(k / 250), 1 + k % 250
		printf "mx%d\tIN AAAA\tfd00::%x\n", k, k
		printf "_25._tcp.mx%d\tIN TLSA\t3 1 1 %s\n", k, hex(64)
	}
	for (n = 1; n <= HOSTS; n++) {
		h = "host" n
		printf "%s\tIN A\t10.%d.%d.%d\n", h, int(n / 65536) % 256, int(n / 256) % 256, n % 256
		printf "%s\tIN MX\t10 mx%d.example.test.\n", h, 1 + n % MXHOSTS
		printf "%s\tIN TXT\t\"v=spf1 mx -all\"\n", h
		printf "_25._tcp.%s\tIN TLSA\t3 1 1 %s\n", h, hex(64)
		if (n % 2 == 0)
			printf "_dmarc.%s\tIN TXT\t\"v=DMARC1; p=reject; rua=mailto:dmarc@%s.example.test\"\n", h, h
	}
}
