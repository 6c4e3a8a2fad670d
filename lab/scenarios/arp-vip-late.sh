#!/bin/bash
# Scenario "arp-vip-late": rs2 starts correctly configured (arptables hide the VIP); six
# requests go through the director as they should. Then rs2 loses its arptables rules (as
# after a reboot that did not restore them) and the client's neighbour cache is flushed,
# so it asks for the VIP again: rs2 answers too, its answer wins, and the last six
# requests go straight to rs2, bypassing the director.
. ./lib.sh
four_hosts
rr_service -t 80
rs_tunnel rs1 $VIP; rs_arp rs1 $VIP $RS1; web rs1 80 rs1
rs_tunnel rs2 $VIP; rs_arp rs2 $VIP $RS2; web rs2 80 rs2
four_captures
curl_n client http://$VIP/ 6
in_ns client ip neigh show
in_ns rs2 arptables -F                         # the fault appears
in_ns client ip neigh flush all
curl_n client http://$VIP/ 6
in_ns client ip neigh show
four_done
