#!/usr/bin/env bash
# bench/run.sh: `make bench`. Throughput of online DNSSEC signing, measured with dnsperf -D
# (DO set) against, in one run:
#   danezone-nsec     danezone ZONE example.test { keys DIR  denial nsec }
#   danezone-minimal  danezone ZONE example.test { keys DIR  denial minimal }
#   danezone-nsec3, danezone-nsec3-narrow, danezone-compact: the same with those denial modes
#   coredns-dnssec    stock CoreDNS: file ZONE example.test + dnssec example.test { key file K }
#   file-unsigned     stock CoreDNS: file ZONE example.test (the same zone, unsigned)
#   knot              Knot DNS (knotd) with mod-onlinesign, ECDSAP256SHA256 (if installed)
#   ceiling           CoreDNS with one handler that writes a pre-packed answer (bench/ceiling):
#                     the least work the framework does per query; every figure is also
#                     given as a share of it
# over four query mixes (positive, nxdomain, nodata, mail: see genqueries.awk), on a zone
# made from zones/example.test.zone plus BENCH_HOSTS synthetic mail hosts (genzone.awk).
# The servers run together, pinned to CPU SERVER_CPU, and dnsperf asks one at a time from CPU
# CLIENT_CPU. Each mix is measured after a warm-up of every server on a different sample of the
# same mix (different random NXDOMAIN names, so the warm-up does not pre-sign the measured
# ones), in BENCH_ROUNDS rounds that take the servers in turn, each round on its own part of
# the sample: a slow spell of the machine then falls on all servers alike, not on one, and
# the ratios between them hold from one run to the next. Then, for a zone of BENCH_LOAD_NAMES
# names: the time from process start until the first SOA answer, and the RSS at that moment.
# Last, bench/xfr.sh: zone transfers (AXFR, IXFR after a change) from danezone and Knot as
# signing primaries, for a zone of BENCH_XFR_NAMES names (0: skipped; see bench/xfr.sh for
# its knobs, BENCH_XFR_*); its table follows these, and goes to BENCH_OUT too.
#
# Prints tables to stdout; if BENCH_OUT is set, also writes them there as markdown.
# A server that does not start, does not sign, or dies is reported as "failed"; the rest of
# the run goes on. Only 127.0.0.1 is used.
#
# Environment (defaults):
#   BENCH_SECONDS=10 WARMUP_SECONDS=2    dnsperf -l for measurement / warm-up, per mix and
#                                        server, whole seconds (the measurement split over
#                                        the rounds, each rounded up to a whole second)
#   BENCH_ROUNDS=5                       rounds per mix
#   BENCH_OUTSTANDING=100 BENCH_CLIENTS=4  dnsperf -q / -c
#   BENCH_HOSTS=1000 BENCH_NX=100000 BENCH_QUERIES=100000  zone size, unique NXDOMAIN names,
#                                        lines per other query file
#   BENCH_LOAD_NAMES=100000              names in the load-time zone (0: skip the load test)
#   BENCH_XFR_NAMES=100000               names in the zone-transfer zone (0: skip bench/xfr.sh)
#   BENCH_SERVERS="ceiling danezone-nsec danezone-minimal danezone-nsec3 danezone-nsec3-narrow
#                  danezone-compact coredns-dnssec file-unsigned knot"
#   BENCH_MIXES="positive nxdomain nodata mail"
#   SERVER_CPU=0 CLIENT_CPU=1  COREDNS=bin/coredns  GO=go  BENCH_OUT=  BENCH_KEEP=0 (keep tmp)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH=$ROOT/bench
COREDNS=${COREDNS:-$ROOT/bin/coredns}
GO=${GO:-go}
BENCH_SECONDS=${BENCH_SECONDS:-10}
WARMUP_SECONDS=${WARMUP_SECONDS:-2}
BENCH_ROUNDS=${BENCH_ROUNDS:-5}
BENCH_OUTSTANDING=${BENCH_OUTSTANDING:-100}
BENCH_CLIENTS=${BENCH_CLIENTS:-4}
BENCH_HOSTS=${BENCH_HOSTS:-1000}
BENCH_NX=${BENCH_NX:-100000}
BENCH_QUERIES=${BENCH_QUERIES:-100000}
BENCH_LOAD_NAMES=${BENCH_LOAD_NAMES:-100000}
BENCH_SERVERS=${BENCH_SERVERS:-ceiling danezone-nsec danezone-minimal danezone-nsec3 danezone-nsec3-narrow danezone-compact coredns-dnssec file-unsigned knot}
BENCH_MIXES=${BENCH_MIXES:-positive nxdomain nodata mail}
SERVER_CPU=${SERVER_CPU:-0}
CLIENT_CPU=${CLIENT_CPU:-1}
BENCH_OUT=${BENCH_OUT:-}
BENCH_KEEP=${BENCH_KEEP:-0}
ZONE=example.test
MXHOSTS=20
ADDR=127.0.0.1

log() { printf '%s %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

for tool in dnsperf taskset awk ss "$GO"; do
	command -v "$tool" >/dev/null || die "$tool not found"
done
[[ -x $COREDNS ]] || die "$COREDNS not found (run make build)"

for v in BENCH_ROUNDS BENCH_SECONDS WARMUP_SECONDS; do
	[[ ${!v} =~ ^[1-9][0-9]*$ ]] || die "$v must be a whole number of at least 1 (it is ${!v})"
done
# Each round's dnsperf -l, in whole seconds.
ROUND_SECONDS=$(((BENCH_SECONDS + BENCH_ROUNDS - 1) / BENCH_ROUNDS))

TMP=$(mktemp -d /tmp/danelab-bench.XXXXXX)
SERVER_PID=
PROBE_PID=
declare -A PIDS PORTS # the servers running, by name
cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	for pid in $SERVER_PID $PROBE_PID "${PIDS[@]}"; do
		if kill -0 "$pid" 2>/dev/null; then
			kill "$pid" 2>/dev/null || true
			wait "$pid" 2>/dev/null || true
		fi
	done
	if [[ $BENCH_KEEP == 1 ]]; then log "kept $TMP"; else rm -rf "$TMP"; fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# free_port prints a random port in 20000-40000 that nothing listens on (UDP or TCP).
free_port() {
	local p i
	for i in $(seq 1 100); do
		p=$((20000 + (RANDOM * 32768 + RANDOM) % 20001))
		if [[ -z $(ss -Hlnu "sport = :$p") && -z $(ss -Hlnt "sport = :$p") ]]; then
			echo "$p"
			return 0
		fi
	done
	die "no free port found"
}

# count_names ZONEFILE: owner names with records (relative names; the apex is "@" or implied
# by continuation lines and counted once). Good enough for the zones genzone.awk writes.
count_names() { awk '/^[A-Za-z0-9_*]/ {n[$1]} END {print length(n) + 1}' "$1"; }

# ---- helpers, zone, keys, query files -------------------------------------------------------

log "building helpers"
(cd "$ROOT" && "$GO" build -o "$TMP/probe" ./bench/probe && "$GO" build -o "$TMP/keygen" ./bench/keygen &&
	"$GO" build -o "$TMP/ceiling" ./bench/ceiling)

log "generating zone ($BENCH_HOSTS hosts) and query files"
awk -v HOSTS="$BENCH_HOSTS" -v MXHOSTS=$MXHOSTS -f "$BENCH/genzone.awk" "$ROOT/zones/$ZONE.zone" >"$TMP/$ZONE.zone"
NAMES=$(count_names "$TMP/$ZONE.zone")
mkdir -p "$TMP/q"
for mix in $BENCH_MIXES; do
	count=$BENCH_QUERIES
	[[ $mix == nxdomain ]] && count=$BENCH_NX
	for seed in 1 2; do
		awk -v MIX="$mix" -v COUNT="$count" -v HOSTS="$BENCH_HOSTS" -v MXHOSTS=$MXHOSTS -v SEED=$seed \
			-f "$BENCH/genqueries.awk" >"$TMP/q/$mix.$seed"
	done
	# Round r starts at its own part of the measured sample (dnsperf reads a file from the
	# top, and wraps), so that the rounds do not all ask its first names; a random NXDOMAIN
	# name comes back only after BENCH_NX others, as in one long run.
	for ((r = 1; r <= BENCH_ROUNDS; r++)); do
		from=$(((r - 1) * count / BENCH_ROUNDS))
		{ tail -n "+$((from + 1))" "$TMP/q/$mix.1" && head -n "$from" "$TMP/q/$mix.1"; } >"$TMP/q/$mix.1.$r"
	done
done

# The stock dnssec plugin's key: dnssec-keygen if bind9-utils is there, else bench/keygen.
mkdir -p "$TMP/stock-keys"
if command -v dnssec-keygen >/dev/null; then
	STOCK_KEY=$TMP/stock-keys/$(dnssec-keygen -q -a ECDSAP256SHA256 -K "$TMP/stock-keys" "$ZONE")
	KEYGEN=dnssec-keygen
else
	STOCK_KEY=$("$TMP/keygen" -zone "$ZONE" -dir "$TMP/stock-keys")
	KEYGEN=bench/keygen
fi

# ---- servers --------------------------------------------------------------------------------

# server_conf NAME PORT ZONEFILE DIR: writes DIR's config for server NAME and prints the
# command line that runs it (in the foreground).
server_conf() {
	local name=$1 port=$2 zonefile=$3 dir=$4
	mkdir -p "$dir"
	case $name in
	danezone-*)
		mkdir -p "$dir/keys"
		cat >"$dir/Corefile" <<-EOF
			.:$port {
			    bind $ADDR
			    danezone $zonefile $ZONE {
			        keys $dir/keys
			        denial ${name#danezone-}
			    }
			}
		EOF
		echo "$COREDNS -conf $dir/Corefile"
		;;
	coredns-dnssec)
		cat >"$dir/Corefile" <<-EOF
			.:$port {
			    bind $ADDR
			    file $zonefile $ZONE
			    dnssec $ZONE {
			        key file $STOCK_KEY
			    }
			}
		EOF
		echo "$COREDNS -conf $dir/Corefile"
		;;
	ceiling)
		cat >"$dir/Corefile" <<-EOF
			.:$port {
			    bind $ADDR
			    ceiling
			}
		EOF
		echo "$TMP/ceiling -conf $dir/Corefile"
		;;
	file-unsigned)
		cat >"$dir/Corefile" <<-EOF
			.:$port {
			    bind $ADDR
			    file $zonefile $ZONE
			}
		EOF
		echo "$COREDNS -conf $dir/Corefile"
		;;
	knot)
		# knotd runs as root (server.user defaults to root), keeps everything under $dir,
		# and gets one worker per kind: it runs on one CPU like the others. The onlinesign
		# policy has knotd generate a CSK (ECDSAP256SHA256) in its KASP db at first load.
		mkdir -p "$dir/run" "$dir/db"
		cat >"$dir/knot.conf" <<-EOF
			server:
			    rundir: "$dir/run"
			    listen: $ADDR@$port
			    udp-workers: 1
			    tcp-workers: 1
			    background-workers: 1
			log:
			  - target: stderr
			    any: notice
			database:
			    storage: "$dir/db"
			policy:
			  - id: bench
			    algorithm: ecdsap256sha256
			mod-onlinesign:
			  - id: bench
			    policy: bench
			template:
			  - id: default
			    storage: "$dir"
			    journal-content: none
			    zonefile-sync: -1
			zone:
			  - domain: $ZONE
			    file: "$zonefile"
			    module: mod-onlinesign/bench
		EOF
		echo "knotd -c $dir/knot.conf"
		;;
	*) die "unknown server $name" ;;
	esac
}

signed() { [[ $1 != file-unsigned && $1 != ceiling ]]; }

available() {
	case $1 in
	knot) command -v knotd >/dev/null ;;
	*) true ;;
	esac
}

# start_server NAME: starts NAME on a fresh port (PORT), pinned to SERVER_CPU, and waits
# until it answers (signed, for the signing servers). Returns 1, server stopped, if not.
start_server() {
	local name=$1 dir=$TMP/srv/$1 cmd rc=0
	PORT=$(free_port)
	cmd=$(server_conf "$name" "$PORT" "$TMP/$ZONE.zone" "$dir")
	# shellcheck disable=SC2086 # cmd is a command line made above, without spaces in words
	taskset -c "$SERVER_CPU" $cmd >"$dir/log" 2>&1 &
	SERVER_PID=$!
	local flags=()
	signed "$name" && flags=(-dnssec)
	"$TMP/probe" ready -addr "$ADDR:$PORT" -zone "$ZONE" -timeout 60s -pid "$SERVER_PID" "${flags[@]}" \
		2>>"$dir/log" || rc=$?
	if ((rc != 0)); then
		if ((rc == 3)); then
			log "$name: answers, but without RRSIG"
		else
			log "$name: does not answer"
		fi
		sed 's/^/    | /' "$dir/log" | tail -20 >&2
		stop_server
		return 1
	fi
	return 0
}

stop_server() {
	if [[ -n $SERVER_PID ]]; then
		kill "$SERVER_PID" 2>/dev/null || true
		wait "$SERVER_PID" 2>/dev/null || true
		SERVER_PID=
	fi
}

vmrss() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status" 2>/dev/null || true; }

# cputicks PID: user+system CPU time of the whole process (all threads), in clock ticks.
# A server that has just died reads as 0 (alive tells), not as an error that set -e would
# turn into the end of the whole run.
cputicks() { { sed 's/^.*) //' "/proc/$1/stat" | awk '{print $12 + $13}'; } 2>/dev/null || echo 0; }
CLK_TCK=$(getconf CLK_TCK)

# dnsperf_run PORT FILE SECONDS OUT: one dnsperf run against the server on PORT.
dnsperf_run() {
	taskset -c "$CLIENT_CPU" dnsperf -s "$ADDR" -p "$1" -d "$2" -D -l "$3" \
		-q "$BENCH_OUTSTANDING" -c "$BENCH_CLIENTS" -T 1 -t 2 >"$4" 2>&1
}

declare -A QPS LAT LOST RCODES RESP DONE RUNTIME CPU QPC RSS LOADMS LOADRSS STATUS TICKS LATSUM

# parse OUT KEY: adds one dnsperf run's output OUT to the sums of KEY (server,mix).
parse() {
	local out=$1 key=$2 completed runtime lat lost
	completed=$(awk '/Queries completed:/ {print $3}' "$out")
	runtime=$(awk '/Run time \(s\):/ {print $4}' "$out")
	lat=$(awk '/Average Latency \(s\):/ {print $4}' "$out")
	lost=$(awk '/Queries lost:/ {print $3}' "$out")
	[[ ${completed:-0} -gt 0 && -n $runtime && -n $lat ]] || return 1
	DONE[$key]=$((${DONE[$key]:-0} + completed))
	RUNTIME[$key]=$(awk -v a="${RUNTIME[$key]:-0}" -v b="$runtime" 'BEGIN {printf "%.6f", a + b}')
	LATSUM[$key]=$(awk -v a="${LATSUM[$key]:-0}" -v l="$lat" -v n="$completed" 'BEGIN {printf "%.6f", a + l * n}')
	LOST[$key]=$((${LOST[$key]:-0} + ${lost:-0}))
	RCODES[$key]=$(awk -F': *' '/Response codes:/ {print $2}' "$out")
	RESP[$key]=$(awk '/Average packet size:/ {print $NF}' "$out")
}

# summarise KEY: the figures of KEY from its sums over the rounds.
summarise() {
	local key=$1 done=${DONE[$1]} rt=${RUNTIME[$1]} ticks=${TICKS[$1]}
	QPS[$key]=$(awk -v n="$done" -v t="$rt" 'BEGIN {printf "%d", n / t}')
	LAT[$key]=$(awk -v s="${LATSUM[$key]}" -v n="$done" 'BEGIN {printf "%.3f", s / n * 1000}')
	# Server CPU use during the runs, in % of one CPU (near 100: server-bound; well below:
	# the server did not get its CPU, or dnsperf is the bottleneck), and queries answered
	# per CPU-second the server used: the efficiency figure, which other load on the
	# machine skews much less than QPS.
	CPU[$key]=$(awk -v c="$ticks" -v hz="$CLK_TCK" -v t="$rt" 'BEGIN {printf "%d%%", (t > 0 ? 100 * c / hz / t : 0)}')
	QPC[$key]=$(awk -v c="$ticks" -v hz="$CLK_TCK" -v n="$done" 'BEGIN {if (c > 0) printf "%d", n * hz / c}')
	LOST[$key]=$(awk -v l="${LOST[$key]}" -v n="$done" 'BEGIN {printf "%d (%.2f%%)", l, 100 * l / (n + l)}')
}

# start_all: starts every server of BENCH_SERVERS that is there; they run side by side, idle
# but for the one dnsperf asks.
UP=()
start_all() {
	local name
	for name in $BENCH_SERVERS; do
		[[ -z ${STATUS[$name]:-} ]] || continue # named twice
		if ! available "$name"; then
			STATUS[$name]="n/a (not installed)"
			log "$name: not installed, skipped"
			continue
		fi
		log "$name: starting"
		if ! start_server "$name"; then
			STATUS[$name]=failed
			continue
		fi
		STATUS[$name]=ok
		PIDS[$name]=$SERVER_PID
		PORTS[$name]=$PORT
		SERVER_PID=
		UP+=("$name")
	done
}

# alive NAME: whether NAME still runs; marks it failed (and says so) once when not.
alive() {
	[[ ${STATUS[$1]} == ok ]] || return 1
	kill -0 "${PIDS[$1]}" 2>/dev/null && return 0
	log "$1: server died"
	sed 's/^/    | /' "$TMP/srv/$1/log" | tail -15 >&2
	STATUS[$1]=failed
	return 1
}

bench_mix() {
	local mix=$1 name out c0 c1 r i n=${#UP[@]}
	log "$mix: warm-up ${WARMUP_SECONDS}s each"
	for name in "${UP[@]}"; do
		alive "$name" || continue
		dnsperf_run "${PORTS[$name]}" "$TMP/q/$mix.2" "$WARMUP_SECONDS" "$TMP/srv/$name/$mix.warmup" || true
	done
	for ((r = 1; r <= BENCH_ROUNDS; r++)); do
		for ((i = 0; i < n; i++)); do
			name=${UP[$(((i + r - 1) % n))]} # each round starts with another server
			alive "$name" || continue
			[[ ${QPS[$name,$mix]:-} != failed ]] || continue
			out=$TMP/srv/$name/$mix.$r
			c0=$(cputicks "${PIDS[$name]}")
			if dnsperf_run "${PORTS[$name]}" "$TMP/q/$mix.1.$r" "$ROUND_SECONDS" "$out" && parse "$out" "$name,$mix" &&
				kill -0 "${PIDS[$name]}" 2>/dev/null; then
				c1=$(cputicks "${PIDS[$name]}")
				TICKS[$name,$mix]=$((${TICKS[$name,$mix]:-0} + c1 - c0))
			else
				QPS[$name,$mix]=failed
				log "$name: $mix: failed"
				sed 's/^/    | /' "$out" | tail -15 >&2
			fi
		done
	done
	for name in "${UP[@]}"; do
		[[ ${STATUS[$name]} == ok && ${QPS[$name,$mix]:-} != failed && -n ${DONE[$name,$mix]:-} ]] || continue
		summarise "$name,$mix"
		log "$name: $mix: ${QPS[$name,$mix]} qps, ${LAT[$name,$mix]} ms, server CPU ${CPU[$name,$mix]}, ${QPC[$name,$mix]} per CPU-second, lost ${LOST[$name,$mix]}, ${RCODES[$name,$mix]}"
	done
}

stop_all() {
	local name
	for name in "${UP[@]}"; do
		[[ ${STATUS[$name]} == ok ]] && RSS[$name]=$(vmrss "${PIDS[$name]}")
		SERVER_PID=${PIDS[$name]}
		stop_server
		unset "PIDS[$name]"
	done
}

# ---- load time ------------------------------------------------------------------------------

load_test() {
	local name=$1 dir=$TMP/load/$1 port cmd res
	available "$name" || { LOADMS[$name]="n/a"; return; }
	port=$(free_port)
	cmd=$(server_conf "$name" "$port" "$TMP/load.zone" "$dir")
	log "$name: load test ($LOAD_NAMES_ACTUAL names)"
	# shellcheck disable=SC2086
	taskset -c "$CLIENT_CPU" "$TMP/probe" load -addr "$ADDR:$port" -zone "$ZONE" -log "$dir/log" \
		-- taskset -c "$SERVER_CPU" $cmd >"$dir/result" 2>>"$dir/log" &
	PROBE_PID=$!
	if wait "$PROBE_PID"; then
		res=$(cat "$dir/result")
		LOADMS[$name]=$(sed -n 's/.*load_ms=\([0-9]*\).*/\1/p' <<<"$res")
		LOADRSS[$name]=$(sed -n 's/.*rss_kb=\([0-9]*\).*/\1/p' <<<"$res")
		log "$name: loaded in ${LOADMS[$name]} ms, RSS ${LOADRSS[$name]} kB"
	else
		LOADMS[$name]=failed
		log "$name: load test failed"
		sed 's/^/    | /' "$dir/log" | tail -10 >&2
	fi
	PROBE_PID=
}

# ---- run ------------------------------------------------------------------------------------

LOADAVG_START=$(cut -d' ' -f1-3 /proc/loadavg)
log "coredns: $COREDNS; zone: $NAMES names; key for stock dnssec: $KEYGEN; load average $LOADAVG_START"
start_all
for mix in $BENCH_MIXES; do
	bench_mix "$mix"
done
stop_all

LOAD_SERVERS=
LOAD_NAMES_ACTUAL=0
if ((BENCH_LOAD_NAMES > 0)); then
	# genzone.awk makes 2.5 names a host (hostN, _25._tcp.hostN, every second _dmarc.hostN).
	awk -v HOSTS=$((BENCH_LOAD_NAMES * 2 / 5)) -v MXHOSTS=$MXHOSTS -f "$BENCH/genzone.awk" \
		"$ROOT/zones/$ZONE.zone" >"$TMP/load.zone"
	LOAD_NAMES_ACTUAL=$(count_names "$TMP/load.zone")
	for s in $BENCH_SERVERS; do
		[[ $s == danezone-* && $s != danezone-nsec && $s != danezone-nsec3 ]] && continue # per-answer modes load like their chains
		[[ $s == ceiling ]] && continue                                                   # no zone
		LOAD_SERVERS+=" $s"
		load_test "$s"
	done
fi

# ---- report ---------------------------------------------------------------------------------

SERVERS=($BENCH_SERVERS)
MIXES=($BENCH_MIXES)

cell() { # cell SERVER MIX: "qps (lat ms)", or why there is none
	local s=$1 m=$2 st=${STATUS[$1]:-failed}
	if [[ ${QPS[$s,$m]:-} =~ ^[0-9]+$ ]]; then
		echo "${QPS[$s,$m]} (${LAT[$s,$m]})"
	elif [[ $st != ok ]]; then
		echo "$st"
	else
		echo failed
	fi
}
ratio() { # ratio A B MIX [TABLE]: TABLE (QPS or QPC) of A over that of B
	local -n tab=${4:-QPS}
	local a=${tab[$1,$3]:-} b=${tab[$2,$3]:-}
	if [[ $a =~ ^[0-9]+$ && $b =~ ^[0-9]+$ && $b -gt 0 ]]; then
		awk -v a="$a" -v b="$b" 'BEGIN {printf "%.2f", a / b}'
	else
		echo "-"
	fi
}
kb() { [[ ${1:-} =~ ^[0-9]+$ ]] && awk -v k="$1" 'BEGIN {printf "%.1f MiB", k / 1024}' || echo "${1:--}"; }

# Ratio columns: danezone-X/OTHER, labelled short (nsec/dnssec: danezone-nsec over
# coredns-dnssec, ...).
RATIOS=()
short() { case $1 in danezone-*) echo "${1#danezone-}" ;; coredns-dnssec) echo dnssec ;; file-unsigned) echo file ;; *) echo "$1" ;; esac; }
for dz in danezone-nsec danezone-minimal danezone-nsec3 danezone-nsec3-narrow danezone-compact; do
	[[ " $BENCH_SERVERS " == *" $dz "* ]] || continue
	for other in coredns-dnssec file-unsigned knot ceiling; do
		[[ " $BENCH_SERVERS " == *" $other "* ]] && RATIOS+=("$dz/$other")
	done
done
for other in coredns-dnssec file-unsigned knot; do # the others as a share of the ceiling too
	[[ " $BENCH_SERVERS " == *" ceiling "* && " $BENCH_SERVERS " == *" $other "* ]] && RATIOS+=("$other/ceiling")
done

# table FORMAT: prints every table, as plain text (FORMAT=text) or markdown (FORMAT=md).
table() {
	local fmt=$1 s m r row
	emit() { # emit CELLS...: one row
		if [[ $fmt == md ]]; then
			printf '| %s ' "$@"
			echo '|'
		else
			printf '%-17s' "$@"
			echo
		fi
	}
	sep() { # sep N: markdown header separator for N columns
		[[ $fmt == md ]] || return 0
		local i line="|"
		for ((i = 0; i < $1; i++)); do line+=" --- |"; done
		echo "$line"
	}
	title() { if [[ $fmt == md ]]; then printf '\n### %s\n\n' "$1"; else printf '\n== %s\n' "$1"; fi; }

	title "QPS (average latency, ms): dnsperf -D, $BENCH_ROUNDS rounds of -l $ROUND_SECONDS, -q $BENCH_OUTSTANDING -c $BENCH_CLIENTS; server on CPU $SERVER_CPU, dnsperf on CPU $CLIENT_CPU; zone of $NAMES owner names"
	emit mix "${SERVERS[@]}"
	sep $((${#SERVERS[@]} + 1))
	for m in "${MIXES[@]}"; do
		row=("$m")
		for s in "${SERVERS[@]}"; do row+=("$(cell "$s" "$m")"); done
		emit "${row[@]}"
	done
	if ((${#RATIOS[@]} > 0)); then
		title "QPS ratios (nsec, minimal, nsec3, nsec3-narrow, compact: danezone in that denial mode; dnssec: coredns-dnssec; file: file-unsigned; X/ceiling: share of the framework ceiling)"
		row=(mix)
		for r in "${RATIOS[@]}"; do row+=("$(short "${r%%/*}")/$(short "${r##*/}")"); done
		emit "${row[@]}"
		sep $((${#RATIOS[@]} + 1))
		for m in "${MIXES[@]}"; do
			row=("$m")
			for r in "${RATIOS[@]}"; do row+=("$(ratio "${r%%/*}" "${r##*/}" "$m")"); done
			emit "${row[@]}"
		done
	fi
	title "Queries answered per server CPU-second (less sensitive to other load on the machine than QPS)"
	emit mix "${SERVERS[@]}"
	sep $((${#SERVERS[@]} + 1))
	for m in "${MIXES[@]}"; do
		row=("$m")
		for s in "${SERVERS[@]}"; do
			if [[ ${QPC[$s,$m]:-} =~ ^[0-9]+$ ]]; then row+=("${QPC[$s,$m]}"); else row+=("$(cell "$s" "$m")"); fi
		done
		emit "${row[@]}"
	done
	if ((${#RATIOS[@]} > 0)); then
		title "Ratios of queries per server CPU-second"
		row=(mix)
		for r in "${RATIOS[@]}"; do row+=("$(short "${r%%/*}")/$(short "${r##*/}")"); done
		emit "${row[@]}"
		sep $((${#RATIOS[@]} + 1))
		for m in "${MIXES[@]}"; do
			row=("$m")
			for r in "${RATIOS[@]}"; do row+=("$(ratio "${r%%/*}" "${r##*/}" "$m" QPC)"); done
			emit "${row[@]}"
		done
	fi
	title "Server RSS (VmRSS) after all mixes"
	emit server RSS
	sep 2
	for s in "${SERVERS[@]}"; do emit "$s" "$(kb "${RSS[$s]:-${STATUS[$s]:-}}")"; done
	if [[ -n $LOAD_SERVERS ]]; then
		title "Load: zone of $LOAD_NAMES_ACTUAL names, process start to first SOA answer"
		emit server "load time" "RSS then"
		sep 3
		for s in $LOAD_SERVERS; do
			if [[ ${LOADMS[$s]} =~ ^[0-9]+$ ]]; then
				emit "$s" "${LOADMS[$s]} ms" "$(kb "${LOADRSS[$s]}")"
			else
				emit "$s" "${LOADMS[$s]}" "-"
			fi
		done
	fi
	title "Per cell: server CPU during the run (% of one CPU), queries lost, average response size, response codes"
	if [[ $fmt == md ]]; then
		emit server mix "server CPU" lost "response bytes" "response codes"
		sep 6
	else
		printf '%-17s%-10s%-5s%-14s%-6s%s\n' server mix cpu lost bytes "response codes"
	fi
	for s in "${SERVERS[@]}"; do
		for m in "${MIXES[@]}"; do
			[[ -n ${RCODES[$s,$m]:-} ]] || continue
			if [[ $fmt == md ]]; then
				emit "$s" "$m" "${CPU[$s,$m]:--}" "${LOST[$s,$m]}" "${RESP[$s,$m]}" "${RCODES[$s,$m]}"
			else
				printf '%-17s%-10s%-5s%-14s%-6s%s\n' "$s" "$m" "${CPU[$s,$m]:--}" "${LOST[$s,$m]}" "${RESP[$s,$m]}" "${RCODES[$s,$m]}"
			fi
		done
	done
}

printf '\n%s\n' "Load average at start: $LOADAVG_START, at end: $(cut -d' ' -f1-3 /proc/loadavg) (other work on the machine skews the figures)."
table text
if [[ -n $BENCH_OUT ]]; then
	{
		echo "## danelab bench ($(date -u +%Y-%m-%dT%H:%MZ), $(nproc) CPUs, $(uname -r))"
		echo
		echo "Load average at start: $LOADAVG_START, at end: $(cut -d' ' -f1-3 /proc/loadavg)."
		table md
	} >"$BENCH_OUT"
	log "markdown written to $BENCH_OUT"
fi

# ---- zone transfers: bench/xfr.sh, with its own servers (on all CPUs), zone and temp dir ----

if [[ ${BENCH_XFR_NAMES:-100000} != 0 ]]; then
	log "zone transfers: bench/xfr.sh"
	rc=0
	COREDNS=$COREDNS GO=$GO BENCH_OUT=$BENCH_OUT BENCH_KEEP=$BENCH_KEEP "$BENCH/xfr.sh" || rc=$?
	((rc == 0)) || log "bench/xfr.sh failed (exit $rc): see above"
fi
