#!/bin/bash
# Scenario "keepalived": the director's IPVS rules are made by keepalived, as on most
# production directors, from keepalived.conf (shipped beside the captures): one
# virtual_server 10.7.0.100 80, lvs_sched wrr, lvs_method TUN, rs1 weight 2 and rs2
# weight 1, each with a TCP_CHECK that connects to the real server's own address on port
# 80 every 3 s (direct, not through the tunnel: the health checks are in the captures).
# Twelve requests. Healthy.
. ./lib.sh
four_hosts
cat > "$OUT/keepalived.conf" <<CONF
! keepalived.conf of the lab's director (scenario "keepalived")
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
rs_tunnel rs2 $VIP; rs_arp rs2 $VIP $RS2; web rs2 80 rs2
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
curl_n client http://$VIP/ 12
sleep 3   # one more round of health checks in the captures
four_done
kill $KA; wait $KA 2>/dev/null
cat /tmp/keepalived.log
