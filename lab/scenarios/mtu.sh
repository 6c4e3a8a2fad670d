#!/bin/bash
# Scenario "mtu": every link has MTU 1500 and the tunnel adds 20 bytes. The client POSTs
# 6000 bytes; its full-size segments (1500 bytes, DF) cannot be encapsulated, so the
# director answers "ICMP fragmentation needed, MTU 1480" from the VIP and the client
# retransmits smaller segments. The route cache keeps the lower MTU, so only the first
# connection sees the ICMP. Everything is configured as in the tutorial.
. ./lib.sh
four_hosts
rr_service -t 80
rs_tunnel rs1 $VIP; rs_arp rs1 $VIP $RS1; web rs1 80 rs1
rs_tunnel rs2 $VIP; rs_arp rs2 $VIP $RS2; web rs2 80 rs2
head -c 6000 /dev/zero | tr '\0' x > /tmp/body
four_captures
curl_n client http://$VIP/cgi-bin/post 3 --data-binary @/tmp/body
four_done
