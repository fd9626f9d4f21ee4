#!/bin/bash
# mkdom0.sh: build the lab's Xen dom0 from Debian 12's packages: the Xen
# 4.17 hypervisor, Debian's kernel as a PV dom0 with its userland in a RAM
# root file system, and a tiny PV domU that the dom0 starts with xl.
#
#   sudo tests/lab/xen/mkdom0.sh --agent BINARY [--out DIR] [--cache DIR]
#
# Output (default out/dom0/):
#   xen.elf      the hypervisor as the ELF QEMU's multiboot loader takes
#   vmlinuz      the dom0's kernel (the one the appliance image uses)
#   dom0.cpio    the dom0's root file system (uncompressed: nothing to
#                unpack slowly under TCG), /init = dom0-init; inside it,
#                /usr/lib/sand-lab/domu/{vmlinux.gz,initrd.img} for the domU
#   manifest.txt what went in
# What goes in is in this directory: packages, modules, domu-modules,
# dom0-init, domu-init, domu-stop; the agent binary (sand-lab-agent, built
# static) goes into both the dom0 and the domU.
#
# The installed package tree and the downloads are kept in the cache
# (default out/cache/dom0/), keyed by the package list: a rebuild takes
# seconds. Needs root (mmdebstrap in root mode). Environment: SUITE
# (bookworm), MIRROR, KVER (default: the kernel linux-image-amd64 depends
# on), XENVER (4.17).
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../../.." && pwd)
OUT=$REPO/out/dom0
CACHE=$REPO/out/cache/dom0
AGENT=
SUITE=${SUITE:-bookworm}
MIRROR=${MIRROR:-http://deb.debian.org/debian}
XENVER=${XENVER:-4.17}

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; }
while [ $# -gt 0 ]; do
	case $1 in
	--out) OUT=$(realpath -m "$2"); shift 2 ;;
	--cache) CACHE=$(realpath -m "$2"); shift 2 ;;
	--agent) AGENT=$(realpath "$2"); shift 2 ;;
	-h | --help) usage; exit 0 ;;
	*) echo "mkdom0.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
	esac
done

T0=$(date +%s.%N)
step() { printf 'mkdom0: [%6.1fs] %s\n' "$(echo "$(date +%s.%N) - $T0" | bc)" "$*"; }
die() { echo "mkdom0: $*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "needs root (mmdebstrap --mode=root): run it with sudo"
[ -n "$AGENT" ] && [ -x "$AGENT" ] || die "--agent: the sand-lab-agent binary (CGO_ENABLED=0 go build ./tests/lab/cmd/sand-lab-agent)"
for tool in mmdebstrap cpio depmod modprobe dpkg-deb bc xz gzip; do
	command -v "$tool" >/dev/null || die "needs $tool (tests/setup.sh installs it)"
done

BUILD=$CACHE/build
DEBS=$CACHE/debs
mkdir -p "$OUT" "$DEBS" "$BUILD"
[ -f "$REPO/out/go.mod" ] || printf 'module sand.invalid/out\n' >"$REPO/out/go.mod"
exec 9>"$CACHE/.lock"
flock 9

download() {
	local p missing=()
	for p in "$@"; do
		compgen -G "$DEBS/${p}_*.deb" >/dev/null || missing+=("$p")
	done
	[ ${#missing[@]} -eq 0 ] && return
	(cd "$DEBS" && apt-get download -q -o APT::Sandbox::User=root "${missing[@]}" >/dev/null 2>&1) || {
		apt-get update -q >/dev/null
		(cd "$DEBS" && apt-get download -q -o APT::Sandbox::User=root "${missing[@]}" >/dev/null)
	}
}
deb() { ls "$DEBS/$1"_*.deb | tail -n1; }

# --- kernel, hypervisor, the domU's static tools -----------------------------
if [ -z "${KVER:-}" ]; then
	KPKG=$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
	[ -n "$KPKG" ] || { apt-get update -q >/dev/null; KPKG=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-[0-9]/ {print $2; exit}'); }
	[ -n "$KPKG" ] || die "cannot tell which kernel linux-image-amd64 depends on"
	KVER=${KPKG#linux-image-}
fi
step "kernel $KVER, Xen $XENVER"
download "linux-image-$KVER" "xen-hypervisor-$XENVER-amd64" busybox-static e2fsck-static
KX=$CACHE/kernel-$KVER
if [ ! -f "$KX/lib/modules/$KVER/modules.dep" ]; then
	rm -rf "$KX.tmp"
	mkdir -p "$KX.tmp"
	dpkg-deb -x "$(deb "linux-image-$KVER")" "$KX.tmp"
	depmod -b "$KX.tmp" "$KVER"
	rm -rf "$KX"
	mv "$KX.tmp" "$KX"
fi
X=$BUILD/x
rm -rf "$X"
mkdir -p "$X/xen" "$X/bb" "$X/fsck"
dpkg-deb -x "$(deb "xen-hypervisor-$XENVER-amd64")" "$X/xen"
dpkg-deb -x "$(deb busybox-static)" "$X/bb"
dpkg-deb -x "$(deb e2fsck-static)" "$X/fsck"
# QEMU's multiboot loader takes the 32-bit ELF, not the .gz
zcat "$X/xen/boot/xen-$XENVER-amd64.gz" >"$OUT/xen.elf.tmp"
mv "$OUT/xen.elf.tmp" "$OUT/xen.elf"
cp "$KX/boot/vmlinuz-$KVER" "$OUT/vmlinuz"

# The domU's kernel as a gzip'd ELF: libxc unpacks gzip in ~2 s under TCG,
# the bzImage's XZ payload in ~8 s.
VMLINUX=$CACHE/vmlinux-$KVER.gz
if [ ! -f "$VMLINUX" ]; then
	off=$(LC_ALL=C grep -obUaP '\xfd7zXZ\x00' "$KX/boot/vmlinuz-$KVER" | head -n1 | cut -d: -f1)
	[ -n "$off" ] || die "no XZ payload in vmlinuz-$KVER"
	# xz stops at the end of its stream; what follows it is not xz
	tail -c +$((off + 1)) "$KX/boot/vmlinuz-$KVER" | xz -dcq >"$BUILD/vmlinux" 2>/dev/null || true
	[ "$(head -c4 "$BUILD/vmlinux" | od -An -c | tr -d ' ')" = "177ELF" ] || die "the XZ payload of vmlinuz-$KVER is not an ELF kernel"
	gzip -1 -c "$BUILD/vmlinux" >"$VMLINUX.tmp"
	mv "$VMLINUX.tmp" "$VMLINUX"
	rm -f "$BUILD/vmlinux"
fi

# --- the dom0's root file system ---------------------------------------------
PKGS=$(sed 's/#.*//' "$HERE/packages" | xargs | tr ' ' ,)
MM_OPTS=(--mode=root --variant=essential --include="$PKGS"
	--aptopt='APT::Install-Recommends "false"'
	--dpkgopt='path-exclude=/usr/share/man/*'
	--dpkgopt='path-exclude=/usr/share/info/*'
	--dpkgopt='path-exclude=/usr/share/locale/*'
	--dpkgopt='path-exclude=/usr/share/doc/*')
KEY=$(printf '%s\n' "${MM_OPTS[@]}" "$SUITE" "$MIRROR" | sha256sum | cut -c1-16)
BASE=$CACHE/rootfs-$SUITE-$KEY
if [ ! -f "$BASE.done" ]; then
	step "mmdebstrap $SUITE: $PKGS"
	rm -rf "$BASE"
	mmdebstrap "${MM_OPTS[@]}" \
		--setup-hook='mkdir -p "$1"/var/cache/apt/archives' \
		--setup-hook="sync-in $DEBS /var/cache/apt/archives/" \
		--customize-hook="sync-out /var/cache/apt/archives $DEBS" \
		"$SUITE" "$BASE" "$MIRROR" >"$BUILD/mmdebstrap.log" 2>&1 ||
		{ tail -n 30 "$BUILD/mmdebstrap.log" >&2; die "mmdebstrap failed (log: $BUILD/mmdebstrap.log)"; }
	rm -rf "$DEBS"/lock "$DEBS"/partial
	for old in "$CACHE"/rootfs-*.done; do
		[ "$old" = "$BASE.done" ] || [ ! -e "$old" ] || rm -rf "${old%.done}" "$old"
	done
	date -u +%Y-%m-%dT%H:%M:%SZ >"$BASE.done"
else
	step "dom0 package tree from the cache ($(cat "$BASE.done"))"
fi
R=$BUILD/rootfs
rm -rf "$R"
cp -a "$BASE" "$R"
PKG_LIST=$(chroot "$R" dpkg-query -W -f '${Package} ${Version}\n')

# closure NAME...: the module files (relative to the kernel tree) that
# modprobe would load for each name, dependencies first.
closure() {
	local m
	for m in "$@"; do
		modprobe -d "$KX" -S "$KVER" --show-depends "$m" 2>/dev/null | awk '$1 == "insmod" {print $2}' ||
			die "module $m is not in $KVER"
	done | sed "s|^$KX/||" | awk '!seen[$0]++'
}
list() { sed 's/#.*//' "$1" | xargs; }

step "dom0 kernel modules"
# shellcheck disable=SC2046 # one word per module
closure $(list "$HERE/modules") >"$BUILD/dom0-modules"
[ -s "$BUILD/dom0-modules" ] || die "no dom0 modules found"
rm -rf "$R/usr/lib/modules"
mkdir -p "$R/usr/lib/modules/$KVER"
(cd "$KX" && cpio -pdm --quiet "$R/usr" <"$BUILD/dom0-modules")
cp "$KX/lib/modules/$KVER"/modules.{builtin,builtin.modinfo,order} "$R/usr/lib/modules/$KVER/"
depmod -b "$R/usr" "$KVER"

step "domU initramfs"
D=$BUILD/domu
rm -rf "$D"
mkdir -p "$D"/{bin,sbin,lib/modules,proc,sys,dev,run,mnt,tmp}
cp "$X/bb/bin/busybox" "$D/bin/busybox"
ln -s busybox "$D/bin/sh"
cp "$X/fsck/sbin/e2fsck.static" "$D/sbin/e2fsck"
install -m 755 "$AGENT" "$D/bin/sand-lab-agent"
install -m 755 "$HERE/domu-init" "$D/init"
install -m 755 "$HERE/domu-stop" "$D/sbin/domu-stop"
# shellcheck disable=SC2046
# crc32c-intel needs SSE4.2, which the lab's CPU model lacks: the generic
# one serves
closure $(list "$HERE/domu-modules") | grep -v crc32c-intel >"$BUILD/domu-modules"
: >"$D/lib/modules/order"
while read -r f; do
	cp "$KX/$f" "$D/lib/modules/"
	basename "$f" >>"$D/lib/modules/order"
done <"$BUILD/domu-modules"
mkdir -p "$R/usr/lib/sand-lab/domu"
(cd "$D" && find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet) | gzip -6 >"$R/usr/lib/sand-lab/domu/initrd.img"
cp "$VMLINUX" "$R/usr/lib/sand-lab/domu/vmlinux.gz"

step "dom0 files"
install -m 755 "$HERE/dom0-init" "$R/init"
install -m 755 "$AGENT" "$R/usr/sbin/sand-lab-agent"
cp "$X/bb/bin/busybox" "$R/usr/bin/busybox"
echo dom0 >"$R/etc/hostname"
printf '127.0.0.1\tlocalhost dom0\n' >"$R/etc/hosts"
# xenconsoled keeps each guest's console in /var/log/xen/console/guest-NAME.log
grep -q '^XENCONSOLED_ARGS' "$R/etc/default/xen" 2>/dev/null ||
	echo 'XENCONSOLED_ARGS="--log=guest --log-dir=/var/log/xen/console"' >>"$R/etc/default/xen"
# the dom0 image is a lab box: its initiator name comes from the kernel
# command line (dom0-init writes it)
rm -f "$R/etc/iscsi/initiatorname.iscsi"
# LVM: the volume groups a dom0 makes on LUNs, without lvmetad or systemd
# units; udev makes the /dev/VG/LV links
sed -i 's/^\(\s*\)# event_activation = 1/\1event_activation = 0/' "$R/etc/lvm/lvm.conf"

step "trim"
# not needed to boot guests or attach LUNs: python (pygrub, xendomains
# helpers), perl beyond perl-base, the udev hardware database, gconv, the
# package database, locales, the host's firmware
(cd "$R" && rm -rf usr/lib/python3* usr/bin/python3* usr/lib/x86_64-linux-gnu/perl usr/share/perl \
	usr/lib/x86_64-linux-gnu/libperl.so* usr/lib/udev/hwdb.bin usr/lib/x86_64-linux-gnu/gconv \
	var/lib/dpkg var/cache/debconf var/cache/apt var/lib/apt usr/share/zoneinfo usr/lib/firmware \
	usr/share/i18n usr/share/common-licenses usr/lib/udev/hwdb.d usr/lib/xen-*/boot/xen-shim)

step "dom0.cpio (uncompressed)"
(cd "$R" && find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet) >"$OUT/dom0.cpio.tmp"
mv "$OUT/dom0.cpio.tmp" "$OUT/dom0.cpio"
ROOT_KB=$(du -sk "$R" | cut -f1)
T1=$(date +%s.%N)
{
	echo "kernel $KVER ($(wc -l <"$BUILD/dom0-modules") dom0 modules, $(wc -l <"$BUILD/domu-modules") domU modules)"
	echo "xen $(dpkg-deb -f "$(deb "xen-hypervisor-$XENVER-amd64")" Version)"
	echo "suite $SUITE"
	echo "rootfs ${ROOT_KB} KiB"
	echo "dom0.cpio $(stat -c %s "$OUT/dom0.cpio") bytes"
	echo "domu initrd.img $(stat -c %s "$R/usr/lib/sand-lab/domu/initrd.img") bytes"
	echo "agent $(sha256sum "$AGENT" | cut -d' ' -f1)"
	echo "build_seconds $(printf '%.1f' "$(echo "$T1 - $T0" | bc)")"
	echo
	echo "packages:"
	echo "$PKG_LIST"
} >"$OUT/manifest.txt"
rm -rf "$R" "$D" "$X"
step "done: $OUT (dom0.cpio $((ROOT_KB >> 10)) MiB)"
