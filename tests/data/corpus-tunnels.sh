#!/usr/bin/env bash
# Which captures of ../shared/corpus carry tunnelled packets, as tshark (Wireshark) dissects
# them: for each file of MANIFEST.tsv, the number of frames whose protocol stack has an IP
# header inside another, with at most IPv6 hop-by-hop, destination-options or fragment headers
# between them (ip:ip, ip:ipv6, ipv6:ip, ipv6:ipv6, ipv6:ipv6.dstopts:ipv6: IP-in-IP, 6in4,
# 4in6, 6in6, as IPVS and ip6tnl write them), or a GRE or GUE header. An ICMP error quoting a
# packet (icmp:ip) is no tunnel; neither is IP behind an AH (IPsec tunnel mode) or a routing
# header (SRv6), which IPVS never writes. tests/corpus.rs takes a file with 0 such frames as
# tunnel-free: lvscheck must never FAIL a verification on it.
#
#   tests/data/corpus-tunnels.sh ../shared/corpus > tests/data/corpus-tunnels.tsv
set -euo pipefail
corpus=${1:?usage: corpus-tunnels.sh CORPUS_DIR}
printf 'file\ttunnel_frames\ttshark_frames\n'
tail -n +2 "$corpus/MANIFEST.tsv" | cut -f1 | while IFS= read -r f; do
  protos=$(timeout 60 tshark -n -r "$corpus/$f" -T fields -e frame.protocols 2>/dev/null || true)
  frames=$(printf '%s' "$protos" | grep -c . || true)
  tunnels=$(printf '%s\n' "$protos" | grep -cE '(^|:)(ip|ipv6)(:ipv6\.(hopopts|dstopts|fraghdr))*:(ip|ipv6)(:|$)|(^|:)(gre|gue)(:|$)' || true)
  printf '%s\t%s\t%s\n' "$f" "$tunnels" "$frames"
done
