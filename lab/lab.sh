#!/usr/bin/env bash
# The local two-host lab: two sshd instances on loopback addresses, each with its own host
# key and its own podman state, standing for two Linux hosts `lab-a` and `lab-b`.
#
#   lab/lab.sh up      idempotent; writes .lab/ssh_config, .lab/known_hosts, .lab/id_ed25519
#   lab/lab.sh down    stops the lab's sshd (by PID) and its containers, removes what `up` made
#   lab/lab.sh status
#
# Each sshd sets CONTAINERS_STORAGE_CONF / CONTAINERS_CONF / TMPDIR for its sessions (SetEnv),
# so `ssh -F .lab/ssh_config lab-a podman ps` and the same for lab-b see separate podman states.
# Podman state lives under /var/lib/celestial-lab-ID and /run/celestial-lab-ID (ID is derived
# from the checkout's path, so two checkouts do not collide); nothing else on the machine is
# touched.
set -euo pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
LAB=${CELESTIAL_LAB_DIR:-$REPO/.lab}
LAB_ID=$(printf '%s' "$LAB" | sha1sum | cut -c1-8)
STATE=/var/lib/celestial-lab-$LAB_ID
RUNSTATE=/run/celestial-lab-$LAB_ID
PORT=${CELESTIAL_LAB_PORT:-2222}
# lab-c is deliberately broken: its sessions get a PATH without /usr/local, so no CRIU.
# lab-d is a stock host: podman and CRIU, but neither socat nor python3 on its sessions' PATH
# (a directory of links to everything else; PYENV_VERSION=system, so that a login shell that
# puts pyenv's shims first finds no python3 there either), so no TLS link can end there
HOSTS=(lab-a lab-b lab-c lab-d)
declare -A ADDRESS=([lab-a]=127.0.0.11 [lab-b]=127.0.0.12 [lab-c]=127.0.0.13 [lab-d]=127.0.0.14)
WORKLOAD_IMAGE=localhost/memtick:latest

log() { printf 'lab: %s\n' "$*" >&2; }

sshd_pid() {
	local pidfile=$LAB/$1/sshd.pid
	[ -f "$pidfile" ] || return 1
	local pid
	pid=$(cat "$pidfile")
	[ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 1
	# the PID must still be our sshd, not a recycled number
	grep -q "$LAB/$1/sshd_config" "/proc/$pid/cmdline" 2>/dev/null || return 1
	echo "$pid"
}

host_podman() {
	local host=$1
	shift
	CONTAINERS_STORAGE_CONF=$LAB/$host/storage.conf CONTAINERS_CONF=$LAB/$host/containers.conf \
		TMPDIR=$STATE/$host/tmp podman "$@"
}

write_host_config() {
	local host=$1 address=${ADDRESS[$1]}
	local dir=$LAB/$host
	mkdir -p "$dir" "$STATE/$host/graph" "$STATE/$host/tmp" "$STATE/$host/shm" "$RUNSTATE/$host/run" "$RUNSTATE/$host/libpod"
	chmod 0700 "$STATE/$host/tmp"
	# each host its own tmpfs for archives that fit in memory (CELESTIAL_SSH_TMPFS): the
	# machine's one /dev/shm would let a host see the other's work directories
	if ! mountpoint -q "$STATE/$host/shm"; then
		mount -t tmpfs -o mode=0700,size=50% "celestial-lab-$host" "$STATE/$host/shm"
	fi
	[ -f "$dir/ssh_host_ed25519_key" ] || ssh-keygen -q -t ed25519 -N '' -C "$host" -f "$dir/ssh_host_ed25519_key"
	cat >"$dir/storage.conf" <<CONF
[storage]
driver = "overlay"
graphroot = "$STATE/$host/graph"
runroot = "$RUNSTATE/$host/run"
CONF
	# runc + cgroupfs: crun refuses hybrid cgroups; ulimits: the sandbox withholds
	# CAP_SYS_RESOURCE, so containers must not ask for more than the runtime has.
	cat >"$dir/containers.conf" <<CONF
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
tmp_dir = "$RUNSTATE/$host/libpod"
CONF
	cat >"$dir/sshd_config" <<CONF
ListenAddress $address:$PORT
HostKey $dir/ssh_host_ed25519_key
PidFile $dir/sshd.pid
AuthorizedKeysFile $LAB/authorized_keys
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
MaxStartups 200
MaxSessions 100
LogLevel ERROR
Subsystem sftp internal-sftp
SetEnv CONTAINERS_STORAGE_CONF=$dir/storage.conf CONTAINERS_CONF=$dir/containers.conf TMPDIR=$STATE/$host/tmp CELESTIAL_SSH_TMPFS=$STATE/$host/shm CELESTIAL_LAB_HOST=$host$(
		[ "$host" = lab-c ] && echo " PATH=/usr/bin:/bin:/usr/sbin:/sbin"
		[ "$host" = lab-d ] && echo " PATH=$STATE/lab-d/bin PYENV_VERSION=system")
CONF
	if [ "$host" = lab-d ]; then
		link_programs_but_tls_tools "$STATE/lab-d/bin"
	fi
}

# every program on the usual PATH, linked into $1, but socat and python: what a host that
# installed podman and CRIU without them offers
link_programs_but_tls_tools() {
	local bin=$1 dir file name
	rm -rf "$bin"
	mkdir -p "$bin"
	for dir in /usr/local/sbin /usr/local/bin /usr/sbin /usr/bin /sbin /bin; do
		for file in "$dir"/*; do
			name=${file##*/}
			case $name in
			socat* | python*) continue ;;
			esac
			if [ -x "$file" ] && [ ! -e "$bin/$name" ] && [ ! -L "$bin/$name" ]; then
				ln -s "$file" "$bin/$name"
			fi
		done
	done
}

up() {
	if [ "$(id -u)" != 0 ]; then
		log "must run as root"
		exit 1
	fi
	mkdir -p "$LAB" /run/sshd
	chmod 0700 "$LAB"
	[ -f "$LAB/id_ed25519" ] || ssh-keygen -q -t ed25519 -N '' -C celestial-lab-client -f "$LAB/id_ed25519"
	cp "$LAB/id_ed25519.pub" "$LAB/authorized_keys"
	: >"$LAB/known_hosts.new"
	: >"$LAB/ssh_config.new"
	for host in "${HOSTS[@]}"; do
		write_host_config "$host"
		local address=${ADDRESS[$host]}
		echo "[$address]:$PORT $(cut -d' ' -f1-2 "$LAB/$host/ssh_host_ed25519_key.pub")" >>"$LAB/known_hosts.new"
		cat >>"$LAB/ssh_config.new" <<CONF
Host $host
    HostName $address
    Port $PORT
    User root
    IdentityFile $LAB/id_ed25519
    IdentitiesOnly yes
    UserKnownHostsFile $LAB/known_hosts
    StrictHostKeyChecking yes
    BatchMode yes

CONF
		if ! sshd_pid "$host" >/dev/null; then
			/usr/sbin/sshd -f "$LAB/$host/sshd_config" -E "$LAB/$host/sshd.log"
		fi
	done
	mv "$LAB/known_hosts.new" "$LAB/known_hosts"
	mv "$LAB/ssh_config.new" "$LAB/ssh_config"
	for host in "${HOSTS[@]}"; do
		local tries=0
		until ssh -F "$LAB/ssh_config" "$host" true 2>/dev/null; do
			tries=$((tries + 1))
			if [ $tries -gt 50 ]; then
				log "$host does not answer on ${ADDRESS[$host]}:$PORT; see $LAB/$host/sshd.log"
				exit 1
			fi
			sleep 0.1
		done
	done
	build_workload_image
	write_inventory
	log "up: lab-a (${ADDRESS[lab-a]}:$PORT), lab-b (${ADDRESS[lab-b]}:$PORT), lab-c (no CRIU on PATH), lab-d (no socat or python3 on PATH); ssh -F $LAB/ssh_config lab-a"
}

build_workload_image() {
	# memtick, a static C program, in an image made offline with `podman import` (no registry
	# is reachable). Only lab-a gets it: a migration to lab-b stages it there.
	if host_podman lab-a image exists "$WORKLOAD_IMAGE" 2>/dev/null; then
		return
	fi
	local build
	build=$(mktemp -d)
	gcc -O2 -static -o "$build/memtick" "$REPO/lab/workload/memtick.c"
	tar -C "$build" -cf "$build/rootfs.tar" memtick
	host_podman lab-a import --quiet --change 'ENTRYPOINT ["/memtick"]' "$build/rootfs.tar" "$WORKLOAD_IMAGE" >/dev/null
	rm -rf "$build"
	log "built $WORKLOAD_IMAGE on lab-a"
}

write_inventory() {
	cat >"$LAB/inventory.yml" <<CONF
# Written by lab/lab.sh: the lab's two hosts as a celestial-ssh inventory.
hosts:
  lab-a:
    hostname: ${ADDRESS[lab-a]}
    port: $PORT
    user: root
    identity_file: $LAB/id_ed25519
    known_hosts_file: $LAB/known_hosts
    strict_host_key_checking: "yes"
  lab-b:
    hostname: ${ADDRESS[lab-b]}
    port: $PORT
    user: root
    identity_file: $LAB/id_ed25519
    known_hosts_file: $LAB/known_hosts
    strict_host_key_checking: "yes"
groups:
  lab:
    - lab-a
    - lab-b
CONF
}

down() {
	for host in "${HOSTS[@]}"; do
		if [ -f "$LAB/$host/storage.conf" ]; then
			host_podman "$host" rm --all --force --time 0 >/dev/null 2>&1 || true
			host_podman "$host" system reset --force >/dev/null 2>&1 || true
		fi
		local pid
		if pid=$(sshd_pid "$host"); then
			kill "$pid"
		fi
	done
	for dir in "$STATE" "$RUNSTATE"; do
		if [ -d "$dir" ]; then
			# overlay mounts left by a crashed podman must go before the files
			grep -F " $dir/" /proc/mounts | awk '{print $2}' | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
			rm -rf "$dir"
		fi
	done
	rm -rf "$LAB"
	# the migration locks the lab's migrations left (empty flock files); one that is
	# held right now belongs to a running migration and stays
	for lock in /run/celestial-ssh/lock.*; do
		[ -e "$lock" ] && flock -n "$lock" rm -f "$lock"
	done
	rmdir /run/celestial-ssh 2>/dev/null || true
	log "down"
}

status() {
	for host in "${HOSTS[@]}"; do
		if pid=$(sshd_pid "$host"); then
			echo "$host: sshd pid $pid on ${ADDRESS[$host]}:$PORT"
		else
			echo "$host: down"
		fi
	done
}

case "${1:-}" in
up) up ;;
down) down ;;
status) status ;;
*)
	echo "usage: $0 up|down|status" >&2
	exit 2
	;;
esac
