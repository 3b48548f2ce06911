#!/usr/bin/env bash
# Seeds fuzz/corpus/<target>/ from the golden frames in tests/data (the corpus itself is not
# kept in git). Safe to run again: files are named after their source and overwritten.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
data=$root/tests/data
corpus=$root/fuzz/corpus
mkdir -p "$corpus/wire_parse" "$corpus/tcp_options" "$corpus/icmp"

byte() { od -An -tu1 -j"$2" -N1 "$1" | tr -d ' '; }

# wire_parse: whole frames.
cp "$data"/linux_*.bin "$corpus/wire_parse/"

# tcp_options: the options area of every TCP segment (IPv4: TCP at 34, IPv6: at 54).
for f in "$data"/linux_{syn,synack,ack,data,fin,rst,ack_sack}.bin "$data"/linux_{syn6,synack6}.bin; do
	case $f in *6.bin) tcp=54 ;; *) tcp=34 ;; esac
	doff=$(( ($(byte "$f" $((tcp + 12))) >> 4) * 4 ))
	tail -c +$((tcp + 21)) "$f" | head -c $((doff - 20)) >"$corpus/tcp_options/$(basename "$f")"
done

# icmp: a selector byte (0 = ICMPv4, 1 = ICMPv6), then the message.
for f in "$data"/linux_icmp_{echo_request,echo_reply,frag_needed}.bin; do
	{ printf '\0'; tail -c +35 "$f"; } >"$corpus/icmp/$(basename "$f")"
done
{ printf '\1'; tail -c +55 "$data/linux_icmp6_packet_too_big.bin"; } >"$corpus/icmp/linux_icmp6_packet_too_big.bin"
# The MLD report's ICMPv6 message sits behind an 8-byte hop-by-hop header.
{ printf '\1'; tail -c +63 "$data/linux_mld_hbh.bin"; } >"$corpus/icmp/linux_mld_hbh.bin"

echo "seeded $(find "$corpus" -type f | wc -l) files under $corpus"
