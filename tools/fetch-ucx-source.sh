#!/usr/bin/env bash
# Unpack the source of the installed UCX (Debian's source package, matched to
# the installed libucx0 version) into DIR, for the internal headers the UCT
# transport is compiled against.  The source is never committed.
#   tools/fetch-ucx-source.sh DIR        (prints the source tree's path)
set -euo pipefail
dest=$(realpath -m "${1:?usage: fetch-ucx-source.sh DIR}")
version=$(dpkg-query -W -f='${Version}' libucx0 2>/dev/null) ||
	{ echo "libucx0 is not installed" >&2; exit 1; }
tree="$dest/ucx-$version"
if [ -f "$tree/src/uct/base/uct_iface.h" ]; then
	echo "$tree"
	exit 0
fi
mkdir -p "$dest"
work=$(mktemp -d "$dest/.fetch.XXXXXX")
trap 'rm -rf "$work"' EXIT
cd "$work"
if ! apt-get source --download-only "ucx=$version" >/dev/null 2>&1; then
	# No deb-src entry yet: add one for the suites the binary came from.
	if [ "$(id -u)" != 0 ]; then
		echo "no deb-src entry for ucx; as root run: $0 $dest" >&2
		exit 1
	fi
	cat > /etc/apt/sources.list.d/xpmem-ucx-src.sources <<SRC
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: $(. /etc/os-release && echo "$VERSION_CODENAME")
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
	apt-get update -qq >/dev/null
	apt-get source --download-only "ucx=$version" >/dev/null 2>&1
fi
# The download may run unprivileged (_apt); unpack with the distro patches.
dpkg-source -x ./*.dsc src >log 2>&1 || { cat log >&2; exit 1; }
rm -rf "$tree"
mv src "$tree"
echo "$tree"
