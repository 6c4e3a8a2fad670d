#!/bin/bash
# Helpers for lab scenarios, run inside the guest (see guest/init).
#
# Each lab host is a network namespace with one interface, eth0, whose veth peer sits
# on the bridge br0 in the root namespace: one flat Ethernet segment, as in the tutorial.
# Every host gets a fixed MAC so that the ground truth stays the same between recordings.
# Results go to /out: one capture per host, the director's ipvsadm view, hosts.json.
set -u
OUT="${OUT:-/out}"
declare -a CAPTURE_PIDS=()
HOSTS_TSV="$OUT/.hosts.tsv"

log() { echo "[$(date +%T.%N | cut -c1-12)] $*"; }
# A scenario whose lab could not be built must not produce a fixture: stop it, non-zero.
die() { log "FATAL: $*"; exit 1; }

# The lab's kernel modules. IPVS and its schedulers, ipip (tunl0 appears in every
# namespace once it is loaded), veth and bridge for the segment.
lab_modules() {
    local m
    for m in veth bridge ipip ip_vs ip_vs_rr ip_vs_wrr ip_vs_lc ip_vs_wlc ip_vs_sh ip_vs_sed \
             ip_vs_nq ip_vs_dh ip_vs_mh ip_vs_lblc ip_vs_lblcr ip_vs_fo ip_vs_ovf; do
        modprobe "$m" || log "modprobe $m failed"
    done
    ip link add br0 type bridge stp_state 0 forward_delay 0 || die "cannot create br0"
    # The bridge is a plain switch: no multicast snooping queries, no IPv6 (ipv6.disable=1).
    echo 0 > /sys/class/net/br0/bridge/multicast_snooping
    ip link set br0 up
}

# Offloads off so that the captures show what a wire would carry: no GSO super-packets,
# no GRO-merged segments, no checksums left for hardware to fill in.
no_offloads() { # ns-or-"-" dev
    local ns="$1" dev="$2"
    if [ "$ns" = - ]; then
        ethtool -K "$dev" tso off gso off gro off tx off rx off >/dev/null 2>&1 || true
    else
        ip netns exec "$ns" ethtool -K "$dev" tso off gso off gro off tx off rx off >/dev/null 2>&1 || true
    fi
}

# host NAME MAC ADDR/PREFIX [ADDR/PREFIX...]: a namespace joined to br0 through eth0. With an
# IPv6 address (IPv6 scenarios boot with IPv6 on), the host is quiet: no router solicitations,
# no duplicate address detection, and the bridge side of its veth carries no IPv6 of its own.
host() {
    local name="$1" mac="$2"; shift 2
    local v6=0 a
    for a in "$@"; do case "$a" in *:*) v6=1 ;; esac; done
    ip netns add "$name" || die "cannot create namespace $name"
    if [ $v6 = 1 ]; then
        sysctl_ns "$name" net.ipv6.conf.default.router_solicitations 0
        sysctl_ns "$name" net.ipv6.conf.default.accept_dad 0
        sysctl_ns "$name" net.ipv6.conf.all.accept_dad 0
    fi
    ip link add eth0 netns "$name" address "$mac" type veth peer name "v-$name" \
        || die "cannot create eth0 of $name"
    if [ $v6 = 1 ]; then echo 1 > "/proc/sys/net/ipv6/conf/v-$name/disable_ipv6"; fi
    ip link set "v-$name" master br0 || die "cannot attach $name to br0"
    no_offloads - "v-$name"
    no_offloads "$name" eth0
    ip link set "v-$name" up
    for a in "$@"; do
        case "$a" in
            *:*) ip -n "$name" -6 addr add "$a" dev eth0 nodad || die "cannot add $a to $name" ;;
            *) ip -n "$name" addr add "$a" dev eth0 || die "cannot add $a to $name" ;;
        esac
    done
    ip -n "$name" link set lo up
    ip -n "$name" link set eth0 up
}

in_ns() { local ns="$1"; shift; ip netns exec "$ns" "$@"; }

# sysctl_ns NS KEY VALUE (minbase has no procps): /proc/sys/net is per namespace.
sysctl_ns() { ip netns exec "$1" sh -c "echo $3 > /proc/sys/${2//.//}"; }

# The director, as in the tutorial: the VIP on tunl0 (whose address this host then owns
# and answers ARP for on eth0, since arp_ignore is 0).
director_vip() { # NAME VIP
    in_ns "$1" ip link set tunl0 up
    in_ns "$1" ip addr add "$2" dev tunl0
}

# A real server, as in the tutorial: VIP/32 on tunl0, rp_filter off on tunl0, and
# arptables so that it neither answers ARP for the VIP nor announces it.
rs_tunnel() { # NAME VIP
    in_ns "$1" ip link set tunl0 up
    in_ns "$1" ip addr add "$2/32" dev tunl0
    sysctl_ns "$1" net.ipv4.conf.tunl0.rp_filter 0
}
# A real server for GUE (`--tun-type gue --tun-port PORT`): fou decapsulates UDP to PORT
# and hands the inner IPv4 packet (GUE proto 4) to ipip, whose tunl0 receives it; so the
# VIP stays on tunl0 as for IP-in-IP (rs_tunnel), plus the fou port.
rs_gue() { # NAME PORT
    in_ns "$1" ip fou add port "$2" gue || die "ip fou add port $2 gue failed in $1"
}
# A real server for GRE (`--tun-type gre`): ip_gre's fallback device gre0 takes the
# keyless GRE the director sends; the VIP/32 goes on gre0, rp_filter off there.
rs_gre() { # NAME VIP
    in_ns "$1" ip link set gre0 up || die "no gre0 in $1 (modprobe ip_gre)"
    in_ns "$1" ip addr add "$2/32" dev gre0
    sysctl_ns "$1" net.ipv4.conf.gre0.rp_filter 0
}
rs_arp() { # NAME VIP RIP
    in_ns "$1" arptables -A INPUT -d "$2" -j DROP
    in_ns "$1" arptables -A OUTPUT -s "$2" -j mangle --mangle-ip-s "$3"
}

# web NAME PORT TEXT: busybox httpd serving TEXT as the page, plus two CGI scripts:
# /cgi-bin/slow?N answers after N seconds (long connections), /cgi-bin/post reads the
# request body and answers with its size.
web() { # NAME PORT TEXT
    local ns="$1" port="$2" text="$3" dir="/tmp/www-$1-$2"
    mkdir -p "$dir/cgi-bin"
    echo "$text" > "$dir/index.html"
    cat > "$dir/cgi-bin/slow" <<CGI
#!/bin/sh
sleep "\${QUERY_STRING:-2}"
printf 'Content-Type: text/plain\r\n\r\n$text\n'
CGI
    cat > "$dir/cgi-bin/post" <<CGI
#!/bin/sh
n=\$(head -c "\${CONTENT_LENGTH:-0}" | wc -c)
printf 'Content-Type: text/plain\r\n\r\n$text got %s bytes\n' "\$n"
CGI
    chmod +x "$dir/cgi-bin/slow" "$dir/cgi-bin/post"
    in_ns "$ns" busybox httpd -p "$port" -h "$dir"
}

# capture NAME IFACE FILE [tcpdump options] [filter]: start tcpdump in the namespace and
# wait until it is really listening, so that no early packet is lost. NAME "-" captures in
# the root namespace (where br0 is). A capture filter may follow the options (tcpdump's
# getopt takes -w after it).
capture() {
    local ns="$1" ifc="$2" file="$3"; shift 3
    local err="/tmp/tcpdump-$ns-$ifc.err"
    [ "$ns" = - ] && err="/tmp/tcpdump-root-$ifc.err"
    # ip netns exec (or tcpdump) itself, not a shell function, so that $! is tcpdump's pid.
    if [ "$ns" = - ]; then
        tcpdump -Z root -U -n -s 0 -i "$ifc" "$@" -w "$OUT/$file" 2> "$err" &
    else
        ip netns exec "$ns" tcpdump -Z root -U -n -s 0 -i "$ifc" "$@" -w "$OUT/$file" 2> "$err" &
    fi
    CAPTURE_PIDS+=("$!")
    local i
    for i in $(seq 100); do grep -q listening "$err" && return 0; sleep 0.1; done
    cat "$err"
    die "tcpdump on $ns/$ifc did not start"
}

# Stop every capture with SIGINT (tcpdump then flushes and closes its file).
stop_captures() {
    sleep 1  # let the last packets in flight reach every host
    local p
    for p in "${CAPTURE_PIDS[@]}"; do kill -INT "$p" 2>/dev/null; done
    for p in "${CAPTURE_PIDS[@]}"; do wait "$p" 2>/dev/null; done
    cat /tmp/tcpdump-*.err
    CAPTURE_PIDS=()
}

# The director's own view, saved right after the traffic while the connection entries
# still exist: rules as ipvsadm -R reads them, the kernel's server order, the table.
# The counters of `-Ln --stats` are the estimator's copy, refreshed every 2 s on this kernel:
# read right after the traffic they lag (ipv6-healthy's show 3 of its 10 connections), so
# the scenarios recorded since wait 3 s for them (DIRECTOR_STATS_WAIT=0 for the old way).
director_truth() { # NAME
    in_ns "$1" ipvsadm -Sn > "$OUT/rules.txt"
    in_ns "$1" ipvsadm -Ln --nosort > "$OUT/rules-nosort.txt"
    in_ns "$1" ipvsadm -Lnc > "$OUT/conns.txt"
    sleep "${DIRECTOR_STATS_WAIT:-3}"
    in_ns "$1" ipvsadm -Ln --stats > "$OUT/stats.txt"
}

# note_host FILE HOST ROLE MAC IFACE LINKTYPE IPS [VIPS [MIRRORS]]: one capture's ground
# truth. IPS, VIPS and MIRRORS are comma separated. MIRRORS, for a capture of role
# "mirror" (a bridge or SPAN port), names the hosts whose packets it holds. Written to
# hosts.json by write_hosts.
note_host() {
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" "$5" "$6" "$7" "${8:-}" "${9:-}" >> "$HOSTS_TSV"
}
write_hosts() {
    # python3-minimal has no json module; the format is simple enough to print.
    jlist() { local IFS=,; local a out="" sep=""; for a in $1; do out="$out$sep\"$a\""; sep=", "; done; echo "[$out]"; }
    local first=1
    {
        echo '{'
        echo '  "captures": ['
        while IFS=$'\t' read -r f host role mac ifc link ips vips mirrors; do
            [ $first = 1 ] || echo '    },'
            first=0
            echo '    {'
            printf '      "file": "%s",\n      "host": "%s",\n      "role": "%s",\n' "$f" "$host" "$role"
            printf '      "mac": "%s",\n      "interface": "%s",\n      "link_type": "%s",\n' "$mac" "$ifc" "$link"
            printf '      "ips": %s,\n      "vips": %s' "$(jlist "$ips")" "$(jlist "$vips")"
            if [ -n "$mirrors" ]; then printf ',\n      "mirrors": %s' "$(jlist "$mirrors")"; fi
            echo
        done < "$HOSTS_TSV"
        echo '    }'
        echo '  ]'
        echo '}'
    } > "$OUT/hosts.json"
    rm -f "$HOSTS_TSV"
}

# curl_n NS URL N [curl options]: N sequential requests, one line of result each.
curl_n() {
    local ns="$1" url="$2" n="$3"; shift 3
    local i
    for i in $(seq "$n"); do
        in_ns "$ns" curl -s -m 4 "$@" "$url" || echo "request $i: curl exit $?"
    done
}

# ---- The four hosts shared by the failure scenarios: one director, two real servers,
# one client on 10.7.0.0/24, VIP 10.7.0.100. Each scenario breaks rs2 in its own way.
VIP=10.7.0.100
DIR_IP=10.7.0.1
RS1=10.7.0.11
RS2=10.7.0.12
CLIENT=10.7.0.200
MAC_DIR=02:00:00:07:00:01
MAC_RS1=02:00:00:07:00:0b
MAC_RS2=02:00:00:07:00:0c
MAC_CLIENT=02:00:00:07:00:c8

four_hosts() {
    lab_modules
    host director $MAC_DIR $DIR_IP/24
    host rs1 $MAC_RS1 $RS1/24
    host rs2 $MAC_RS2 $RS2/24
    host client $MAC_CLIENT $CLIENT/24
    director_vip director $VIP
}

# rr_service PROTO-FLAG PORT: the director's service, rs1 added first, then rs2.
rr_service() {
    in_ns director ipvsadm -A "$1" $VIP:"$2" -s rr
    in_ns director ipvsadm -a "$1" $VIP:"$2" -r $RS1:"$2" -i
    in_ns director ipvsadm -a "$1" $VIP:"$2" -r $RS2:"$2" -i
}

four_captures() {
    capture director eth0 director.pcap
    capture rs1 eth0 rs1.pcap
    capture rs2 eth0 rs2.pcap
    capture client eth0 client.pcap
    note_host director.pcap director director $MAC_DIR eth0 ethernet $DIR_IP $VIP
    note_host rs1.pcap rs1 real-server $MAC_RS1 eth0 ethernet $RS1 $VIP
    note_host rs2.pcap rs2 real-server $MAC_RS2 eth0 ethernet $RS2 $VIP
    note_host client.pcap client client $MAC_CLIENT eth0 ethernet $CLIENT
}

four_done() {
    director_truth director
    stop_captures
    write_hosts
}

# ---- IPv6 (scenarios named ipv6-*, which run-scenario.sh boots with IPv6 on). The same four
# hosts on 2001:db8:7::/64, VIP 2001:db8:7::100. The kernel tunnels IPv6 services IPv6-in-IPv6
# (next header 41); a real server takes the VIP on ip6tnl0, the fallback device ip6_tunnel
# makes in every namespace. `host` keeps IPv6 hosts quiet, so that the captures hold the lab's
# traffic, its neighbour discovery and the hosts' MLD reports (which a real segment has too).
VIP6=2001:db8:7::100
DIR6=2001:db8:7::1
RS16=2001:db8:7::11
RS26=2001:db8:7::12
CLIENT6=2001:db8:7::c8

lab_modules_v6() {
    lab_modules
    modprobe ip6_tunnel || die "modprobe ip6_tunnel failed"
    echo 1 > /proc/sys/net/ipv6/conf/br0/disable_ipv6
}

# The director holds the VIP on eth0: neighbour discovery answers only for addresses of the
# interface asked on (there is no IPv6 counterpart of arp_ignore's weak host behaviour).
# preferred_lft 0 makes it deprecated, which source address selection avoids (RFC 6724 rule
# 3): without it the kernel picks the VIP as the tunnel's outer source, and a real server,
# which holds the VIP itself, drops the tunnelled packet (scenario ipv6-outer-vip).
director_vip6() { # NAME VIP
    in_ns "$1" ip -6 addr add "$2/128" dev eth0 nodad preferred_lft 0
}

# A real server: the VIP/128 on ip6tnl0, which then decapsulates what the director sends.
# On ip6tnl0 the VIP is never advertised on eth0; no arptables counterpart is needed.
rs_tunnel6() { # NAME VIP
    in_ns "$1" ip link set ip6tnl0 up
    in_ns "$1" ip -6 addr add "$2/128" dev ip6tnl0 nodad
}

# four_hosts_v6 [plain]: the four hosts on 2001:db8:7::/64; with "plain", the director's VIP
# is added not deprecated (scenario ipv6-outer-vip).
four_hosts_v6() {
    lab_modules_v6
    host director $MAC_DIR $DIR6/64
    host rs1 $MAC_RS1 $RS16/64
    host rs2 $MAC_RS2 $RS26/64
    host client $MAC_CLIENT $CLIENT6/64
    if [ "${1:-}" = plain ]; then
        in_ns director ip -6 addr add "$VIP6/128" dev eth0 nodad
    else
        director_vip6 director $VIP6
    fi
}

rr_service_v6() { # PORT
    in_ns director ipvsadm -A -t "[$VIP6]:$1" -s rr
    in_ns director ipvsadm -a -t "[$VIP6]:$1" -r "[$RS16]:$1" -i
    in_ns director ipvsadm -a -t "[$VIP6]:$1" -r "[$RS26]:$1" -i
}

four_captures_v6() {
    capture director eth0 director.pcap
    capture rs1 eth0 rs1.pcap
    capture rs2 eth0 rs2.pcap
    capture client eth0 client.pcap
    note_host director.pcap director director $MAC_DIR eth0 ethernet $DIR6 $VIP6
    note_host rs1.pcap rs1 real-server $MAC_RS1 eth0 ethernet $RS16 $VIP6
    note_host rs2.pcap rs2 real-server $MAC_RS2 eth0 ethernet $RS26 $VIP6
    note_host client.pcap client client $MAC_CLIENT eth0 ethernet $CLIENT6
}

stale_vip_old() { # the hosts of stale-vip-host and stale-vip-flood, old holding the VIP
    OLD=10.7.0.13
    MAC_OLD=02:00:00:07:00:0d
    CLIENT2=10.7.0.201
    MAC_CLIENT2=02:00:00:07:00:c9
    four_hosts
    host old $MAC_OLD $OLD/24
    host client2 $MAC_CLIENT2 $CLIENT2/24
    rr_service -t 80
    rs_tunnel rs1 $VIP; rs_arp rs1 $VIP $RS1; web rs1 80 rs1
    rs_tunnel rs2 $VIP; rs_arp rs2 $VIP $RS2; web rs2 80 rs2
    # old: the VIP on lo, ARP for it neither answered nor announced (the fault is that it is
    # still there at all), and its web server still up.
    in_ns old ip addr add $VIP/32 dev lo
    sysctl_ns old net.ipv4.conf.all.arp_ignore 1
    sysctl_ns old net.ipv4.conf.all.arp_announce 2
    sysctl_ns old net.ipv4.conf.eth0.arp_ignore 1
    sysctl_ns old net.ipv4.conf.eth0.arp_announce 2
    web old 80 old
    # client2's stale static entry.
    in_ns client2 ip neigh replace $VIP lladdr $MAC_OLD dev eth0 nud permanent
}

stale_vip_traffic() { # captures and requests of stale-vip-host and stale-vip-flood
    four_captures
    capture client2 eth0 client2.pcap
    note_host client2.pcap client2 client $MAC_CLIENT2 eth0 ethernet $CLIENT2
    curl_n client http://$VIP/ 6
    curl_n client2 http://$VIP/ 4
    curl_n client http://$VIP/ 2
    in_ns client2 ip neigh show
    four_done
}

keepalived_tcp_conf() { # SCENARIO: keepalived.conf of scenarios keepalived and health-blackhole
    cat > "$OUT/keepalived.conf" <<CONF
! keepalived.conf of the lab's director (scenario "$1")
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
}

keepalived_start() { # keepalived on the director from $OUT/keepalived.conf; waits for rs1, rs2
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
}
