#!/bin/bash
# mkimage.sh: build the sand appliance from Debian packages and the sand
# binary.
#
#   sudo ./mkimage.sh [--out DIR] [--cache DIR] [--sand BINARY] [--no-disk] [--refresh]
#
# Output (default out/image/):
#   vmlinuz       Debian 12's kernel (in-tree DRBD 8.4, LIO, device-mapper,
#                 virtio)
#   initrd.img    the whole system as an initramfs: a systemd rootfs that
#                 runs from RAM, /init = systemd (ESOS-style). Boot it with
#                 vmlinuz and node settings on the command line:
#                   sand.name=san1 sand.addr=10.99.0.11/24 sand.disk=/dev/vda ...
#   sand-disk.img a bootable disk for real hardware (dd it to a USB stick or
#                 a small disk): GPT, an EFI system partition with
#                 systemd-boot, the kernel and the initramfs, and a config
#                 partition SANDCFG that keeps /etc/sand (node.conf,
#                 sand.yaml, api-token) across reboots
#   cmdline       the kernel arguments every boot needs (image/cmdline)
#   manifest.txt  what went in: kernel, packages, sand version, sizes
#   sand.sha256   the sha256 of the sand binary inside
# What goes in is in image/: packages, modules, strip, cmdline (kernel
# arguments), rootfs/ (units and scripts), sand.yaml (template of
# /etc/sand/sand.yaml), node.conf.example.
#
# Downloaded packages, the kernel and the installed base tree are kept in
# the cache (default out/cache/): a rebuild with the same image/packages
# reuses the base tree and takes seconds; --refresh installs the packages
# afresh (new security updates) from the cached .debs plus what is new.
# --sand takes a sand binary built elsewhere instead of running go build;
# --no-disk skips sand-disk.img.
#
# Needs root (mmdebstrap in root mode, chroot); installs its own
# prerequisites with apt-get. One build at a time (a lock in out/).
# Environment: SUITE (bookworm), MIRROR (http://deb.debian.org/debian),
# KVER (default: the kernel linux-image-amd64 depends on), ZSTD_LEVEL (3),
# GO (the go command).
set -euo pipefail

REPO=$(cd "$(dirname "$0")" && pwd)
OUT=$REPO/out/image
CACHE=$REPO/out/cache
DISK=1
REFRESH=0
SAND_BIN=
SUITE=${SUITE:-bookworm}
MIRROR=${MIRROR:-http://deb.debian.org/debian}
ZSTD_LEVEL=${ZSTD_LEVEL:-3}

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; }
while [ $# -gt 0 ]; do
	case $1 in
	--out) OUT=$(realpath -m "$2"); shift 2 ;;
	--cache) CACHE=$(realpath -m "$2"); shift 2 ;;
	--sand) SAND_BIN=$(realpath "$2"); shift 2 ;;
	--no-disk) DISK=0; shift ;;
	--refresh) REFRESH=1; shift ;;
	-h | --help) usage; exit 0 ;;
	*) echo "mkimage.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
	esac
done

T0=$(date +%s.%N)
step() { printf 'mkimage: [%6.1fs] %s\n' "$(echo "$(date +%s.%N) - $T0" | bc)" "$*"; }
die() { echo "mkimage: $*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "needs root (mmdebstrap --mode=root, chroot, depmod into the image): run it with sudo"

# --- prerequisites -----------------------------------------------------------
need=()
for tool in mmdebstrap:mmdebstrap cpio:cpio zstd:zstd mcopy:mtools mkfs.vfat:dosfstools \
	sfdisk:fdisk mke2fs:e2fsprogs depmod:kmod bc:bc dpkg-deb:dpkg; do
	command -v "${tool%%:*}" >/dev/null || need+=("${tool#*:}")
done
if [ ${#need[@]} -gt 0 ]; then
	step "installing prerequisites: ${need[*]}"
	apt-get update -q >/dev/null
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${need[@]}" >/dev/null
fi
GO=${GO:-$(command -v go || echo /usr/local/go/bin/go)}
[ -n "$SAND_BIN" ] || [ -x "$GO" ] || die "go not found (set GO=/path/to/go, or give --sand)"

BUILD=$REPO/out/build
R=$BUILD/rootfs
mkdir -p "$REPO/out"
# out/ is its own (empty) Go module, so `go vet ./...` and `go test ./...` in
# the repository never walk the image's root file system (and its /proc
# while a build has it mounted).
[ -f "$REPO/out/go.mod" ] || printf 'module sand.invalid/out\n' >"$REPO/out/go.mod"
exec 9>"$REPO/out/.mkimage.lock"
flock 9
DEBS=$CACHE/debs
mkdir -p "$OUT" "$DEBS" "$BUILD"

# --- the sand binary ---------------------------------------------------------
SAND_VERSION=$(git -C "$REPO" describe --always --dirty 2>/dev/null || echo unknown)
if [ -n "$SAND_BIN" ]; then
	step "sand binary $SAND_BIN"
	install -m 755 "$SAND_BIN" "$BUILD/sand"
	SAND_VERSION="$SAND_VERSION (prebuilt)"
else
	step "go build sand"
	(cd "$REPO" && CGO_ENABLED=0 "$GO" build -trimpath -ldflags "-s -w" -o "$BUILD/sand" ./sand)
fi

# --- kernel and boot loader packages -----------------------------------------
# apt-get download PKG...: into the cache, refreshing the host's package
# lists once if the mirror moved on.
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
if [ -z "${KVER:-}" ]; then
	KPKG=$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
	if [ -z "$KPKG" ]; then
		apt-get update -q >/dev/null
		KPKG=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
	fi
	[ -n "$KPKG" ] || die "cannot tell which kernel linux-image-amd64 depends on"
	KVER=${KPKG#linux-image-}
fi
step "kernel $KVER, systemd-boot"
download "linux-image-$KVER" systemd-boot-efi
KX=$CACHE/kernel-$KVER
if [ ! -f "$KX/lib/modules/$KVER/modules.dep" ]; then
	rm -rf "$KX.tmp"
	mkdir -p "$KX.tmp"
	dpkg-deb -x "$(ls "$DEBS"/linux-image-"$KVER"_*.deb | tail -n1)" "$KX.tmp"
	depmod -b "$KX.tmp" "$KVER"
	rm -rf "$KX"
	mv "$KX.tmp" "$KX"
fi
BOOTX=$BUILD/systemd-boot
rm -rf "$BOOTX"
dpkg-deb -x "$(ls "$DEBS"/systemd-boot-efi_*.deb | tail -n1)" "$BOOTX"

# --- the root file system ----------------------------------------------------
# The packages installed by mmdebstrap are kept as a base tree in the cache,
# keyed by the package list and the options: a rebuild with the same list
# only copies it (--refresh fetches a fresh one, e.g. for security updates).
# The downloaded .debs are kept too, so a changed list downloads only what
# is new.
PKGS=$(sed 's/#.*//' "$REPO/image/packages" | xargs | tr ' ' ,)
MM_OPTS=(--mode=root --variant=essential --include="$PKGS" --skip=essential/unlink
	--dpkgopt='path-exclude=/usr/share/man/*'
	--dpkgopt='path-exclude=/usr/share/info/*'
	--dpkgopt='path-exclude=/usr/share/locale/*'
	--dpkgopt='path-exclude=/usr/share/doc/*'
	--dpkgopt='path-include=/usr/share/doc/*/copyright')
KEY=$(printf '%s\n' "${MM_OPTS[@]}" "$SUITE" "$MIRROR" | sha256sum | cut -c1-16)
BASE=$CACHE/base-$SUITE-$KEY
if [ $REFRESH = 1 ] || [ ! -f "$BASE.done" ]; then
	step "mmdebstrap $SUITE: $PKGS"
	rm -rf "$BASE" "$BASE.done"
	mmdebstrap "${MM_OPTS[@]}" \
		--setup-hook='mkdir -p "$1"/var/cache/apt/archives' \
		--setup-hook="sync-in $DEBS /var/cache/apt/archives/" \
		--customize-hook="sync-out /var/cache/apt/archives $DEBS" \
		"$SUITE" "$BASE" "$MIRROR" >"$BUILD/mmdebstrap.log" 2>&1 ||
		{ tail -n 30 "$BUILD/mmdebstrap.log" >&2; die "mmdebstrap failed (log: $BUILD/mmdebstrap.log)"; }
	rm -rf "$DEBS"/lock "$DEBS"/partial
	# older bases are of other package lists
	for old in "$CACHE"/base-*.done; do
		[ "$old" = "$BASE.done" ] || [ ! -e "$old" ] || rm -rf "${old%.done}" "$old"
	done
	date -u +%Y-%m-%dT%H:%M:%SZ >"$BASE.done"
else
	step "base tree from the cache ($(cat "$BASE.done"), --refresh for a fresh one)"
fi
rm -rf "$R"
cp -a "$BASE" "$R"
PKG_LIST=$(chroot "$R" dpkg-query -W -f '${Package} ${Version}\n')

step "kernel modules"
MD=$KX/lib/modules/$KVER
sel=$BUILD/modules.sel
: >"$sel"
while read -r pat; do
	pat=${pat%%#*}
	pat=$(echo "$pat" | xargs)
	[ -z "$pat" ] && continue
	found=0
	for p in "$MD"/kernel/$pat; do
		[ -e "$p" ] || continue
		found=1
		if [ -d "$p" ]; then
			(cd "$MD" && find "kernel/${p#"$MD"/kernel/}" -name '*.ko') >>"$sel"
		else
			echo "kernel/${p#"$MD"/kernel/}" >>"$sel"
		fi
	done
	[ $found = 1 ] || die "image/modules: nothing matches $pat in $KVER"
done <"$REPO/image/modules"
# modules.dep lists every module's dependencies, transitively.
awk -v sel="$sel" 'BEGIN { while ((getline m < sel) > 0) want[m] = 1 }
	{ m = $1; sub(/:$/, "", m); if (m in want) { print m; for (i = 2; i <= NF; i++) print $i } }' \
	"$MD/modules.dep" | sort -u >"$BUILD/modules.all"
mkdir -p "$R/usr/lib/modules/$KVER"
(cd "$MD" && cpio -pdm --quiet "$R/usr/lib/modules/$KVER" <"$BUILD/modules.all")
cp "$MD"/modules.builtin "$MD"/modules.builtin.modinfo "$MD"/modules.order "$R/usr/lib/modules/$KVER/"
depmod -b "$R" "$KVER"
NMOD=$(wc -l <"$BUILD/modules.all")

step "appliance files"
tar -C "$REPO/image/rootfs" --owner=0 --group=0 -c . | tar -C "$R" -x --no-same-owner --keep-directory-symlink
chmod 755 "$R"/usr/lib/sand/*
install -D -m 644 "$REPO/image/sand.yaml" "$R/usr/share/sand/sand.yaml.in"
install -D -m 644 "$REPO/image/node.conf.example" "$R/usr/share/sand/node.conf.example"
install -D -m 755 "$BUILD/sand" "$R/usr/sbin/sand"
mkdir -p "$R/etc/sand" "$R/var/lib/sand"
echo sand >"$R/etc/hostname"
printf '127.0.0.1\tlocalhost\n::1\t\tlocalhost ip6-localhost ip6-loopback\n' >"$R/etc/hosts"
: >"$R/etc/resolv.conf"
ln -sfn /usr/lib/systemd/systemd "$R/init"
systemctl --root="$R" --quiet set-default multi-user.target
systemctl --root="$R" --quiet enable sand.service sand-node-setup.service sand-storage.service sand-report.service
# sand drives the target and DRBD itself; the rest is housekeeping a RAM
# system does not need (and time a slow boot can spare).
systemctl --root="$R" --quiet mask tgt.service drbd.service e2scrub_reap.service e2scrub_all.timer \
	fstrim.timer dpkg-db-backup.timer systemd-firstboot.service apt-daily.timer apt-daily-upgrade.timer
cat >"$R/usr/share/sand/build-info" <<EOF
sand $SAND_VERSION
kernel $KVER
suite $SUITE
built $(date -u +%Y-%m-%dT%H:%M:%SZ)
EOF

step "strip"
while read -r pat; do
	pat=${pat%%#*}
	pat=$(echo "$pat" | xargs)
	[ -z "$pat" ] && continue
	case $pat in /* | *..*) die "image/strip: $pat must be relative, without .." ;; esac
	# shellcheck disable=SC2086 # the glob is the point
	rm -rf "${R:?}"/$pat
done <"$REPO/image/strip"

step "initramfs (zstd -$ZSTD_LEVEL)"
(cd "$R" && find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet | zstd -q -T0 -"$ZSTD_LEVEL") >"$OUT/initrd.img.tmp"
mv "$OUT/initrd.img.tmp" "$OUT/initrd.img"
cp "$KX/boot/vmlinuz-$KVER" "$OUT/vmlinuz"
# the kernel arguments of every boot: the boot entry below has them, and
# the lab boots vmlinuz with them
KARGS=$(sed 's/#.*//' "$REPO/image/cmdline" | xargs)
[ -n "$KARGS" ] || die "image/cmdline: no kernel arguments"
echo "$KARGS" >"$OUT/cmdline"
# which sand is inside: the lab rebuilds the image when its sand differs
sha256sum "$BUILD/sand" | cut -d' ' -f1 >"$OUT/sand.sha256"

# --- the disk image for real hardware ----------------------------------------
if [ $DISK = 1 ]; then
	step "disk image: GPT, ESP with systemd-boot, SANDCFG"
	EFI=$BOOTX/usr/lib/systemd/boot/efi/systemd-bootx64.efi
	[ -f "$EFI" ] || die "systemd-bootx64.efi not in systemd-boot-efi"
	payload=$(($(stat -c %s "$OUT/vmlinuz") + $(stat -c %s "$OUT/initrd.img")))
	# room for two kernels + initramfs (an upgrade writes the new pair
	# before removing the old one), at least 256 MiB
	esp_mib=$(((payload * 2 >> 20) + 32))
	[ $esp_mib -lt 256 ] && esp_mib=256
	cfg_mib=64
	esp=$BUILD/esp.img cfg=$BUILD/cfg.img
	rm -f "$esp" "$cfg"
	mkfs.vfat -F 32 -n SANDESP -C "$esp" $((esp_mib * 1024)) >/dev/null
	mmd -i "$esp" ::/EFI ::/EFI/BOOT ::/EFI/systemd ::/loader ::/loader/entries ::/sand
	mcopy -i "$esp" "$EFI" ::/EFI/BOOT/BOOTX64.EFI
	mcopy -i "$esp" "$EFI" ::/EFI/systemd/systemd-bootx64.efi
	mcopy -i "$esp" "$OUT/vmlinuz" ::/sand/vmlinuz
	mcopy -i "$esp" "$OUT/initrd.img" ::/sand/initrd.img
	printf 'default sand.conf\ntimeout 3\neditor no\nconsole-mode keep\n' >"$BUILD/loader.conf"
	mcopy -i "$esp" "$BUILD/loader.conf" ::/loader/loader.conf
	cat >"$BUILD/sand.conf" <<EOF
title   sand appliance ($SAND_VERSION, kernel $KVER)
linux   /sand/vmlinuz
initrd  /sand/initrd.img
options console=tty0 console=ttyS0,115200 $KARGS panic=10 sand.cfg=LABEL=SANDCFG
EOF
	mcopy -i "$esp" "$BUILD/sand.conf" ::/loader/entries/sand.conf
	CFGDIR=$BUILD/cfg
	rm -rf "$CFGDIR"
	mkdir -p "$CFGDIR"
	sed 's/^# sand node settings.*/# sand node settings of this box: uncomment and fill in, then boot./' \
		"$REPO/image/node.conf.example" >"$CFGDIR/node.conf"
	mke2fs -q -t ext4 -L SANDCFG -d "$CFGDIR" -E root_owner=0:0 "$cfg" ${cfg_mib}M >/dev/null
	DISKIMG=$OUT/sand-disk.img
	rm -f "$DISKIMG.tmp"
	truncate -s $((1 + esp_mib + cfg_mib + 1))M "$DISKIMG.tmp"
	sfdisk --quiet "$DISKIMG.tmp" <<EOF
label: gpt
start=2048, size=$((esp_mib * 2048)), type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B, name="SANDESP"
size=$((cfg_mib * 2048)), type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, name="SANDCFG"
EOF
	dd if="$esp" of="$DISKIMG.tmp" bs=1M seek=1 conv=notrunc,sparse status=none
	dd if="$cfg" of="$DISKIMG.tmp" bs=1M seek=$((1 + esp_mib)) conv=notrunc,sparse status=none
	mv "$DISKIMG.tmp" "$DISKIMG"
	rm -f "$esp" "$cfg"
fi

# --- report ------------------------------------------------------------------
ROOT_KB=$(du -sk "$R" | cut -f1)
T1=$(date +%s.%N)
{
	echo "sand $SAND_VERSION"
	echo "kernel $KVER ($NMOD modules)"
	echo "suite $SUITE"
	echo "rootfs ${ROOT_KB} KiB unpacked"
	echo "initrd.img $(stat -c %s "$OUT/initrd.img") bytes"
	echo "vmlinuz $(stat -c %s "$OUT/vmlinuz") bytes"
	[ $DISK = 1 ] && echo "sand-disk.img $(stat -c %s "$OUT/sand-disk.img") bytes ($(du -k "$OUT/sand-disk.img" | cut -f1) KiB allocated)"
	echo "build_seconds $(printf '%.1f' "$(echo "$T1 - $T0" | bc)")"
	echo
	echo "packages:"
	echo "$PKG_LIST"
} >"$OUT/manifest.txt"
step "done"
mib() { echo "$(($1 >> 20)).$(((($1 & 1048575) * 10) >> 20)) MiB"; }
echo "  kernel      $OUT/vmlinuz  $(mib "$(stat -c %s "$OUT/vmlinuz")")  ($KVER, $NMOD modules)"
echo "  initramfs   $OUT/initrd.img  $(mib "$(stat -c %s "$OUT/initrd.img")")  (rootfs $((ROOT_KB >> 10)) MiB unpacked, runs from RAM)"
[ $DISK = 1 ] && echo "  disk image  $OUT/sand-disk.img  $(mib "$(stat -c %s "$OUT/sand-disk.img")") ($(du -m "$OUT/sand-disk.img" | cut -f1) MiB allocated)"
printf '  build time  %.1f s\n' "$(echo "$T1 - $T0" | bc)"
