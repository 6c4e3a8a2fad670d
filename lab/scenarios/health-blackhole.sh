#!/bin/bash
# Scenario "health-blackhole": the keepalived set-up of scenario "keepalived" (wrr, rs1
# weight 2, rs2 weight 1, a TCP_CHECK every 3 s to each real server's own address on port 80),
# but rs2's tunl0 is up without the VIP, as after a reboot that did not restore it. Its web
# server listens on 0.0.0.0:80, so keepalived's checks, which connect to 10.7.0.12:80
# directly (not through the tunnel), keep succeeding and rs2 keeps its weight, while every
# client connection the director tunnels to rs2 is decapsulated, found addressed to an address
# rs2 does not own, and dropped: the "DSR blackhole" (keepalived#306, dpvs#870, katran#241).
. ./lib.sh
four_hosts
keepalived_tcp_conf health-blackhole
rs_tunnel rs1 $VIP; rs_arp rs1 $VIP $RS1; web rs1 80 rs1
in_ns rs2 ip link set tunl0 up                  # the fault: no VIP on rs2's tunl0
sysctl_ns rs2 net.ipv4.conf.tunl0.rp_filter 0
rs_arp rs2 $VIP $RS2; web rs2 80 rs2
keepalived_start
four_captures
curl_n client http://$VIP/ 9
sleep 3   # one more round of health checks in the captures
four_done
in_ns director ipvsadm -Ln       # rs2 still in the rules, weight 1 (also in rules.txt)
kill $KA; wait $KA 2>/dev/null
rm -f /tmp/ka.pid /tmp/ka-check.pid
cat /tmp/keepalived.log
