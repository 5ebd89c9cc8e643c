#!/bin/sh
# Bounded load run of dnstt_exporter's live capture, as root:
#
#   tools/loadgen/run.sh [rate ...]        default rates: 100000
#
# Creates two network namespaces joined by a veth (documentation addresses
# only), runs the exporter in the server namespace on the veth with the
# default ring, sends dnstt-shaped queries from the client namespace at each
# rate for DURATION seconds (default 30), and prints per rate: packets sent
# and received, queries and responses counted, kernel drops, and the
# exporter's CPU seconds (user+sys from /proc/<pid>/stat) per million
# packets. Everything is removed at the end.
# Environment: DURATION (s), CLIENTS (sessions), IFACE (vs, or "all"),
# PROCS (parallel generator processes sharing the rate; default 1),
# BUFFER (-capture.buffer-size; default the exporter's, 4 MiB),
# RESPONSES=1: both directions, as on a real server: the rate is the total
# through the ring, half queries from the client namespace to 192.0.2.1:53,
# half responses from 192.0.2.1:53 in the server namespace back to each
# query generator's port (which takes them without an ICMP error); PROCS
# query generators and PROCS response generators then share the rate.
set -eu

DURATION=${DURATION:-30}
CLIENTS=${CLIENTS:-1000}
IFACE=${IFACE:-vs}
PROCS=${PROCS:-1}
BUFFER=${BUFFER:-}
RESPONSES=${RESPONSES:-0}
RATES=${*:-100000}
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
tag=$$
srv=dnsttload-$tag-srv
cli=dnsttload-$tag-cli
work=$(mktemp -d)
pid=

cleanup() {
	[ -n "$pid" ] && kill -TERM "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true
	ip netns del "$srv" 2>/dev/null || true
	ip netns del "$cli" 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT INT TERM

[ "$(id -u)" = 0 ] || { echo "run.sh: needs root (namespaces, CAP_NET_RAW)" >&2; exit 1; }

(cd "$root" && CGO_ENABLED=0 go build -o "$work/dnstt_exporter" .)
(cd "$here" && CGO_ENABLED=0 go build -o "$work/loadgen" .)

ip netns add "$srv"
ip netns add "$cli"
ip -n "$srv" link set lo up
ip -n "$cli" link set lo up
ip link add vs netns "$srv" type veth peer name vc netns "$cli"
ip -n "$srv" addr add 192.0.2.1/24 dev vs
ip -n "$srv" link set vs up
ip -n "$srv" route add 198.51.100.0/24 dev vs
ip -n "$cli" addr add 198.51.100.10/24 dev vc
ip -n "$cli" link set vc up
ip -n "$cli" route add 192.0.2.0/24 dev vc

ifflag="-capture.interface vs"
[ "$IFACE" = all ] && ifflag=
[ -n "$BUFFER" ] && ifflag="$ifflag -capture.buffer-size $BUFFER"
# shellcheck disable=SC2086 # ifflag is a list of words
ip netns exec "$srv" "$work/dnstt_exporter" -dnstt.domain t.example.com -dnstt.port 53 \
	$ifflag -web.listen-address 127.0.0.1:9713 2>"$work/exporter.log" &
pid=$!

scrape() {
	ip netns exec "$srv" curl -fsS http://127.0.0.1:9713/metrics
}
metric() { # metric NAME: sum of the family's series
	awk -v n="$1" '$1 == n || index($1, n "{") == 1 { s += $NF } END { printf "%.0f\n", s }' "$work/m"
}
cputicks() { # user+sys clock ticks of the exporter
	awk '{ print $14 + $15 }' "/proc/$pid/stat"
}

i=0
until scrape >"$work/m" 2>/dev/null; do
	i=$((i + 1))
	if [ $i -gt 100 ] || ! kill -0 "$pid" 2>/dev/null; then
		echo "run.sh: the exporter did not come up:" >&2
		cat "$work/exporter.log" >&2
		exit 1
	fi
	sleep 0.1
done

hz=$(getconf CLK_TCK)
printf '%-9s %-10s %-10s %-10s %-10s %-8s %-9s %s\n' rate/s sent received queries responses dropped cpu_s cpu_s/Mpkt
for rate in $RATES; do
	scrape >"$work/m"
	r0=$(metric dnstt_exporter_packets_received_total)
	d0=$(metric dnstt_exporter_packets_dropped_total)
	q0=$(metric dnstt_queries_total)
	i0=$(metric dnstt_exporter_packets_ignored_total)
	u0=$(metric dnstt_exporter_packets_duplicate_total)
	c0=$(cputicks)
	n=0
	gens=
	share=$((rate / PROCS))
	[ "$RESPONSES" = 1 ] && share=$((rate / PROCS / 2))
	while [ $n -lt "$PROCS" ]; do
		port=$((5300 + n))
		ip netns exec "$cli" "$work/loadgen" -target 192.0.2.1:53 -source 198.51.100.10:$port \
			-rate $share -duration "${DURATION}s" -clients "$CLIENTS" >"$work/gen.q$n" &
		gens="$gens $!"
		if [ "$RESPONSES" = 1 ]; then
			ip netns exec "$srv" "$work/loadgen" -responses -source 192.0.2.1:53 -target 198.51.100.10:$port \
				-rate $share -duration "${DURATION}s" -clients "$CLIENTS" >"$work/gen.r$n" &
			gens="$gens $!"
		fi
		n=$((n + 1))
	done
	# shellcheck disable=SC2086 # a list of pids
	wait $gens
	sleep 1 # the last blocks retire (tp_retire_blk_tov) and drops are read (1 s)
	c1=$(cputicks)
	scrape >"$work/m"
	r1=$(metric dnstt_exporter_packets_received_total)
	d1=$(metric dnstt_exporter_packets_dropped_total)
	q1=$(metric dnstt_queries_total)
	i1=$(metric dnstt_exporter_packets_ignored_total)
	u1=$(metric dnstt_exporter_packets_duplicate_total)
	sent=$(cat "$work"/gen.* | awk '{ s += $3 } END { print s }')
	rm -f "$work"/gen.*
	# Responses counted: received, less ignored, duplicates and queries.
	awk -v rate="$rate" -v sent="$sent" -v r=$((r1 - r0)) -v q=$((q1 - q0)) -v d=$((d1 - d0)) \
		-v resp=$((r1 - r0 - (i1 - i0) - (u1 - u0) - (q1 - q0))) -v c=$((c1 - c0)) -v hz="$hz" 'BEGIN {
		cpu = c / hz
		printf "%-9d %-10d %-10d %-10d %-10d %-8d %-9.2f %.3f\n", rate, sent, r, q, resp, d, cpu, (r > 0 ? cpu / (r / 1e6) : 0)
	}'
done
