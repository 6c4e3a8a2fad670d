#!/bin/bash
# Scenario "health-removed": keepalived working as meant. The director's rules come from
# keepalived with an HTTP_GET check (GET / every 3 s, status 200 expected) to each real
# server's own address on port 80; rs2 is configured for the tunnel like rs1 but runs no web
# server, so its checks are refused (RST) and keepalived removes rs2 from the rules before the
# captures start. The client's nine requests all go to rs1 and are answered. Healthy.
. ./lib.sh
four_hosts
cat > "$OUT/keepalived.conf" <<CONF
! keepalived.conf of the lab's director (scenario "health-removed")
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
        HTTP_GET {
            url {
                path /
                status_code 200
            }
            connect_timeout 2
            retry 1
            delay_before_retry 1
        }
    }
    real_server $RS2 80 {
        weight 1
        HTTP_GET {
            url {
                path /
                status_code 200
            }
            connect_timeout 2
            retry 1
            delay_before_retry 1
        }
    }
}
CONF
rs_tunnel rs1 $VIP; rs_arp rs1 $VIP $RS1; web rs1 80 rs1
rs_tunnel rs2 $VIP; rs_arp rs2 $VIP $RS2        # the fault keepalived handles: no web server on rs2
mkdir -p /run/keepalived /var/run
in_ns director keepalived --dont-fork --log-console --check --use-file="$OUT/keepalived.conf" \
    --pid=/tmp/ka.pid --checkers_pid=/tmp/ka-check.pid > /tmp/keepalived.log 2>&1 &
KA=$!
# keepalived adds both servers, then removes rs2 once its check has failed (and its retry).
for i in $(seq 100); do
    [ "$(in_ns director ipvsadm -Ln | grep -c -- '-> 10.7.0.11:80')" = 1 ] \
        && [ "$(in_ns director ipvsadm -Ln | grep -c -- '-> 10.7.0.12:80')" = 0 ] && break
    sleep 0.3
done
in_ns director ipvsadm -Ln
[ "$(in_ns director ipvsadm -Ln | grep -c -- '-> 10.7.0.11:80')" = 1 ] \
    && [ "$(in_ns director ipvsadm -Ln | grep -c -- '-> 10.7.0.12:80')" = 0 ] \
    || { cat /tmp/keepalived.log; die "keepalived did not remove rs2"; }
four_captures
curl_n client http://$VIP/ 9
sleep 3   # one more round of health checks in the captures
four_done
kill $KA; wait $KA 2>/dev/null
rm -f /tmp/ka.pid /tmp/ka-check.pid
cat /tmp/keepalived.log
