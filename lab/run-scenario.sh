#!/bin/bash
# Record scenarios: boot the lab VM once with the scenarios on its first disk, run them
# one after the other (each in a fresh set of namespaces), collect what they wrote to the
# second disk, and put each into fixtures/<name>/ (the fixture's README.md, written by
# hand, is kept). One boot for several scenarios saves minutes under software emulation.
#
# Usage: lab/run-scenario.sh NAME [NAME...]   (lab/scenarios/NAME.sh; lab/build-vm.sh first)
# FIXTURES=DIR puts the results under DIR instead of fixtures/ (to compare a re-recording).
set -euo pipefail

LAB="$(cd "$(dirname "$0")" && pwd)"
BUILD="$LAB/build"
FIXTURES="${FIXTURES:-$LAB/../fixtures}"
[ $# -ge 1 ] || { echo "usage: $0 NAME [NAME...]" >&2; exit 2; }
[ -f "$BUILD/initrd.gz" ] || { echo "build the VM first: lab/build-vm.sh" >&2; exit 2; }

RUN="$BUILD/run-$1"
rm -rf "$RUN" && mkdir -p "$RUN/in" "$RUN/out"
cp "$LAB/guest/lib.sh" "$LAB/guest/udp.py" "$LAB/guest/sctp.py" "$LAB/guest/hold.py" \
    "$LAB/guest/failover.sh" "$LAB/guest/reuse.py" "$LAB/guest/syn-reuse.sh" "$RUN/in/"
for name in "$@"; do
    [ -f "$LAB/scenarios/$name.sh" ] || { echo "no scenario $name" >&2; exit 2; }
    cp "$LAB/scenarios/$name.sh" "$RUN/in/"
done
echo "$@" > "$RUN/in/scenarios"
# Scenarios in, results out: two raw disks, each holding a plain tar.
tar -cf "$RUN/in.img" -C "$RUN/in" .
truncate -s 256M "$RUN/out.img"

# No network device: the lab's network lives inside the guest. ipv6.disable=1 keeps the
# captures free of router solicitations and MLD reports, except for the IPv6 scenarios
# (ipv6-*), which boot on their own with IPv6 on.
IPV6=ipv6.disable=1
case " $* " in
    *" ipv6-"*)
        for name in "$@"; do
            case "$name" in
                ipv6-*) ;;
                *) echo "IPv6 scenarios boot apart: record $name in another run" >&2; exit 2 ;;
            esac
        done
        IPV6= ;;
esac
timeout 3600 qemu-system-x86_64 -accel tcg,thread=multi -cpu max -m 2048 -smp 2 \
    -nographic -no-reboot -nic none \
    -kernel "$BUILD/vmlinuz" -initrd "$BUILD/initrd.gz" \
    -append "console=ttyS0 quiet $IPV6 panic=-1 rdinit=/init" \
    -drive "file=$RUN/in.img,format=raw,if=virtio" \
    -drive "file=$RUN/out.img,format=raw,if=virtio" > "$RUN/console.log" 2>&1 || true

tar -xf "$RUN/out.img" -C "$RUN/out"
status=0
for name in "$@"; do
    if ! grep -q "lab: scenario exit 0" "$RUN/out/$name/guest.log" 2>/dev/null; then
        echo "scenario $name failed; see $RUN/console.log" >&2
        status=1
        continue
    fi
    FIX="$FIXTURES/$name"
    mkdir -p "$FIX"
    find "$FIX" -mindepth 1 ! -name README.md -delete
    cp -r "$RUN/out/$name/." "$FIX/"
    mv "$FIX/guest.log" "$BUILD/guest-$name.log"
    ls -l "$FIX"
done
exit $status
