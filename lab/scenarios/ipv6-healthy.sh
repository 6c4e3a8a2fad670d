#!/bin/bash
# Scenario "ipv6-healthy": LVS-TUN for an IPv6 service. The director schedules
# [2001:db8:7::100]:80 round robin over rs1 and rs2 with -i: each request leaves it wrapped
# IPv6-in-IPv6 (outer director -> real server, next header 41, inner client -> VIP); each
# real server holds the VIP on ip6tnl0 and answers the client directly from the VIP; the
# director's VIP is deprecated (preferred_lft 0) so that it is never the outer source. Ten
# requests from the client. Healthy.
. ./lib.sh
four_hosts_v6
rs_tunnel6 rs1 $VIP6
rs_tunnel6 rs2 $VIP6
web rs1 80 rs1
web rs2 80 rs2
rr_service_v6 80
in_ns director ipvsadm -Ln
four_captures_v6
curl_n client "http://[$VIP6]/" 10 -g
four_done
