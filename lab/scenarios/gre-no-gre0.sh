#!/bin/bash
# Scenario "gre-no-gre0": GRE tunnels (`-i --tun-type gre`) to rs1 and rs2; rs1 holds the
# VIP on gre0, but rs2 was set up for IP-in-IP (the VIP on tunl0, gre0 left down), so its
# kernel has no GRE tunnel to hand the wrapped requests to and drops them (the ip_gre
# module is loaded: gre0 exists, down). Its clients' connections time out. rr, ten
# requests.
. ./lib.sh
four_hosts
modprobe ip_gre || die "modprobe ip_gre failed"
in_ns director ipvsadm -A -t $VIP:80 -s rr
in_ns director ipvsadm -a -t $VIP:80 -r $RS1:80 -i --tun-type gre
in_ns director ipvsadm -a -t $VIP:80 -r $RS2:80 -i --tun-type gre
rs_gre rs1 $VIP; rs_arp rs1 $VIP $RS1; web rs1 80 rs1
rs_tunnel rs2 $VIP; rs_arp rs2 $VIP $RS2; web rs2 80 rs2   # the fault: tunl0, not gre0
four_captures
curl_n client http://$VIP/ 10 --connect-timeout 2
four_done
