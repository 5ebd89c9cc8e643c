#!/usr/bin/env bash
# Run the go command of a toolchain new enough for this module's go.mod.
#
#   scripts/go.sh build|test|vet|...   run go with these arguments
#   scripts/go.sh --bindir             print the directory holding that go
#
# It uses the first of: go on PATH, /usr/local/go/bin/go, a toolchain this
# script fetched before; each only if its version is at least go.mod's go
# line (Debian 12's Go 1.19 is too old: it cannot even parse that line).
# Otherwise it fetches the toolchain module golang.org/toolchain (the Go
# release the go command itself switches to with GOTOOLCHAIN=auto) through
# the configured Go module proxy into a private directory,
# ${XDG_CACHE_HOME:-~/.cache}/dnstt_exporter/go<version>, and uses that.
# Nothing outside that directory changes, except when run as root on a host
# with neither an old Go nor curl and unzip: then it installs curl and unzip
# with apt-get (no service is started). The fetched version is go.mod's
# toolchain line if it has one, else the newest patch release of the go
# line's major.minor. The download is checked against the Go checksum
# database (GOSUMDB), by the go command when one is on the host, otherwise
# by this script.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
me=dnstt_exporter

die() { echo "$me: $*" >&2; exit 1; }

# go.mod's requirement: the toolchain line if any, else the go line.
goline=$(awk '$1 == "go" { print $2; exit }' "$root/go.mod")
tcline=$(awk '$1 == "toolchain" { sub(/^go/, "", $2); print $2; exit }' "$root/go.mod")
[ -n "$goline" ] || die "no go line in $root/go.mod"
need=${tcline:-$goline}

# vercmp A B: succeeds when Go version A >= B (1.26 < 1.26.0 < 1.26.1;
# a pre-release such as 1.27rc1 counts as its release's .0).
vernum() {
	local v=${1#go} a b c
	v=${v%%[!0-9.]*}
	IFS=. read -r a b c <<<"$v"
	printf '%d%04d%04d\n' "${a:-0}" "${b:-0}" "${c:-0}"
}
vercmp() { [ "$(vernum "$1")" -ge "$(vernum "$2")" ]; }

# goversion GO: the version a go binary reports, without asking it to read
# go.mod (an old go fails on a new go line) or to switch toolchains.
goversion() {
	(cd / && GOTOOLCHAIN=local GOFLAGS= "$1" env GOVERSION 2>/dev/null) || true
}

arch() {
	case $(uname -m) in
	x86_64 | amd64) echo amd64 ;;
	aarch64 | arm64) echo arm64 ;;
	armv6* | armv7* | armv8l) echo armv6l ;;
	i?86) echo 386 ;;
	ppc64le) echo ppc64le ;;
	s390x) echo s390x ;;
	riscv64) echo riscv64 ;;
	loongarch64) echo loong64 ;;
	*) die "no Go toolchain is published for machine $(uname -m)" ;;
	esac
}

cache=${XDG_CACHE_HOME:-${HOME:?HOME is not set}/.cache}/$me

# Scratch space of a fetch, removed on exit.
tmp=
trap '[ -z "$tmp" ] || { chmod -R u+w "$tmp" 2>/dev/null; rm -rf "$tmp"; }' EXIT

# A go binary on PATH, the usual install, or one fetched before.
find_go() {
	local g v
	for g in "$(command -v go 2>/dev/null || true)" /usr/local/go/bin/go "$cache"/go*/bin/go; do
		[ -n "$g" ] && [ -x "$g" ] || continue
		v=$(goversion "$g")
		[ -n "$v" ] && vercmp "$v" "$need" && { echo "$g"; return 0; }
	done
	return 1
}

# The Go environment as the go command would see it, for a host without a
# go command: the variable, else the go env file, else Go's default.
goenv() {
	local name=$1 def=$2 v f
	v=${!name:-}
	if [ -z "$v" ]; then
		f=${GOENV:-${XDG_CONFIG_HOME:-$HOME/.config}/go/env}
		[ "$f" != off ] && [ -f "$f" ] && v=$(sed -n "s/^$name=//p" "$f" | tail -1)
	fi
	echo "${v:-$def}"
}

# pick LIST: the toolchain module version to fetch, from the proxy's list.
pick() {
	local a=$1
	if [ -n "$tcline" ]; then
		echo "v0.0.1-go$tcline.linux-$a"
		return
	fi
	local mm
	mm=$(echo "$goline" | awk -F. '{ print $1 "." $2 }')
	grep -E "^v0\.0\.1-go${mm//./\\.}(\.[0-9]+)?\.linux-$a\$" | sort -V | tail -1
}

# oldgo GO ARGS: run an old go with a scratch module cache.
oldgo() {
	local g=$1
	shift
	GOMODCACHE=$tmp/mod GOFLAGS=-mod=mod GOTOOLCHAIN=local "$g" "$@"
}

# With an old go (Debian's golang-go): go mod download in a scratch module
# fetches through GOPROXY and checks GOSUMDB itself.
fetch_with_go() {
	local old=$1 a=$2 v dir
	tmp=$(mktemp -d)
	printf 'module fetchgo\n' >"$tmp/go.mod"
	v=$(cd "$tmp" && oldgo "$old" list -m -versions golang.org/toolchain | tr ' ' '\n' | pick "$a")
	[ -n "$v" ] || die "the Go module proxy lists no golang.org/toolchain for go $goline on linux-$a"
	echo "$me: fetching golang.org/toolchain@$v with $old" >&2
	dir=$(cd "$tmp" && oldgo "$old" mod download -json "golang.org/toolchain@$v" | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')
	[ -n "$dir" ] && [ -d "$dir" ] || die "go mod download golang.org/toolchain@$v failed"
	install_toolchain "$dir" "$v"
}

# With curl and unzip: the proxy's zip, checked against the checksum
# database's h1: hash (golang.org/x/mod/sumdb/dirhash Hash1: the SHA-256 of
# the sorted "sha256  name" lines of every file in the zip).
fetch_with_curl() {
	local a=$1 proxy sumdb url v want got
	proxy=$(goenv GOPROXY https://proxy.golang.org,direct | tr ',|' '\n\n' | grep -m1 '^https\?://' || true)
	[ -n "$proxy" ] || die "GOPROXY names no proxy to fetch Go from"
	proxy=${proxy%/}
	tmp=$(mktemp -d)
	v=$(curl -fsSL "$proxy/golang.org/toolchain/@v/list" | pick "$a")
	[ -n "$v" ] || die "$proxy lists no golang.org/toolchain for go $goline on linux-$a"
	echo "$me: fetching golang.org/toolchain@$v from $proxy" >&2
	curl -fsSL -o "$tmp/go.zip" "$proxy/golang.org/toolchain/@v/$v.zip"
	# GOSUMDB is "name[+key] [url]".
	read -r sumdb url <<<"$(goenv GOSUMDB sum.golang.org)"
	sumdb=${sumdb%%+*}
	url=${url:-https://$sumdb}
	if [ "$sumdb" != off ]; then
		want=$(curl -fsSL "${url%/}/lookup/golang.org/toolchain@$v" 2>/dev/null ||
			curl -fsSL "$proxy/sumdb/$sumdb/lookup/golang.org/toolchain@$v") ||
			die "cannot look up golang.org/toolchain@$v in the checksum database $sumdb"
		want=$(echo "$want" | awk -v m="golang.org/toolchain" -v v="$v" '$1 == m && $2 == v { print $3 }')
		(cd "$tmp" && unzip -q go.zip && rm go.zip)
		got=$(cd "$tmp" && find golang.org -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum |
			sha256sum | cut -c1-64 | sed 's/../\\x&/g')
		got="h1:$(printf "$got" | base64)"
		[ -n "$want" ] && [ "$got" = "$want" ] ||
			die "golang.org/toolchain@$v does not match the checksum database (got $got, want ${want:-none})"
	else
		(cd "$tmp" && unzip -q go.zip && rm go.zip)
	fi
	install_toolchain "$tmp/golang.org/toolchain@$v" "$v"
}

# install_toolchain DIR VERSION: copy an unpacked toolchain module into the
# cache. Module zips carry no file modes, so the commands get theirs back
# (as the go command does when it switches toolchains).
install_toolchain() {
	local src=$1 v=$2 ver dst
	ver=${v#v0.0.1-go}
	ver=${ver%.linux-*}
	dst=$cache/go$ver
	mkdir -p "$cache"
	rm -rf "$dst.tmp" && cp -R "$src" "$dst.tmp"
	chmod -R u+w "$dst.tmp"
	chmod +x "$dst.tmp"/bin/* "$dst.tmp"/pkg/tool/*/*
	rm -rf "$dst" && mv "$dst.tmp" "$dst"
	echo "$me: Go $ver is in $dst" >&2
}

# apt-get install without starting any service the packages bring.
apt_install() {
	local policy=/usr/sbin/policy-rc.d made=
	if [ ! -e "$policy" ]; then
		printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod +x "$policy" && made=1
	fi
	local log rc=0
	log=$(mktemp)
	{ DEBIAN_FRONTEND=noninteractive apt-get update -qq &&
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@"; } >"$log" 2>&1 || rc=$?
	[ -z "$made" ] || rm -f "$policy"
	[ "$rc" = 0 ] || cat "$log" >&2
	rm -f "$log"
	return $rc
}

fetch() {
	local a old
	a=$(arch)
	old=$(command -v go 2>/dev/null || true)
	[ -n "$old" ] || { [ -x /usr/local/go/bin/go ] && old=/usr/local/go/bin/go; } || true
	if [ -n "$old" ] && [ -n "$(goversion "$old")" ]; then
		fetch_with_go "$old" "$a"
		return
	fi
	if ! command -v curl >/dev/null || ! command -v unzip >/dev/null; then
		if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
			echo "$me: installing curl and unzip to fetch Go (go.mod: go $goline)" >&2
			apt_install curl unzip || die "apt-get install curl unzip failed"
		else
			die "need Go $need or newer; install curl and unzip (or any Go, e.g. Debian's golang-go) and run this again, or put Go $need on PATH"
		fi
	fi
	fetch_with_curl "$a"
}

if ! gobin=$(find_go); then
	fetch
	gobin=$(find_go) || die "the fetched Go does not run here"
fi

if [ "${1:-}" = --bindir ]; then
	dirname "$gobin"
	exit 0
fi
# The chosen toolchain builds; it must not switch itself to another.
export GOTOOLCHAIN=local
exec "$gobin" "$@"
