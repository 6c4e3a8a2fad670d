#!/bin/bash
# Re-record every fixture: build the VM if needed, run every scenario, then derive the
# format variants. Takes a while under software emulation (a few minutes per scenario).
set -euo pipefail
LAB="$(cd "$(dirname "$0")" && pwd)"
[ -f "$LAB/build/initrd.gz" ] || "$LAB/build-vm.sh"
for s in tutorial wrr arp-vip rp-filter no-vip reply-via-director not-listening-tcp \
         not-listening-udp udp-wildcard mtu wlc-long sh-clients persistence; do
    echo "== $s"
    "$LAB/run-scenario.sh" "$s"
done
"$LAB/make-variants.sh"
