#!/bin/bash
# Scenario "reply-via-director": rs2 routes its replies to the client through the director
# (a host route via the director's address). The replies, with the VIP as source, reach the
# director's MAC; the director drops them (a packet from its own address, and it does not
# forward), so the client never sees them and retransmits.
. ./lib.sh
four_hosts
rr_service -t 80
rs_tunnel rs1 $VIP; rs_arp rs1 $VIP $RS1; web rs1 80 rs1
rs_tunnel rs2 $VIP; rs_arp rs2 $VIP $RS2; web rs2 80 rs2
in_ns rs2 ip route add $CLIENT/32 via $DIR_IP    # the fault
four_captures
curl_n client http://$VIP/ 4
four_done
