#!/bin/bash
# Derive the format-variant fixtures from the real captures of fixtures/tutorial with
# Wireshark's editcap/mergecap (package tshark). The packets are the real ones; only the
# container, compression, clock or an abrupt end change. Each variant keeps a copy of the
# tutorial's ground truth (rules, connection table) and its own hosts.json.
#
# Usage: lab/make-variants.sh      (after lab/run-scenario.sh tutorial; FIXTURES=DIR as there)
set -euo pipefail
LAB="$(cd "$(dirname "$0")" && pwd)"
FIX="${FIXTURES:-$LAB/../fixtures}"
SRC="$FIX/tutorial"
CAPS="server1 server2 server3 client"
command -v editcap >/dev/null || { apt-get update -qq; apt-get install -y -qq tshark >/dev/null; }

# fresh DIR: an empty fixture directory (its README.md kept) with the tutorial's truth.
fresh() {
    mkdir -p "$FIX/$1"
    find "$FIX/$1" -mindepth 1 ! -name README.md -delete
    cp "$SRC"/rules.txt "$SRC"/rules-nosort.txt "$SRC"/conns.txt "$SRC"/stats.txt "$FIX/$1/"
}
# hosts_as DIR SUFFIX: the tutorial's hosts.json with every file name given a new suffix.
hosts_as() { sed "s/\\.pcap\"/.$2\"/" "$SRC/hosts.json" > "$FIX/$1/hosts.json"; }

# pcapng, one file per host.
fresh formats-pcapng
for c in $CAPS; do editcap -F pcapng "$SRC/$c.pcap" "$FIX/formats-pcapng/$c.pcapng"; done
hosts_as formats-pcapng pcapng

# Nanosecond-resolution pcap (magic a1b23c4d).
fresh formats-nsec
for c in $CAPS; do editcap -F nsecpcap "$SRC/$c.pcap" "$FIX/formats-nsec/$c.pcap"; done
cp "$SRC/hosts.json" "$FIX/formats-nsec/"

# gzip-compressed pcap (-n: no name or time stamp in the header, so re-runs are identical).
fresh formats-gzip
for c in $CAPS; do gzip -n -9 -c "$SRC/$c.pcap" > "$FIX/formats-gzip/$c.pcap.gz"; done
hosts_as formats-gzip pcap.gz

# One pcapng holding every host as its own interface (-I none: interfaces not merged),
# in the order given here: interface 0 = server1 ... 3 = client.
fresh formats-merged
mergecap -I none -F pcapng -w "$FIX/formats-merged/all-hosts.pcapng" \
    $(for c in $CAPS; do echo "$SRC/$c.pcap"; done)
i=0
{
    echo '{'
    echo '  "captures": ['
    for c in $CAPS; do
        # The tutorial's entry for this host, renamed, with the interface id added.
        python3 - "$SRC/hosts.json" "$c.pcap" "$i" <<'PY'
import json, sys
caps = json.load(open(sys.argv[1]))["captures"]
e = next(x for x in caps if x["file"] == sys.argv[2])
e["file"] = "all-hosts.pcapng"
e["pcapng_interface"] = int(sys.argv[3])
text = json.dumps(e, indent=2)
print("\n".join("    " + l for l in text.splitlines()) + ("," if int(sys.argv[3]) < 3 else ""))
PY
        i=$((i + 1))
    done
    echo '  ]'
    echo '}'
} > "$FIX/formats-merged/hosts.json"

# A capture cut mid-record: the client's file loses its last 30 bytes (the last packet's
# record header survives, its data does not). The other three are intact.
fresh formats-truncated
for c in $CAPS; do cp "$SRC/$c.pcap" "$FIX/formats-truncated/"; done
f="$FIX/formats-truncated/client.pcap"
truncate -s $(( $(stat -c %s "$f") - 30 )) "$f"
cp "$SRC/hosts.json" "$FIX/formats-truncated/"

# Clocks off by seconds in both directions: the client's clock is 3.5 s ahead, server2's
# 2.25 s behind; server1 and server3 keep the true time.
fresh clock-skew
for c in $CAPS; do cp "$SRC/$c.pcap" "$FIX/clock-skew/"; done
editcap -t 3.5 "$SRC/client.pcap" "$FIX/clock-skew/client.pcap" -F pcap
editcap -t -2.25 "$SRC/server2.pcap" "$FIX/clock-skew/server2.pcap" -F pcap
cp "$SRC/hosts.json" "$FIX/clock-skew/"

ls -l "$FIX"/formats-* "$FIX"/clock-skew
