#!/bin/bash
# Scenario "drain-healthy": rr over two real servers, rs2 drained the right way. A first batch
# of requests alternates between rs1 and rs2; a slow download (150 KB at 20 KB/s) is then in
# progress on rs2 when its weight is set to 0 (`ipvsadm -e ... -w 0`); a second batch goes
# only to rs1 while the download finishes on rs2. Healthy: no new connection reaches rs2
# after its weight became 0, the existing one continues, which is what draining is for.
. ./lib.sh
four_hosts
rr_service -t 80
for rs in rs1:$RS1 rs2:$RS2; do
    rs_tunnel ${rs%%:*} $VIP; rs_arp ${rs%%:*} $VIP ${rs##*:}; web ${rs%%:*} 80 ${rs%%:*}
    head -c 150000 /dev/zero | tr '\0' 'x' > /tmp/www-${rs%%:*}-80/big.txt
done
four_captures
last=
for i in 1 2 3 4; do last=$(in_ns client curl -s -m 4 http://$VIP/); echo "batch 1: $last"; done
# rr alternates for one sequential client: make rs2 the next pick if the last one was rs2.
if [ "$last" = rs2 ]; then echo "extra: $(in_ns client curl -s -m 4 http://$VIP/)"; fi
in_ns client curl -s -m 60 --limit-rate 20k -o /tmp/big.out http://$VIP/big.txt &
download=$!
sleep 2
in_ns director ipvsadm -Lnc
in_ns director ipvsadm -e -t $VIP:80 -r $RS2:80 -i -w 0
log "rs2 drained (weight 0)"
for i in 1 2 3 4 5 6; do echo "batch 2: $(in_ns client curl -s -m 4 http://$VIP/)"; done
wait $download
echo "download: $(wc -c < /tmp/big.out) bytes"
four_done
