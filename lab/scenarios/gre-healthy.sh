#!/bin/bash
# Scenario "gre-healthy": LVS-TUN with GRE encapsulation (`-i --tun-type gre`, kernel >=
# 5.3). Each request leaves the director as IPv4 director -> real server, protocol 47, a
# 4-byte GRE header (version 0, no key, protocol 0x0800), then the client's packet. Each
# real server holds the VIP/32 on gre0 (ip_gre's fallback device, rp_filter 0), keeps
# quiet about it in ARP, and answers the client directly from the VIP. rr, ten requests.
# Healthy.
. ./lib.sh
four_hosts
modprobe ip_gre || die "modprobe ip_gre failed"
in_ns director ipvsadm -A -t $VIP:80 -s rr
in_ns director ipvsadm -a -t $VIP:80 -r $RS1:80 -i --tun-type gre
in_ns director ipvsadm -a -t $VIP:80 -r $RS2:80 -i --tun-type gre
in_ns director ipvsadm -Ln
rs_gre rs1 $VIP; rs_arp rs1 $VIP $RS1; web rs1 80 rs1
rs_gre rs2 $VIP; rs_arp rs2 $VIP $RS2; web rs2 80 rs2
four_captures
curl_n client http://$VIP/ 10
four_done
