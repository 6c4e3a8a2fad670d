#!/bin/bash
# Scenario "not-listening-tcp": rs2 is configured for the tunnel but runs no web server.
# It answers each SYN that reaches it with a RST from VIP:80; the client's curl fails at
# once ("connection refused").
. ./lib.sh
four_hosts
rr_service -t 80
rs_tunnel rs1 $VIP; rs_arp rs1 $VIP $RS1; web rs1 80 rs1
rs_tunnel rs2 $VIP; rs_arp rs2 $VIP $RS2           # the fault: no web server
four_captures
curl_n client http://$VIP/ 6
four_done
