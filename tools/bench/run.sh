#!/bin/sh
# run.sh runs dnstt_exporter's decoder benchmarks and the library
# comparison benchmarks on the same packets, and prints them side by side
# with the speed-up of our decoder over each library.
#
# Usage: tools/bench/run.sh [benchtime]   (default 1s; e.g. 2s or 100000x)
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
benchtime=${1:-1s}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

(cd "$root" && go test -run='^$' -bench='^BenchmarkDecode' -benchmem -benchtime="$benchtime" .) >"$tmp/ours"
(cd "$here" && go test -run='^$' -bench='^BenchmarkCompare$' -benchmem -benchtime="$benchtime" .) >"$tmp/libs"

awk '
FNR == 1 { file++ }
/^Benchmark/ {
	name = $1; sub(/-[0-9]+$/, "", name)
	ns = ""; allocs = ""
	for (i = 2; i <= NF; i++) {
		if ($(i+1) == "ns/op") ns = $i
		if ($(i+1) == "allocs/op") allocs = $i
	}
	if (file == 1) {
		sub(/^BenchmarkDecode/, "", name)
		ours[name] = ns; oursAllocs[name] = allocs
		order[++n] = name
	} else {
		sub(/^BenchmarkCompare\//, "", name)
		split(name, part, "/")
		lib[part[1], ++m[part[1]]] = part[2]
		libNs[part[1], part[2]] = ns; libAllocs[part[1], part[2]] = allocs
	}
}
END {
	printf "%-12s %-30s %12s %10s %9s\n", "packet", "decoder", "ns/op", "allocs/op", "speed-up"
	for (k = 1; k <= n; k++) {
		p = order[k]
		printf "%-12s %-30s %12s %10s %9s\n", p, "dnstt_exporter", ours[p], oursAllocs[p], "1.0x"
		for (j = 1; j <= m[p]; j++) {
			l = lib[p, j]
			printf "%-12s %-30s %12s %10s %8.1fx\n", p, l, libNs[p, l], libAllocs[p, l], libNs[p, l] / ours[p]
		}
	}
}' "$tmp/ours" "$tmp/libs"
