#!/usr/bin/env bash
# Installs what the local lab and the test suite need on a Debian/Ubuntu machine, as root.
# Idempotent: a second run installs nothing. Safe on a bare machine (CI starts bare).
#
# CRIU: the kernel decides which CRIU works (see README "Requirements"). When the CRIU on
# PATH fails `criu check`, or is older than 4.2 on a kernel >= 6.16, we unpack Debian's
# newer criu and the libraries it links into a private prefix and put a wrapper early on
# PATH. Apt's system sources are never changed: the newer suites are read through a private
# apt state directory that is thrown away afterwards.
set -euo pipefail

CRIU_PREFIX=${CRIU_PREFIX:-/opt/celestial-ssh/criu}
CRIU_WRAPPER=${CRIU_WRAPPER:-/usr/local/sbin/criu}
CRIU_SUITE=${CRIU_SUITE:-forky}

log() { printf 'install-deps: %s\n' "$*" >&2; }

if [ "$(id -u)" != 0 ]; then
	log "must run as root (it installs packages and starts sshd)"
	exit 1
fi

need_apt=()
for pair in podman:podman runc:runc sshd:openssh-server ssh:openssh-client ip:iproute2 \
	gcc:gcc make:make mkfifo:coreutils zstd:zstd curl:curl socat:socat \
	shellcheck:shellcheck; do
	cmd=${pair%%:*}
	pkg=${pair#*:}
	if ! command -v "$cmd" >/dev/null 2>&1 && ! [ -x "/usr/sbin/$cmd" ]; then
		need_apt+=("$pkg")
	fi
done
# static libc for the test workload, CNI plugins for podman's default bridge network
dpkg -s libc6-dev >/dev/null 2>&1 || need_apt+=(libc6-dev)
dpkg -s containernetworking-plugins >/dev/null 2>&1 || need_apt+=(containernetworking-plugins)
dpkg -s uidmap >/dev/null 2>&1 || need_apt+=(uidmap)
dpkg -s iptables >/dev/null 2>&1 || need_apt+=(iptables)
# the lab hosts' end of the TLS link (their sessions' PATH, not this shell's, decides)
[ -x /usr/bin/python3 ] || need_apt+=(python3)

if [ ${#need_apt[@]} -gt 0 ]; then
	log "installing ${need_apt[*]}"
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

version_ge() { [ "$(printf '%s\n%s\n' "$2" "$1" | sort -V | head -n1)" = "$2" ]; }

criu_is_good() {
	command -v criu >/dev/null 2>&1 || return 1
	criu check >/dev/null 2>&1 || return 1
	local kernel criu_version
	kernel=$(uname -r | cut -d- -f1)
	criu_version=$(criu --version 2>/dev/null | awk '/^Version:/ {print $2}')
	# kernel 6.16 restricted SO_PASSCRED/SO_PASSSEC; CRIU < 4.2 fails to dump any socket
	if version_ge "$kernel" 6.16 && ! version_ge "${criu_version:-0}" 4.2; then
		return 1
	fi
	return 0
}

if criu_is_good; then
	log "CRIU ok: $(criu --version | head -n1)"
else
	log "the CRIU on PATH does not pass on kernel $(uname -r); unpacking CRIU from Debian $CRIU_SUITE into $CRIU_PREFIX"
	work=$(mktemp -d)
	trap 'rm -rf "$work"' EXIT
	mkdir -p "$work"/lists/partial "$work"/cache/archives/partial "$work"/prefs "$work"/debs
	echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian $CRIU_SUITE main" >"$work"/sources.list
	apt_private=(-o "Dir::Etc::SourceList=$work/sources.list" -o Dir::Etc::SourceParts=/nonexistent
		-o "Dir::State::Lists=$work/lists" -o "Dir::Cache=$work/cache"
		-o Dir::Etc::Preferences=/nonexistent -o "Dir::Etc::PreferencesParts=$work/prefs"
		-o Debug::NoLocking=1 -o APT::Sandbox::User=root)
	apt-get "${apt_private[@]}" update -qq
	mapfile -t packages < <(apt-cache "${apt_private[@]}" depends --recurse --no-recommends \
		--no-suggests --no-conflicts --no-breaks --no-replaces --no-enhances criu |
		grep -v '^[ <]' | grep -vE '^(gcc-[0-9]+-base|libc-gconv-modules-extra)$' | sort -u)
	log "unpacking ${packages[*]}"
	(cd "$work"/debs && apt-get "${apt_private[@]}" download -qq "${packages[@]}")
	rm -rf "$CRIU_PREFIX.new"
	mkdir -p "$CRIU_PREFIX.new"
	for deb in "$work"/debs/*.deb; do dpkg-deb -x "$deb" "$CRIU_PREFIX.new"; done
	rm -rf "$CRIU_PREFIX"
	mv "$CRIU_PREFIX.new" "$CRIU_PREFIX"
	mkdir -p "$(dirname "$CRIU_WRAPPER")"
	cat >"$CRIU_WRAPPER" <<WRAPPER
#!/bin/sh
# Installed by celestial-ssh lab/install-deps.sh: CRIU $CRIU_SUITE with its own libraries.
exec "$CRIU_PREFIX/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2" \\
	--library-path "$CRIU_PREFIX/usr/lib/x86_64-linux-gnu" "$CRIU_PREFIX/usr/sbin/criu" "\$@"
WRAPPER
	chmod 0755 "$CRIU_WRAPPER"
	hash -r
	if ! criu_is_good; then
		log "CRIU from $CRIU_SUITE still fails: $(criu check 2>&1 | tail -n 3)"
		exit 1
	fi
	log "CRIU ok: $(criu --version | head -n1)"
fi
