#!/bin/bash
# Scenario "keepalived": the director's IPVS rules are made by keepalived, as on most
# production directors, from keepalived.conf (shipped beside the captures): one
# virtual_server 10.7.0.100 80, lvs_sched wrr, lvs_method TUN, rs1 weight 2 and rs2
# weight 1, each with a TCP_CHECK that connects to the real server's own address on port
# 80 every 3 s (direct, not through the tunnel: the health checks are in the captures).
# Twelve requests. Healthy.
. ./lib.sh
four_hosts
keepalived_tcp_conf keepalived
rs_tunnel rs1 $VIP; rs_arp rs1 $VIP $RS1; web rs1 80 rs1
rs_tunnel rs2 $VIP; rs_arp rs2 $VIP $RS2; web rs2 80 rs2
keepalived_start
four_captures
curl_n client http://$VIP/ 12
sleep 3   # one more round of health checks in the captures
four_done
kill $KA; wait $KA 2>/dev/null
cat /tmp/keepalived.log
