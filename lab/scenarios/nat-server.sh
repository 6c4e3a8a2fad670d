#!/bin/bash
# Scenario "nat-server": a real server added in NAT mode (-m) among tunnelled ones. rr over
# rs1 added with -i and rs2 added with -m; both real servers are set up for LVS-TUN as in
# the tutorial. With -m the director rewrites the destination to rs2's own address and
# sends the packet unwrapped; rs2 answers from its own address (its route to the client
# does not go back through the director, which would undo the rewrite), so the client gets
# a SYN-ACK from an address it never called and answers it with a reset.
. ./lib.sh
four_hosts
in_ns director ipvsadm -A -t $VIP:80 -s rr
in_ns director ipvsadm -a -t $VIP:80 -r $RS1:80 -i
in_ns director ipvsadm -a -t $VIP:80 -r $RS2:80 -m      # the fault
in_ns director ipvsadm -Ln
rs_tunnel rs1 $VIP; rs_arp rs1 $VIP $RS1; web rs1 80 rs1
rs_tunnel rs2 $VIP; rs_arp rs2 $VIP $RS2; web rs2 80 rs2
four_captures
curl_n client http://$VIP/ 10 --connect-timeout 2
four_done
