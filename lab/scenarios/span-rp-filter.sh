#!/bin/bash
# Scenario "span-rp-filter": the rp-filter deployment (strict rp_filter on rs2's tunl0: the
# tunnelled requests arrive and rs2 drops them) seen from a mirror port as well. Besides the
# four per-host captures, br0 itself is captured in the root namespace: in promiscuous mode
# the bridge hands every frame it receives on any port up to br0 once, as a SPAN port would
# (client -> VIP, the director's IPIP packets to both real servers, rs1's replies).
. ./lib.sh
MAC_BR=02:00:00:07:00:fe
four_hosts
ip link set br0 address $MAC_BR
ip link set br0 promisc on
no_offloads - br0
rr_service -t 80
rs_tunnel rs1 $VIP; rs_arp rs1 $VIP $RS1; web rs1 80 rs1
rs_tunnel rs2 $VIP; rs_arp rs2 $VIP $RS2; web rs2 80 rs2
sysctl_ns rs2 net.ipv4.conf.all.rp_filter 1     # the fault
sysctl_ns rs2 net.ipv4.conf.tunl0.rp_filter 1
four_captures
capture - br0 span.pcap
note_host span.pcap br0 mirror $MAC_BR br0 ethernet $DIR_IP,$RS1,$RS2,$CLIENT $VIP director,rs1,rs2,client
curl_n client http://$VIP/ 10
four_done
