#!/bin/bash
# Scenario "gue-no-fou": GUE tunnels (`-i --tun-type gue --tun-port 6080`) to rs1 and rs2,
# but rs2 was set up for IP-in-IP only: the VIP on tunl0 and no `ip fou add port 6080 gue`.
# Nothing listens on UDP 6080 there, so rs2 drops every wrapped request and answers the
# director with ICMP port unreachable; its clients' connections time out. rs1 is healthy.
# rr, ten requests.
. ./lib.sh
four_hosts
modprobe fou || die "modprobe fou failed"
in_ns director ipvsadm -A -t $VIP:80 -s rr
in_ns director ipvsadm -a -t $VIP:80 -r $RS1:80 -i --tun-type gue --tun-port 6080
in_ns director ipvsadm -a -t $VIP:80 -r $RS2:80 -i --tun-type gue --tun-port 6080
rs_gue rs1 6080                      # rs2: no fou port, the fault
rs_tunnel rs1 $VIP; rs_arp rs1 $VIP $RS1; web rs1 80 rs1
rs_tunnel rs2 $VIP; rs_arp rs2 $VIP $RS2; web rs2 80 rs2
four_captures
curl_n client http://$VIP/ 10 --connect-timeout 2
four_done
