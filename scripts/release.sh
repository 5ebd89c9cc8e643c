#!/usr/bin/env bash
# Build the release binaries: static (CGO_ENABLED=0), -trimpath, for
# linux/amd64, linux/arm64 and linux/arm (GOARM=7), into dist/ (or the
# directory DIST names), with a SHA256SUMS file.
#
#   scripts/release.sh [VERSION]
#
# VERSION (e.g. 1.2.0) defaults to `git describe --tags --always --dirty`
# (a leading "v" is dropped); the revision is `git rev-parse HEAD`, or
# REVISION from the environment, else "unknown". Both are stamped into
# -version and dnstt_exporter_build_info (-ldflags -X main.version and
# main.revision). No VCS time or path is embedded (-buildvcs=false,
# -trimpath): the same source, version and Go toolchain give the same bytes.
set -euo pipefail
cd "$(dirname "$0")/.."

version=${1:-}
if [ -z "$version" ]; then
	version=$(git describe --tags --always --dirty 2>/dev/null) ||
		{ echo "release.sh: no VERSION given and no git description; run: scripts/release.sh 1.2.3" >&2; exit 2; }
fi
version=${version#v}
case $version in
*[!A-Za-z0-9._+-]* | "") echo "release.sh: VERSION \"$version\" may hold only letters, digits and . _ + -" >&2; exit 2 ;;
esac

revision=${REVISION:-$(git rev-parse HEAD 2>/dev/null || echo unknown)}
case $revision in
*[!A-Za-z0-9._+-]* | "") echo "release.sh: REVISION \"$revision\" may hold only letters, digits and . _ + -" >&2; exit 2 ;;
esac

gobin=$(scripts/go.sh --bindir)
go=$gobin/go
export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=

dist=${DIST:-dist}
rm -rf "$dist"
mkdir -p "$dist"
for target in linux/amd64 linux/arm64 linux/arm/7; do
	IFS=/ read -r goos goarch goarm <<<"$target"
	name=dnstt_exporter-$version.$goos-$goarch${goarm:+v$goarm}
	GOOS=$goos GOARCH=$goarch GOARM=$goarm "$go" build -trimpath -buildvcs=false \
		-ldflags "-s -w -X main.version=$version -X main.revision=$revision" -o "$dist/$name" .
	printf '%s %s bytes\n' "$dist/$name" "$(stat -c %s "$dist/$name")"
done
(cd "$dist" && sha256sum dnstt_exporter-* >SHA256SUMS)
echo "$dist/SHA256SUMS"
"$go" version
