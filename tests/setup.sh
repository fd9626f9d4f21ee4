#!/usr/bin/env bash
# Installs what sand's build, lab and test tiers need on a fresh Debian 12
# machine: Debian packages and a Go toolchain. Safe to run again.
set -euo pipefail

GO_VERSION=1.26.8
PACKAGES=(
  # netns tier: iSCSI target and initiators, namespaces
  tgt libiscsi-bin qemu-utils qemu-block-extra iproute2 kmod nftables
  # pools and the appliance image / VM lab
  lvm2 thin-provisioning-tools qemu-system-x86 mmdebstrap debootstrap cpio zstd mtools dosfstools fdisk ovmf
  # the lab's Xen dom0 (tests/lab/xen/mkdom0.sh)
  bc xz-utils gzip
  # browser tests of the web UI
  chromium chromium-driver
  # build
  git make gcc ca-certificates curl unzip
)

if [ "$(id -u)" != 0 ]; then
  echo "tests/setup.sh: run as root (it installs packages; the test tiers need namespaces)" >&2
  exit 1
fi

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Go: the machine's /usr/local/go if new enough, else the toolchain from
# the Go module proxy (the golang.org/toolchain module the go command itself
# downloads toolchains from).
have_go() {
  command -v go >/dev/null && go version | grep -Eq "go1\.(2[6-9]|[3-9][0-9])"
}
export PATH=/usr/local/go/bin:$PATH
if ! have_go; then
  echo "setup: installing Go ${GO_VERSION}"
  tmp=$(mktemp -d)
  curl -fsSL -o "$tmp/go.zip" \
    "https://proxy.golang.org/golang.org/toolchain/@v/v0.0.1-go${GO_VERSION}.linux-amd64.zip"
  rm -rf /usr/local/go
  unzip -q "$tmp/go.zip" -d "$tmp"
  mv "$tmp/golang.org/toolchain@v0.0.1-go${GO_VERSION}.linux-amd64" /usr/local/go
  # Module zips carry no file modes.
  chmod -R a+x /usr/local/go/bin /usr/local/go/pkg/tool
  rm -rf "$tmp"
  have_go
fi
go version
