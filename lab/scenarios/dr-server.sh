#!/bin/bash
# Scenario "dr-server": a real server added in the wrong forwarding mode. rr over rs1 added
# with -i (tunnel) and rs2 added with -g (direct routing); both real servers are set up for
# LVS-TUN as in the tutorial (VIP/32 on tunl0, rp_filter 0 on tunl0, arptables). With -g
# the director sends the client's frame unchanged (destination the VIP) to rs2's MAC: no
# IPIP header. rs2 owns the VIP (on tunl0), so it may accept and answer the bare packet.
. ./lib.sh
four_hosts
in_ns director ipvsadm -A -t $VIP:80 -s rr
in_ns director ipvsadm -a -t $VIP:80 -r $RS1:80 -i
in_ns director ipvsadm -a -t $VIP:80 -r $RS2:80 -g      # the fault
in_ns director ipvsadm -Ln
rs_tunnel rs1 $VIP; rs_arp rs1 $VIP $RS1; web rs1 80 rs1
rs_tunnel rs2 $VIP; rs_arp rs2 $VIP $RS2; web rs2 80 rs2
four_captures
curl_n client http://$VIP/ 10
four_done
