#!/bin/bash
# Scenario "ipv6-nd-vip": ipv6-healthy with rs2 holding the VIP on eth0 as well as on
# ip6tnl0, as someone copying an IPv4 recipe without its arptables rules might: rs2 then
# answers the client's neighbour solicitation for the VIP (a Neighbor Advertisement with its
# own MAC), the IPv6 form of the ARP fault. Whichever advertisement reaches the client first
# decides where its packets for the VIP go.
. ./lib.sh
four_hosts_v6
rs_tunnel6 rs1 $VIP6
rs_tunnel6 rs2 $VIP6
in_ns rs2 ip -6 addr add "$VIP6/128" dev eth0 nodad
web rs1 80 rs1
web rs2 80 rs2
rr_service_v6 80
in_ns director ipvsadm -Ln
four_captures_v6
curl_n client "http://[$VIP6]/" 10 -g
four_done
