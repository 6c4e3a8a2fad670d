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
cat > "$OUT/keepalived.conf" <<CONF
! keepalived.conf of the lab's director (scenario "health-blackhole")
global_defs {
    router_id lab_director
}

virtual_server $VIP 80 {
    delay_loop 3
    lvs_sched wrr
    lvs_method TUN
    protocol TCP

    real_server $RS1 80 {
        weight 2
        TCP_CHECK {
            connect_timeout 2
        }
    }
    real_server $RS2 80 {
        weight 1
        TCP_CHECK {
            connect_timeout 2
        }
    }
}
CONF
rs_tunnel rs1 $VIP; rs_arp rs1 $VIP $RS1; web rs1 80 rs1
in_ns rs2 ip link set tunl0 up                  # the fault: no VIP on rs2's tunl0
sysctl_ns rs2 net.ipv4.conf.tunl0.rp_filter 0
rs_arp rs2 $VIP $RS2; web rs2 80 rs2
mkdir -p /run/keepalived /var/run
in_ns director keepalived --dont-fork --log-console --check --use-file="$OUT/keepalived.conf" \
    --pid=/tmp/ka.pid --checkers_pid=/tmp/ka-check.pid > /tmp/keepalived.log 2>&1 &
KA=$!
for i in $(seq 50); do
    [ "$(in_ns director ipvsadm -Ln | grep -c -- '-> 10.7.0.1[12]:80')" = 2 ] && break
    sleep 0.2
done
in_ns director ipvsadm -Ln
[ "$(in_ns director ipvsadm -Ln | grep -c -- '-> 10.7.0.1[12]:80')" = 2 ] \
    || { cat /tmp/keepalived.log; die "keepalived did not set up the service"; }
four_captures
curl_n client http://$VIP/ 9
sleep 3   # one more round of health checks in the captures
four_done
in_ns director ipvsadm -Ln       # rs2 still in the rules, weight 1 (also in rules.txt)
kill $KA; wait $KA 2>/dev/null
rm -f /tmp/ka.pid /tmp/ka-check.pid
cat /tmp/keepalived.log
