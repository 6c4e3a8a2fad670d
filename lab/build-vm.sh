#!/bin/bash
# Build the lab VM: a Debian kernel and an initramfs root filesystem that holds
# everything a scenario needs (ipvsadm, keepalived, tcpdump, iproute2, arptables, curl,
# busybox...).
#
# Why a VM: the capturing host has no IPVS and no ipip module, and KVM fails under
# nesting, so the lab boots a stock Debian kernel under qemu's software emulation (TCG).
# Hosts of the LVS lab are network namespaces inside that one guest kernel.
#
# Usage: lab/build-vm.sh          (as root; results in lab/build/, gitignored)
set -euo pipefail

LAB="$(cd "$(dirname "$0")" && pwd)"
BUILD="$LAB/build"
MIRROR="${MIRROR:-http://deb.debian.org/debian}"
SUITE=bookworm

# Host tools: qemu (TCG), debootstrap for the guest root, cpio to pack it,
# tshark for editcap/mergecap (format variants).
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq qemu-system-x86 debootstrap cpio tshark >/dev/null

mkdir -p "$BUILD"
cd "$BUILD"

# The kernel: the image package that linux-image-amd64 currently depends on.
KPKG="$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')"
KVER="${KPKG#linux-image-}"
echo "kernel package: $KPKG"
if [ ! -d "kernel/lib/modules/$KVER" ]; then
    rm -rf kernel && mkdir kernel
    (cd kernel && apt-get download "$KPKG" && dpkg -x ./*.deb .)
fi
cp "kernel/boot/vmlinuz-$KVER" vmlinuz

# The root filesystem. minbase keeps it small; the initramfs is unpacked into RAM.
if [ ! -x rootfs/usr/sbin/ipvsadm ] || [ ! -x rootfs/usr/sbin/keepalived ]; then
    rm -rf rootfs
    debootstrap --variant=minbase \
        --include=ipvsadm,tcpdump,iproute2,arptables,iptables,curl,busybox,kmod,python3-minimal,ethtool,keepalived \
        "$SUITE" rootfs "$MIRROR"
fi

# Kernel modules: only the trees the lab loads from (net, virtio, block, crypto, lib);
# the GPU, sound, wireless, media... drivers and protocol families only bloat the initramfs.
rm -rf "rootfs/lib/modules"
mkdir -p "rootfs/lib/modules"
cp -a "kernel/lib/modules/$KVER" "rootfs/lib/modules/"
KMOD="rootfs/lib/modules/$KVER/kernel"
for d in "$KMOD"/*; do
    case "$(basename "$d")" in
        net|drivers|crypto|lib|arch) ;;
        *) rm -rf "$d" ;;
    esac
done
for d in "$KMOD"/drivers/*; do
    case "$(basename "$d")" in
        net|virtio|block) ;;
        *) rm -rf "$d" ;;
    esac
done
for d in "$KMOD"/net/*; do
    case "$(basename "$d")" in
        core|ipv4|ipv6|netfilter|bridge|802|llc|sched|sctp) ;;
        *) rm -rf "$d" ;;
    esac
done
rm -rf "$KMOD"/drivers/net/{wireless,ethernet,usb,can,wwan,ieee802154,phy,fddi,hamradio,arcnet,plip,slip,ppp,team,bonding}
chroot rootfs depmod -a "$KVER"

# Trim what a scenario never needs.
rm -rf rootfs/usr/share/{doc,man,locale,info} rootfs/var/cache/apt/* rootfs/var/lib/apt/lists/*

# /init of the initramfs, and the scenario helpers baked into the image.
install -m 0755 "$LAB/guest/init" rootfs/init

# Pack the initramfs (newc cpio, gzip).
(cd rootfs && find . -print0 | cpio --null -o -H newc --quiet) | gzip -1 > initrd.gz
echo "$KVER" > kernel-version
ls -lh vmlinuz initrd.gz
