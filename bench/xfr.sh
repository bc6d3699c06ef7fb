#!/usr/bin/env bash
# bench/xfr.sh: zone transfers from a signing primary, danezone against Knot DNS. Run by
# `make bench` (bench/run.sh calls it at its end) or alone: bench/xfr.sh.
#
# For a zone of BENCH_XFR_NAMES owner names (bench/genzone.awk, as run.sh's load test), each
# server, started fresh with pre-generated ECDSAP256SHA256 keys (a KSK and a ZSK, so key
# generation is not timed) and a TSIG key (hmac-sha256, xfr.bench.) that transfers require:
#   danezone  bin/coredns: tsig { require AXFR IXFR } + transfer { to * 127.0.0.1:NPORT } +
#             danezone ZONE example.test { keys DIR  serial unixtime }
#   knot      knotd: automatic signing (dnssec-signing, policy ecdsap256sha256, nsec3 off,
#             KSK+ZSK), zonefile-sync -1, zonefile-load difference, journal in the temp dir,
#             serial-policy unixtime, acl: transfer with the TSIG key only, notify: NPORT
# where NPORT is a `bench/probe notify` that acknowledges NOTIFY and notes when each came,
# is measured for:
#   ready     wall time from process start to the END of the first complete, TSIG-verified
#             AXFR that holds RRSIG, NSEC and DNSKEY records (SOA polled first, then AXFR
#             tried until one succeeds): it includes that one transfer. Both servers sign the
#             whole zone before they serve it for transfer (danezone answers queries before,
#             and holds a transfer request until then; the first SOA answer is logged).
#   AXFR      kdig's own transfer time ("in N ms": query sent to last message in, output to a
#             file included) and the server's CPU time (/proc/PID/stat) for one AXFR, medians
#             of BENCH_XFR_RUNS, then the bytes received (TSIG records included) and the
#             records (kdig's count: both SOAs, no TSIG). kdig parses and verifies every
#             message: a server faster than kdig (Knot) is measured at kdig's speed, so the
#             server CPU column is the one that compares the servers.
#   peak RSS  VmHWM of the server process after the AXFRs
#   IXFR      one TLSA record's data changed (and the SOA serial in the file bumped) in the
#             server's copy of the zone file, written to a temporary file and renamed into
#             place (knot: then `knotc zone-reload`); "change" is the time from the rename to
#             the new serial served (SOA polled over TCP every 20 ms), "NOTIFY" the time from
#             the rename to the first NOTIFY that came after it; then IXFR=OLD_SERIAL
#             BENCH_XFR_RUNS times: kdig's time for the first (what a secondary that saw the
#             new serial gets: it includes any wait for the new version to be transferable)
#             and the median of the others, bytes and records. A reply in AXFR form (the
#             whole zone) is flagged.
# The zone is checked to be signed (RRSIG, NSEC and DNSKEY in the AXFR; with ldns-verify-zone
# installed and BENCH_XFR_VERIFY=1, every signature and the NSEC chain are verified, after the
# server has stopped), and an AXFR without TSIG to be refused. A server that fails any of it is
# reported loudly, and the script exits 2 after printing the tables.
#
# The servers are NOT pinned to a CPU, unlike in run.sh: signing a whole zone is parallel work
# (danezone over GOMAXPROCS, Knot over signing-threads, set to the number of CPUs here), so
# each server gets every core. kdig runs on the same machine and competes for them.
#
# Prints a table to stdout; with BENCH_OUT set, appends it there as markdown. A server that
# does not start, sign or transfer is reported as "failed" and the run goes on. 127.0.0.1 only.
#
# Environment (defaults):
#   BENCH_XFR_NAMES=100000   owner names in the zone (0: skip the benchmark)
#   BENCH_XFR_RUNS=3         AXFRs and IXFRs measured per server (median reported)
#   BENCH_XFR_SERVERS="danezone knot"
#   BENCH_XFR_TIMEOUT=300    seconds to wait for a server to be ready (signing included)
#   BENCH_XFR_KEYS=ksk-zsk   or csk: one combined key (danezone: a lone key; knot:
#                            single-type-signing)
#   BENCH_XFR_VERIFY=1       verify the first AXFR with ldns-verify-zone, if installed
#   COREDNS=bin/coredns  GO=go  BENCH_OUT=  BENCH_KEEP=0 (keep the temp dir)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH=$ROOT/bench
COREDNS=${COREDNS:-$ROOT/bin/coredns}
GO=${GO:-go}
BENCH_XFR_NAMES=${BENCH_XFR_NAMES:-100000}
BENCH_XFR_RUNS=${BENCH_XFR_RUNS:-3}
BENCH_XFR_SERVERS=${BENCH_XFR_SERVERS:-danezone knot}
BENCH_XFR_TIMEOUT=${BENCH_XFR_TIMEOUT:-300}
BENCH_XFR_KEYS=${BENCH_XFR_KEYS:-ksk-zsk}
BENCH_XFR_VERIFY=${BENCH_XFR_VERIFY:-1}
BENCH_OUT=${BENCH_OUT:-}
BENCH_KEEP=${BENCH_KEEP:-0}
ZONE=example.test
MXHOSTS=20
ADDR=127.0.0.1
TSIG_NAME=xfr.bench.
CHANGE_TIMEOUT=60 # seconds from the rename to the new serial
NOTIFY_TIMEOUT=10 # seconds from the new serial to the NOTIFY
STOP_TIMEOUT=10   # seconds from SIGTERM to SIGKILL
NCPU=$(nproc)

log() { printf '%s %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

[[ $BENCH_XFR_NAMES =~ ^[0-9]+$ ]] || die "BENCH_XFR_NAMES=$BENCH_XFR_NAMES is not a number"
[[ $BENCH_XFR_RUNS =~ ^[1-9][0-9]*$ ]] || die "BENCH_XFR_RUNS=$BENCH_XFR_RUNS is not a positive number"
[[ $BENCH_XFR_TIMEOUT =~ ^[1-9][0-9]*$ ]] || die "BENCH_XFR_TIMEOUT=$BENCH_XFR_TIMEOUT is not a positive number"
[[ $BENCH_XFR_KEYS == ksk-zsk || $BENCH_XFR_KEYS == csk ]] || die "BENCH_XFR_KEYS=$BENCH_XFR_KEYS: ksk-zsk or csk"
if ((BENCH_XFR_NAMES == 0)); then
	log "xfr: BENCH_XFR_NAMES=0, skipped"
	exit 0
fi
for tool in kdig awk ss timeout "$GO"; do
	command -v "$tool" >/dev/null || die "$tool not found"
done

TMP=$(mktemp -d /tmp/danelab-xfr.XXXXXX)
SERVER_PID=
NOTIFY_PID=
cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	stop_server
	if [[ $BENCH_KEEP == 1 ]]; then log "kept $TMP"; else rm -rf "$TMP"; fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# stop_server: SIGTERM to the server and the NOTIFY probe, SIGKILL to what is still there
# after STOP_TIMEOUT.
stop_server() {
	local pid i
	for pid in $SERVER_PID $NOTIFY_PID; do
		kill "$pid" 2>/dev/null || true
		for ((i = 0; i < STOP_TIMEOUT * 10; i++)); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.1
		done
		kill -9 "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
	done
	SERVER_PID=
	NOTIFY_PID=
}

# free_port prints a random port in 20000-32767 (below Linux's ephemeral ports) that nothing
# listens on (UDP or TCP). Another program can still take it before the server binds it: a
# server that fails to bind is started again on another port.
free_port() {
	local p i
	for i in $(seq 1 100); do
		p=$((20000 + RANDOM % 12768))
		if [[ -z $(ss -Hlnu "sport = :$p") && -z $(ss -Hlnt "sport = :$p") ]]; then
			echo "$p"
			return 0
		fi
	done
	die "no free port found"
}

now_ms() { local t=${EPOCHREALTIME/[.,]/}; echo $((t / 1000)); }

# count_names ZONEFILE: as in run.sh.
count_names() { awk '/^[A-Za-z0-9_*]/ {n[$1]} END {print length(n) + 1}' "$1"; }

# median N...: the median of numbers (the mean of the middle two for an even count).
median() {
	printf '%s\n' "$@" | sort -g | awk '{v[NR] = $1} END {
		if (NR == 0) exit 1
		if (NR % 2) print v[(NR + 1) / 2]; else printf "%g\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

# ---- zone, keys ---------------------------------------------------------------------------

log "xfr: building bench/keygen and bench/probe"
(cd "$ROOT" && "$GO" build -o "$TMP/keygen" ./bench/keygen && "$GO" build -o "$TMP/probe" ./bench/probe)

# genzone.awk makes 2.5 names a host (hostN, _25._tcp.hostN, every second _dmarc.hostN).
awk -v HOSTS=$((BENCH_XFR_NAMES * 2 / 5)) -v MXHOSTS=$MXHOSTS -f "$BENCH/genzone.awk" \
	"$ROOT/zones/$ZONE.zone" >"$TMP/xfr.zone"
# The IXFR test changes the first TLSA record: make sure there is one.
if ! awk '$2 == "IN" && $3 == "TLSA" {f = 1; exit} END {exit !f}' "$TMP/xfr.zone"; then
	printf '_25._tcp.xfr-bench\tIN TLSA\t3 1 1 %064x\n' 1 >>"$TMP/xfr.zone"
fi
grep -Eq '^[[:space:]]+[0-9]+[[:space:]]*;[[:space:]]*serial' "$TMP/xfr.zone" ||
	die "no '<serial> ; serial' line in the zone: the IXFR test cannot bump the serial"
NAMES=$(count_names "$TMP/xfr.zone")
TSIG_SECRET=$(head -c 32 /dev/urandom | base64)
TSIG=hmac-sha256:$TSIG_NAME:$TSIG_SECRET

# change_zone FILE: writes FILE with the SOA serial + 1 and the first TLSA record's data
# replaced, to FILE.new, then renames it into place (as an editor or `sed -i` does).
change_zone() {
	local f=$1 digest
	digest=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
	awk -v D="$digest" '
		!s && /^[ \t]+[0-9]+[ \t]*;[ \t]*serial/ { match($0, /[0-9]+/); s = 1
			$0 = substr($0, 1, RSTART - 1) (substr($0, RSTART, RLENGTH) + 1) substr($0, RSTART + RLENGTH) }
		!t && $2 == "IN" && $3 == "TLSA" { $0 = $1 "\tIN TLSA\t" $4 " " $5 " " $6 " " D; t = 1 }
		{ print }
		END { if (!s || !t) exit 1 }' "$f" >"$f.new" || return 1
	# A rename in the same clock tick as the last write looks like an in-place write to
	# danezone (loaded only after three polls): leave a tick between them, as any editor does.
	sleep 0.02
	mv "$f.new" "$f"
}

# ---- servers ------------------------------------------------------------------------------

available() {
	case $1 in
	danezone) [[ -x $COREDNS ]] ;;
	knot) command -v knotd >/dev/null && command -v knotc >/dev/null && command -v keymgr >/dev/null ;;
	*) false ;;
	esac
}

# setup_server NAME PORT NPORT DIR: writes DIR's config, zone file copy and keys for server
# NAME, which sends NOTIFY to NPORT, and prints the command line that runs it in the foreground.
setup_server() {
	local name=$1 port=$2 nport=$3 dir=$4 ksk
	mkdir -p "$dir"
	cp "$TMP/xfr.zone" "$dir/$ZONE.zone"
	case $name in
	danezone)
		mkdir -p "$dir/keys"
		ksk=(-ksk)
		if [[ $BENCH_XFR_KEYS == ksk-zsk ]]; then
			"$TMP/keygen" -zone "$ZONE" -dir "$dir/keys" >/dev/null || return 1
		fi
		"$TMP/keygen" -zone "$ZONE" -dir "$dir/keys" "${ksk[@]}" >/dev/null || return 1
		cat >"$dir/Corefile" <<-EOF
			.:$port {
			    bind $ADDR
			    tsig {
			        secret $TSIG_NAME $TSIG_SECRET
			        require AXFR IXFR
			    }
			    transfer {
			        to * $ADDR:$nport
			    }
			    danezone $dir/$ZONE.zone $ZONE {
			        keys $dir/keys
			        serial unixtime
			    }
			}
		EOF
		echo "$COREDNS -conf $dir/Corefile"
		;;
	knot)
		# Everything under $dir; knotd runs as root (server.user unset). Signing threads:
		# policy.signing-threads (default 1), not background-workers.
		local sts=off
		[[ $BENCH_XFR_KEYS == csk ]] && sts=on
		mkdir -p "$dir/run" "$dir/db"
		cat >"$dir/knot.conf" <<-EOF
			server:
			    rundir: "$dir/run"
			    listen: $ADDR@$port
			    background-workers: $NCPU
			log:
			  - target: stderr
			    any: info
			database:
			    storage: "$dir/db"
			key:
			  - id: $TSIG_NAME
			    algorithm: hmac-sha256
			    secret: $TSIG_SECRET
			acl:
			  - id: xfr
			    key: $TSIG_NAME
			    action: transfer
			remote:
			  - id: notify-probe
			    address: $ADDR@$nport
			policy:
			  - id: bench
			    algorithm: ecdsap256sha256
			    single-type-signing: $sts
			    nsec3: off
			    signing-threads: $NCPU
			    cds-cdnskey-publish: always
			template:
			  - id: default
			    storage: "$dir"
			    zonefile-sync: -1
			    zonefile-load: difference
			    journal-content: changes
			    journal-max-usage: 2G
			    serial-policy: unixtime
			    adjust-threads: $NCPU
			    dnssec-signing: on
			    dnssec-policy: bench
			    acl: xfr
			    notify: notify-probe
			zone:
			  - domain: $ZONE
			    file: "$dir/$ZONE.zone"
		EOF
		# The keys, made before the start like danezone's (keymgr writes the KASP db).
		if [[ $BENCH_XFR_KEYS == ksk-zsk ]]; then
			keymgr -c "$dir/knot.conf" "$ZONE." generate algorithm=ecdsap256sha256 ksk=yes zsk=no >/dev/null &&
				keymgr -c "$dir/knot.conf" "$ZONE." generate algorithm=ecdsap256sha256 ksk=no zsk=no >/dev/null
		else
			keymgr -c "$dir/knot.conf" "$ZONE." generate algorithm=ecdsap256sha256 ksk=yes zsk=yes >/dev/null
		fi || return 1
		echo "knotd -c $dir/knot.conf"
		;;
	esac
}

# serial: the SOA serial the server answers now (empty if none). Over TCP: a refused
# connection fails at once, where a UDP query to a port not yet bound waits out +timeout.
serial() {
	timeout 5 kdig -p "$PORT" "@$ADDR" +tcp +timeout=1 +retry=0 +short "$ZONE" SOA 2>/dev/null |
		awk 'NF == 7 && $3 ~ /^[0-9]+$/ {print $3; exit}'
}

# xfr_stat OUT: "ms bytes messages records" from kdig's summary of a transfer.
xfr_stat() {
	awk '/^;; Received [0-9]+ B/ {b = $3; m = $5; r = $7; sub(/^\(/, "", m)}
		/^;; From .* in [0-9.]+ ms/ {t = $(NF - 1)}
		END {if (b == "" || t == "") exit 1; print t, b, m, r}' "$1"
}

# xfr TYPE OUT [TIMEOUT]: one transfer with the TSIG key into OUT (stderr in OUT.err), given
# up after TIMEOUT seconds (default 120: also how long kdig waits for a message, as danezone
# holds a transfer request until the zone is signed for transfer); true if it completed
# without error and TSIG-verified (kdig checks each message's TSIG). XFR_END: when kdig ended
# (ms), before the checks, which take a while for a large zone.
xfr() {
	local type=$1 out=$2 limit=${3:-120} rc=0
	timeout "$limit" kdig -p "$PORT" "@$ADDR" +timeout="$limit" +retry=0 -y "$TSIG" "$ZONE" "$type" \
		>"$out" 2>"$out.err" || rc=$?
	XFR_END=$(now_ms)
	((rc == 0)) || return 1
	! grep -q -E '^;; (ERROR|WARNING)' "$out" "$out.err" && xfr_stat "$out" >/dev/null &&
		grep -q 'TSIG' "$out"
}

# types OUT: "TYPE COUNT" per record type in a kdig transfer output.
types() { awk '!/^;/ && NF >= 4 {n[$4]++} END {for (t in n) print t, n[t]}' "$1"; }
typecount() { types "$1" | awk -v T="$2" '$1 == T {print $2; f = 1} END {if (!f) print 0}'; }
is_signed() { types "$1" | awk '$2 > 0 {n[$1]} END {exit !("RRSIG" in n && "NSEC" in n && "DNSKEY" in n)}'; }

CLK_TCK=$(getconf CLK_TCK)
# cputicks PID: user+system CPU time of the whole process (all threads), in clock ticks.
cputicks() { sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null | awk '{print $12 + $13}'; }

declare -A NOTIFYMS SOAMS STATUS READY AXFRMS AXFRCPU IXFRREP AXFRB AXFRMSG RECS HWM CHANGE IXFRMS IXFRB IXFRRECS IXFRFORM NOTE
BAD=0
XFR_END=0

# fail NAME MESSAGE: marks NAME failed, and shows the tail of its log.
fail() {
	STATUS[$1]=failed
	NOTE[$1]=$2
	log "$1: FAILED: $2"
	[[ -f $TMP/$1/log ]] && sed 's/^/    | /' "$TMP/$1/log" | tail -15 >&2
	stop_server
}

# wait_ready NAME T0: polls the SOA, then AXFRs, until a complete signed AXFR; sets READY.
# Returns 2 if the server exited because its port was taken, 1 on other failures (reported).
wait_ready() {
	local name=$1 t0=$2 dir=$TMP/$1 deadline why="no SOA answer" now
	deadline=$((t0 + BENCH_XFR_TIMEOUT * 1000))
	while :; do
		now=$(now_ms)
		if ! kill -0 "$SERVER_PID" 2>/dev/null; then
			if grep -q 'address already in use' "$dir/log"; then
				stop_server
				return 2
			fi
			fail "$name" "the server exited while starting"
			return 1
		fi
		if ((now > deadline)); then
			fail "$name" "not ready after ${BENCH_XFR_TIMEOUT}s: $why"
			return 1
		fi
		if [[ -n $(serial) ]]; then
			[[ -n ${SOAMS[$name]:-} ]] || SOAMS[$name]=$(($(now_ms) - t0))
			if xfr AXFR "$dir/axfr.0" "$(((deadline - now) / 1000 + 1))"; then
				if is_signed "$dir/axfr.0"; then
					READY[$name]=$((XFR_END - t0))
					return 0
				fi
				why="the AXFR is not signed ($(types "$dir/axfr.0" | sort | tr '\n' ' '))"
				# danezone signs the whole zone before it serves a transfer: an unsigned
				# one is a bug, not a wait. Knot is given the benefit of the doubt.
				if [[ $name == danezone ]]; then
					fail "$name" "$why"
					BAD=1
					return 1
				fi
			else
				why="AXFR failed: $(cat "$dir/axfr.0" "$dir/axfr.0.err" 2>/dev/null | grep -E '^;; (ERROR|WARNING)' | tail -1)"
			fi
		fi
		sleep 0.1
	done
}

bench_server() {
	local name=$1 dir=$TMP/$1 cmd t0 i st c0 c1 try rc=2 ms=() cpu=() ixms=() old new t1 fresh n
	if ! available "$name"; then
		STATUS[$name]="n/a"
		NOTE[$name]="not installed"
		log "$name: not installed, skipped"
		return
	fi
	for try in 1 2 3; do
		rm -rf "$dir"
		mkdir -p "$dir"
		PORT=$(free_port)
		NPORT=$(free_port)
		[[ $NPORT != "$PORT" ]] || continue
		# The NOTIFY target, acknowledging every NOTIFY (no retries to disturb the figures)
		# and noting when each arrived.
		"$TMP/probe" notify -addr "$ADDR:$NPORT" -zone "$ZONE" >"$dir/notify" 2>"$dir/notify.err" &
		NOTIFY_PID=$!
		for ((i = 0; i < 50; i++)); do
			[[ -z $(ss -Hlnt "sport = :$NPORT") ]] || break
			kill -0 "$NOTIFY_PID" 2>/dev/null || break
			sleep 0.05
		done
		if ! kill -0 "$NOTIFY_PID" 2>/dev/null || [[ -z $(ss -Hlnt "sport = :$NPORT") ]]; then
			log "$name: the NOTIFY probe could not listen on $NPORT (try $try of 3): $(cat "$dir/notify.err")"
			stop_server
			rc=2
			continue
		fi
		if ! cmd=$(setup_server "$name" "$PORT" "$NPORT" "$dir"); then
			fail "$name" "setup (keys) failed"
			return
		fi
		log "$name: starting on port $PORT (NOTIFY to $NPORT), waiting for a signed AXFR (up to ${BENCH_XFR_TIMEOUT}s)"
		t0=$(now_ms)
		# shellcheck disable=SC2086 # cmd is a command line made above, without spaces in words
		$cmd >"$dir/log" 2>&1 &
		SERVER_PID=$!
		rc=0
		wait_ready "$name" "$t0" || rc=$?
		((rc == 2)) || break
		log "$name: port $PORT taken by another program meanwhile (try $try of 3), starting again"
	done
	if ((rc == 2)); then
		fail "$name" "no port could be bound (3 tries)"
		return
	fi
	((rc == 0)) || return 0
	STATUS[$name]=ok
	RECS[$name]=$(xfr_stat "$dir/axfr.0" | awk '{print $4}')
	log "$name: ready in ${READY[$name]} ms (first SOA answer after ${SOAMS[$name]} ms); AXFR: ${RECS[$name]} records, $(typecount "$dir/axfr.0" RRSIG) RRSIG, $(typecount "$dir/axfr.0" NSEC) NSEC"

	# Transfers without the key must be refused.
	if timeout 120 kdig -p "$PORT" "@$ADDR" +timeout=10 +retry=0 "$ZONE" AXFR >"$dir/axfr.nokey" 2>&1 &&
		xfr_stat "$dir/axfr.nokey" >/dev/null; then
		log "$name: ERROR: an AXFR without TSIG was answered"
		NOTE[$name]+="AXFR without TSIG answered; "
		BAD=1
	fi

	for ((i = 1; i <= BENCH_XFR_RUNS; i++)); do
		c0=$(cputicks "$SERVER_PID")
		if ! xfr AXFR "$dir/axfr.$i"; then
			fail "$name" "AXFR $i failed: $(grep -h -E '^;; (ERROR|WARNING)' "$dir/axfr.$i" "$dir/axfr.$i.err" | tail -1)"
			return
		fi
		read -r st "AXFRB[$name]" "AXFRMSG[$name]" _ < <(xfr_stat "$dir/axfr.$i")
		ms+=("$st")
		c1=$(cputicks "$SERVER_PID")
		cpu+=("$(((c1 - c0) * 1000 / CLK_TCK))")
		rm -f "$dir/axfr.$i" # 100 MB or so each; axfr.0 is kept for the checks
	done
	AXFRMS[$name]=$(median "${ms[@]}")
	AXFRCPU[$name]=$(median "${cpu[@]}")
	HWM[$name]=$(awk '/^VmHWM:/ {print $2}' "/proc/$SERVER_PID/status" 2>/dev/null || true)
	log "$name: AXFR ${AXFRMS[$name]} ms (runs: ${ms[*]}; server CPU ms: ${cpu[*]}), ${AXFRB[$name]} B in ${AXFRMSG[$name]} messages; peak RSS ${HWM[$name]} kB"

	# IXFR after one TLSA change.
	old=$(serial)
	if [[ -z $old ]]; then
		fail "$name" "no SOA answer before the change"
		return
	fi
	if ! change_zone "$dir/$ZONE.zone"; then
		fail "$name" "could not edit the zone file"
		return
	fi
	t1=$(now_ms)
	if [[ $name == knot ]] && ! knotc -s "$dir/run/knot.sock" -t 30 zone-reload "$ZONE." >"$dir/knotc.out" 2>&1; then
		fail "$name" "knotc zone-reload: $(cat "$dir/knotc.out")"
		return
	fi
	new=$old
	while [[ $new == "$old" || -z $new ]]; do
		if (($(now_ms) - t1 > CHANGE_TIMEOUT * 1000)) || ! kill -0 "$SERVER_PID" 2>/dev/null; then
			fail "$name" "serial still $old ${CHANGE_TIMEOUT}s after the change (or the server died)"
			return
		fi
		sleep 0.02
		new=$(serial)
	done
	CHANGE[$name]=$(($(now_ms) - t1))
	for ((i = 1; i <= BENCH_XFR_RUNS; i++)); do
		if ! xfr "IXFR=$old" "$dir/ixfr.$i"; then
			IXFRMS[$name]=failed
			log "$name: IXFR=$old failed: $(grep -h -E '^;; (ERROR|WARNING)' "$dir/ixfr.$i" "$dir/ixfr.$i.err" | tail -1)"
			break
		fi
		read -r st "IXFRB[$name]" _ "IXFRRECS[$name]" < <(xfr_stat "$dir/ixfr.$i")
		ixms+=("$st")
	done
	if [[ ${IXFRMS[$name]:-} != failed ]]; then
		# The first IXFR is the one a secondary sends when it sees the new serial: it pays
		# for whatever the server still does to make the new version transferable. The
		# repeats show the cost of the transfer itself.
		IXFRMS[$name]=${ixms[0]}
		((${#ixms[@]} > 1)) && IXFRREP[$name]=$(median "${ixms[@]:1}")
		# RFC 1995 §4: an incremental reply starts SOA(new), SOA(old); otherwise the server
		# sent the whole zone (AXFR form).
		fresh=$(awk '!/^;/ && NF >= 4 {n++; if (n == 1) a = $4 " " $7; if (n == 2) {print a, $4, $7; exit}}' "$dir/ixfr.1")
		if [[ $fresh == "SOA $new SOA $old" ]]; then
			IXFRFORM[$name]=incremental
		else
			IXFRFORM[$name]="AXFR form"
			NOTE[$name]+="IXFR answered in AXFR form; "
		fi
		log "$name: serial $old -> $new ${CHANGE[$name]} ms after the change; IXFR ${IXFRMS[$name]} ms first, ${IXFRREP[$name]:--} ms repeated (runs: ${ixms[*]}), ${IXFRB[$name]} B, ${IXFRRECS[$name]} records, ${IXFRFORM[$name]}"
	fi
	# The first NOTIFY after the change (the probe noted its arrival time): when a secondary
	# that waits for NOTIFY would ask for the IXFR.
	for ((i = 0; i < NOTIFY_TIMEOUT * 10; i++)); do
		n=$(awk -v T="$t1" -F'[= ]' '$2 >= T {print $2 - T; exit}' "$dir/notify")
		[[ -z $n ]] || break
		sleep 0.1
	done
	if [[ -n $n ]]; then
		NOTIFYMS[$name]=$n
		log "$name: NOTIFY $n ms after the change"
	else
		NOTIFYMS[$name]=none
		log "$name: no NOTIFY within ${NOTIFY_TIMEOUT}s of the change"
	fi
	stop_server

	if [[ $BENCH_XFR_VERIFY == 1 ]] && command -v ldns-verify-zone >/dev/null; then
		log "$name: verifying the AXFR with ldns-verify-zone"
		awk '/^;/ || NF == 0 || $4 == "TSIG" {next} $4 == "SOA" && soa++ {next} {print}' \
			"$dir/axfr.0" >"$dir/axfr.zone"
		if ldns-verify-zone "$dir/axfr.zone" >"$dir/verify.out" 2>&1; then
			NOTE[$name]+="verified; "
		else
			log "$name: ERROR: the AXFR does not verify:"
			sed 's/^/    | /' "$dir/verify.out" | tail -10 >&2
			NOTE[$name]+="AXFR DOES NOT VERIFY; "
			BAD=1
		fi
		rm -f "$dir/axfr.zone"
	fi
}

LOADAVG_START=$(cut -d' ' -f1-3 /proc/loadavg)
log "xfr: zone of $NAMES names, $BENCH_XFR_RUNS runs, keys $BENCH_XFR_KEYS, $NCPU CPUs, load average $LOADAVG_START"
for s in $BENCH_XFR_SERVERS; do
	bench_server "$s"
done

# ---- report -------------------------------------------------------------------------------

SERVERS=()
read -r -a SERVERS <<<"$BENCH_XFR_SERVERS"
num() { [[ ${1:-} =~ ^[0-9]+([.][0-9]+)?$ ]]; }
fmt() { # fmt VALUE DIVISOR DECIMALS
	if num "$1"; then awk -v v="$1" -v d="$2" -v p="$3" 'BEGIN {printf "%.*f", p, v / d}'; else echo "${1:--}"; fi
}
ratio() { # ratio A B: A/B, or "-"
	if num "$1" && num "$2" && [[ $2 != 0 ]]; then awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a / b}'; else echo -; fi
}

notes() { local n=${1%; }; echo "${n:--}"; }

table() {
	local md=$1 s st
	emit() {
		if [[ $md == md ]]; then
			printf '| %s ' "$@"
			echo '|'
		else
			printf '%-10s%-8s%-9s%-8s%-12s%-10s%-9s%-14s%-10s%-10s%-9s%-13s%-8s%-10s%s\n' "$@"
		fi
	}
	if [[ $md == md ]]; then
		printf '\n### Zone transfers: %s names, signing primary, TSIG; median of %s runs; servers on all %s CPUs\n\n' \
			"$NAMES" "$BENCH_XFR_RUNS" "$NCPU"
	else
		printf '\n== Zone transfers: %s names, signing primary, TSIG; median of %s runs; servers on all %s CPUs\n' \
			"$NAMES" "$BENCH_XFR_RUNS" "$NCPU"
	fi
	emit server names "ready s" "AXFR s" "AXFR CPU s" "AXFR MiB" records "peak RSS MiB" "change s" "NOTIFY s" "IXFR ms" "IXFR rep ms" "IXFR B" "IXFR RRs" notes
	[[ $md == md ]] && echo '| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |'
	for s in "${SERVERS[@]}"; do
		st=${STATUS[$s]:-failed}
		if [[ $st != ok ]]; then
			emit "$s" "$NAMES" "$st" - - - - - - - - - - - "$(notes "${NOTE[$s]:-}")"
			continue
		fi
		emit "$s" "$NAMES" "$(fmt "${READY[$s]}" 1000 2)" "$(fmt "${AXFRMS[$s]}" 1000 2)" \
			"$(fmt "${AXFRCPU[$s]:-}" 1000 2)" "$(fmt "${AXFRB[$s]}" 1048576 1)" "${RECS[$s]}" \
			"$(fmt "${HWM[$s]:-}" 1024 0)" "$(fmt "${CHANGE[$s]:-}" 1000 2)" \
			"$(fmt "${NOTIFYMS[$s]:-}" 1000 2)" "$(fmt "${IXFRMS[$s]:-}" 1 1)" \
			"$(fmt "${IXFRREP[$s]:-}" 1 1)" "${IXFRB[$s]:--}" \
			"${IXFRRECS[$s]:--}" "$(notes "${IXFRFORM[$s]:+${IXFRFORM[$s]}; }${NOTE[$s]:-}")"
	done
	if [[ " ${SERVERS[*]} " == *" danezone "* && " ${SERVERS[*]} " == *" knot "* ]]; then
		local r1 r2 r3 r4
		r1=$(ratio "${READY[danezone]:-}" "${READY[knot]:-}")
		r2=$(ratio "${AXFRMS[danezone]:-}" "${AXFRMS[knot]:-}")
		r3=$(ratio "${AXFRCPU[danezone]:-}" "${AXFRCPU[knot]:-}")
		r4=$(ratio "${HWM[danezone]:-}" "${HWM[knot]:-}")
		if [[ $md == md ]]; then
			printf '\n| danezone/knot | ready | AXFR time | AXFR server CPU | peak RSS |\n| --- | --- | --- | --- | --- |\n'
			printf '| ratio | %s | %s | %s | %s |\n' "$r1" "$r2" "$r3" "$r4"
		else
			printf '\n%-16s%-8s%-11s%-17s%s\n' "danezone/knot" ready "AXFR time" "AXFR server CPU" "peak RSS"
			printf '%-16s%-8s%-11s%-17s%s\n' ratio "$r1" "$r2" "$r3" "$r4"
		fi
	fi
	if [[ $md == md ]]; then echo; fi
	echo "ready: process start to the end of the first signed AXFR (one transfer included). AXFR s: kdig's time, which is kdig's own CPU time when the server is faster (~0.8 s for 560k records here); AXFR CPU s: the server's CPU time for one AXFR. change: zone file renamed into place to new serial served; NOTIFY: to the first NOTIFY received. IXFR ms: the first IXFR from the old serial, asked as soon as the new serial is served; rep: the median of the later ones. Bytes with TSIG, records without."
}

printf '\n%s\n' "Zone transfers: load average at start $LOADAVG_START, at end $(cut -d' ' -f1-3 /proc/loadavg)."
table text
if [[ -n $BENCH_OUT ]]; then
	table md >>"$BENCH_OUT"
	log "xfr: markdown appended to $BENCH_OUT"
fi
if ((BAD)); then
	log "xfr: ERROR: a server served an unsigned or unverifiable zone, or a transfer without TSIG (see above)"
	exit 2
fi
