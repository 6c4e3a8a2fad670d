#!/bin/bash
# Scenario "ipv6-outer-vip": ipv6-healthy with the director's VIP added the plain way
# (`ip -6 addr add VIP/128 dev eth0`, not deprecated). Source address selection then picks
# the VIP as the outer source of the IPv6-in-IPv6 packets it sends the real servers
# (outer VIP -> RIP, inner client -> VIP). A real server holds the VIP itself, on ip6tnl0,
# and ip6_tunnel drops a tunnelled packet whose outer source is one of its own addresses:
# no SYN is answered. Found while recording ipv6-healthy on the lab's kernel (6.1).
. ./lib.sh
four_hosts_v6 plain
rs_tunnel6 rs1 $VIP6
rs_tunnel6 rs2 $VIP6
web rs1 80 rs1
web rs2 80 rs2
rr_service_v6 80
in_ns director ipvsadm -Ln
in_ns director ip -6 route get $RS16
four_captures_v6
curl_n client "http://[$VIP6]/" 4 -g
four_done
