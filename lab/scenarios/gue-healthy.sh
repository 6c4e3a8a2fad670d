#!/bin/bash
# Scenario "gue-healthy": LVS-TUN with GUE encapsulation (kernel >= 5.2). The director
# schedules 10.7.0.100:80 round robin over rs1 and rs2 added with
# `-i --tun-type gue --tun-port 6080`: each request leaves it as UDP director -> real
# server port 6080 carrying a 4-byte GUE header and the client's packet. Each real server
# decapsulates with `ip fou add port 6080 gue` (the inner packet reaches tunl0, where the
# VIP is, as in the tutorial) and answers the client directly from the VIP. Ten requests.
# Healthy, with the rules (which say gue and the port) and without them (the traffic does).
. ./lib.sh
four_hosts
modprobe fou || die "modprobe fou failed"
in_ns director ipvsadm -A -t $VIP:80 -s rr
in_ns director ipvsadm -a -t $VIP:80 -r $RS1:80 -i --tun-type gue --tun-port 6080
in_ns director ipvsadm -a -t $VIP:80 -r $RS2:80 -i --tun-type gue --tun-port 6080
in_ns director ipvsadm -Ln
for rs in rs1 rs2; do rs_gue $rs 6080; done
rs_tunnel rs1 $VIP; rs_arp rs1 $VIP $RS1; web rs1 80 rs1
rs_tunnel rs2 $VIP; rs_arp rs2 $VIP $RS2; web rs2 80 rs2
four_captures
curl_n client http://$VIP/ 10
four_done
