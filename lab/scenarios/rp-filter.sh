#!/bin/bash
# Scenario "rp-filter": rs2 runs strict reverse-path filtering on tunl0 (rp_filter=1).
# The decapsulated request comes from the client, whose route leaves by eth0, so rs2 drops
# it: rs2 receives the IPIP packets and never answers; the client retransmits its SYN.
. ./lib.sh
four_hosts
rr_service -t 80
rs_tunnel rs1 $VIP; rs_arp rs1 $VIP $RS1; web rs1 80 rs1
rs_tunnel rs2 $VIP; rs_arp rs2 $VIP $RS2; web rs2 80 rs2
sysctl_ns rs2 net.ipv4.conf.all.rp_filter 1     # the fault
sysctl_ns rs2 net.ipv4.conf.tunl0.rp_filter 1
four_captures
curl_n client http://$VIP/ 4
four_done
