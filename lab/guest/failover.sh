#!/bin/bash
# The failover lab (scenarios failover-sync and failover-nosync), sourced after lib.sh:
# two directors running keepalived with the same virtual_server (tunnel mode, rr over rs1
# and rs2) and one vrrp_instance holding the VIP (director priority 150, director2 100,
# advert_int 1). Long-lived connections (hold.py) span the failover; the master "dies"
# mid-test: its eth0 goes down in its namespace, so that it sends nothing more, as a
# crashed or unplugged host. (Stopping keepalived instead would be a graceful hand-over:
# a priority-0 advert, the VIP and the IPVS rules removed at once; that is a maintenance
# switch, not the failure the sync daemon is there for.)
DIR2_IP=10.7.0.2
MAC_DIR2=02:00:00:07:00:02
PORT=80

# failover_conf NAME STATE PRIORITY SYNC(0/1): keepalived.conf of one director.
failover_conf() {
    local name="$1" state="$2" prio="$3" sync="$4"
    echo "! keepalived.conf of $name (scenario $SCENARIO)"
    echo "global_defs {"
    echo "    router_id $name"
    [ "$sync" = 1 ] && echo "    lvs_sync_daemon eth0 VI_1"
    echo "}"
    cat <<CONF

vrrp_instance VI_1 {
    state $state
    interface eth0
    virtual_router_id 7
    priority $prio
    advert_int 1
    virtual_ipaddress {
        $VIP/32 dev eth0
    }
}

virtual_server $VIP $PORT {
    delay_loop 3
    lvs_sched rr
    lvs_method TUN
    protocol TCP

    real_server $RS1 $PORT {
        weight 1
    }
    real_server $RS2 $PORT {
        weight 1
    }
}
CONF
}

start_keepalived() { # NAME
    in_ns "$1" keepalived --dont-fork --log-console --log-detail \
        --use-file="$OUT/keepalived-$1.conf" --pid="/tmp/ka-$1.pid" \
        --vrrp_pid="/tmp/ka-vrrp-$1.pid" --checkers_pid="/tmp/ka-check-$1.pid" \
        > "/tmp/keepalived-$1.log" 2>&1 &
    KA_PIDS+=("$!")
}

# wait_for SECONDS COMMAND...: poll (emulation is slow: never a fixed sleep for a state).
wait_for() {
    local n="$1"; shift
    local i
    for i in $(seq $((n * 5))); do "$@" && return 0; sleep 0.2; done
    return 1
}
has_vip() { in_ns "$1" ip -4 addr show dev eth0 | grep -q " $VIP/32"; }
two_servers() { [ "$(in_ns "$1" ipvsadm -Ln | grep -c -- "-> 10.7.0.1[12]:$PORT")" = 2 ]; }
daemon_is() { in_ns "$1" ipvsadm -L --daemon | grep -q "$2 sync daemon"; }
held() { grep -q '^established' /tmp/hold.out; }

# The director's view at one moment, into FILE-SUFFIX files (the backup's table shows the
# entries the sync daemon gave it).
snapshot() { # NAME SUFFIX
    in_ns "$1" ipvsadm -Lnc > "$OUT/conns-$1-$2.txt"
    in_ns "$1" ipvsadm -L --daemon > "$OUT/daemon-$1-$2.txt"
}

# failover_run SYNC(0/1) [nogarp]: with nogarp the client drops gratuitous ARP for the VIP
# (arptables: sender and target address both the VIP), as a client behind a filter that
# does; its neighbour cache keeps the dead master's MAC until the entry is probed.
failover_run() {
    local sync="$1" garp="${2:-garp}"
    declare -g -a KA_PIDS=()
    # guest/init kills servers between scenarios but not keepalived: never leave one behind.
    trap 'kill "${KA_PIDS[@]}" 2>/dev/null' EXIT
    lab_modules
    host director $MAC_DIR $DIR_IP/24
    host director2 $MAC_DIR2 $DIR2_IP/24
    host rs1 $MAC_RS1 $RS1/24
    host rs2 $MAC_RS2 $RS2/24
    host client $MAC_CLIENT $CLIENT/24
    failover_conf director MASTER 150 "$sync" > "$OUT/keepalived-director.conf"
    failover_conf director2 BACKUP 100 "$sync" > "$OUT/keepalived-director2.conf"
    local n
    for n in rs1 rs2; do
        rs_tunnel $n $VIP
        in_ns $n python3 ./hold.py serve $VIP $PORT $n > /tmp/serve-$n.log 2>&1 &
    done
    rs_arp rs1 $VIP $RS1
    rs_arp rs2 $VIP $RS2
    if [ "$garp" = nogarp ]; then
        in_ns client arptables -A INPUT -s $VIP -d $VIP -j DROP
        # The neighbour entry goes stale 2.5-7.5 s after its last confirmation instead of
        # 15-45 s: the scenario stays short; what happens is the same.
        sysctl_ns client net.ipv4.neigh.eth0.base_reachable_time_ms 5000
    fi
    mkdir -p /run/keepalived /var/run
    # Captures first: the VRRP start-up and the first GARP are part of the story.
    capture director eth0 director.pcap
    capture director2 eth0 director2.pcap
    capture rs1 eth0 rs1.pcap
    capture rs2 eth0 rs2.pcap
    capture client eth0 client.pcap
    note_host director.pcap director director $MAC_DIR eth0 ethernet $DIR_IP $VIP
    note_host director2.pcap director2 director $MAC_DIR2 eth0 ethernet $DIR2_IP $VIP
    note_host rs1.pcap rs1 real-server $MAC_RS1 eth0 ethernet $RS1 $VIP
    note_host rs2.pcap rs2 real-server $MAC_RS2 eth0 ethernet $RS2 $VIP
    note_host client.pcap client client $MAC_CLIENT eth0 ethernet $CLIENT
    start_keepalived director
    start_keepalived director2
    wait_for 60 has_vip director || { cat /tmp/keepalived-*.log; die "director never became master"; }
    wait_for 60 two_servers director || die "no service on director"
    wait_for 60 two_servers director2 || die "no service on director2"
    if [ "$sync" = 1 ]; then
        wait_for 60 daemon_is director master || die "no master sync daemon on director"
        wait_for 60 daemon_is director2 backup || die "no backup sync daemon on director2"
    fi
    has_vip director2 && die "director2 holds the VIP too"
    log "director is master"
    curl_n client http://$VIP/ 4
    rm -f /tmp/hold.stop
    in_ns client python3 ./hold.py hold $VIP $PORT 4 /tmp/hold.stop > /tmp/hold.out 2>&1 &
    local hold=$!
    wait_for 60 held || { cat /tmp/hold.out; die "hold did not connect"; }
    # The master's sync thread sends what it has at least every 2 s (IPVS_SYNC_FLUSH_TIME):
    # wait for the backup's table to hold the four connections (or 4 s without sync).
    if [ "$sync" = 1 ]; then
        wait_for 30 sh -c "[ \$(ip netns exec director2 ipvsadm -Lnc | grep -c ESTABLISHED) -ge 4 ]" \
            || log "director2 did not get 4 synced entries"
    else
        sleep 4
    fi
    snapshot director before
    snapshot director2 before
    log "master dies: director eth0 down"
    in_ns director ip link set eth0 down
    wait_for 60 has_vip director2 || { cat /tmp/keepalived-*.log; die "director2 never took over"; }
    log "director2 is master"
    if [ "$garp" = nogarp ]; then
        # Until the client's cache has the new MAC (probed, then asked again).
        wait_for 90 sh -c "ip netns exec client ip neigh show $VIP | grep -q $MAC_DIR2" \
            || log "the client never learned director2's MAC"
        in_ns client ip neigh show
    fi
    # A few more rounds through the new master, then the held connections close.
    sleep 5
    touch /tmp/hold.stop
    wait $hold
    cat /tmp/hold.out
    grep -v "^+" /tmp/hold.out > "$OUT/hold.txt"  # without the bash -x trace of in_ns
    curl_n client http://$VIP/ 4
    snapshot director2 after
    director_truth director2
    stop_captures
    write_hosts
    local p
    for p in "${KA_PIDS[@]}"; do kill "$p" 2>/dev/null; done
    for p in "${KA_PIDS[@]}"; do wait "$p" 2>/dev/null; done
    cat /tmp/keepalived-*.log
}
