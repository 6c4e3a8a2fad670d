# The traffic of scenarios syn-drop and syn-reuse-ok (sourced after lib.sh): the tutorial's
# rr service over rs1 and rs2, an iptables rule on the director that matches conntrack state
# (so conntrack really tracks in its namespace), net.ipv4.vs.conntrack=$1, and a client that
# reuses two fixed source ports (reuse.py), between a few ordinary curl requests.
syn_reuse_traffic() { # VS_CONNTRACK
    four_hosts
    modprobe nf_conntrack || die "modprobe nf_conntrack failed"
    in_ns director iptables -A INPUT -d $VIP -p tcp --dport 80 \
        -m conntrack --ctstate NEW,ESTABLISHED,INVALID -j ACCEPT || die "iptables conntrack rule failed"
    sysctl_ns director net.ipv4.vs.conntrack "$1"
    in_ns director cat /proc/sys/net/ipv4/vs/conntrack /proc/sys/net/ipv4/vs/conn_reuse_mode
    rr_service -t 80
    rs_tunnel rs1 $VIP; rs_arp rs1 $VIP $RS1; web rs1 80 rs1
    rs_tunnel rs2 $VIP; rs_arp rs2 $VIP $RS2; web rs2 80 rs2
    four_captures
    curl_n client http://$VIP/ 2
    in_ns client python3 ./reuse.py get $VIP 80 40001 4 0.5
    curl_n client http://$VIP/ 1
    in_ns client python3 ./reuse.py get $VIP 80 40002 3 0.5
    curl_n client http://$VIP/ 1
    in_ns director iptables -L INPUT -v -n
    in_ns director cat /proc/net/nf_conntrack 2>/dev/null || true
    four_done
}
