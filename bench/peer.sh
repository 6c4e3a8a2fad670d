#!/usr/bin/env bash
# The peers measured beside lvscheck on the same files (bench/run.sh): `capinfos` (Wireshark's
# file reader, all files at once) and `tshark -q -z conv,tcp` (Wireshark's dissection and TCP
# conversation table, each file), output discarded.
# `walk` is the reference walk (bench/walk.rs: read, slice, one flow table), single-threaded,
# each file in turn.
#   bench/peer.sh capinfos|tshark-conv|walk FILE...
set -euo pipefail
peer=$1
shift
case $peer in
    capinfos) capinfos "$@" >/dev/null ;;
    tshark-conv) for f in "$@"; do tshark -n -q -z conv,tcp -r "$f" >/dev/null; done ;;
    walk) "$(dirname "$0")/../target/release/examples/walk" "$@" >/dev/null ;;
    *) echo "unknown peer $peer" >&2; exit 2 ;;
esac
