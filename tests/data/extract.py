#!/usr/bin/env python3
"""Picks the golden frames out of the capture made by capture.sh and writes one .bin each.

    extract.py CAPTURE.pcap OUTDIR   write OUTDIR/linux_*.bin
    extract.py --dump [DIR]          print every field of every linux_*.bin (for the tests)

Reads the classic pcap format by hand (no dependencies). The decoder here is deliberately
independent of the Rust one: its output is what tests/wire_golden.rs expects.
"""
import os
import struct
import sys


def read_pcap(path):
    with open(path, "rb") as f:
        data = f.read()
    magic = struct.unpack("<I", data[:4])[0]
    if magic in (0xA1B2C3D4, 0xA1B23C4D):
        endian = "<"
    elif magic in (0xD4C3B2A1, 0x4D3CB2A1):
        endian = ">"
    else:
        raise SystemExit(f"{path}: not a classic pcap file")
    linktype = struct.unpack(endian + "I", data[20:24])[0]
    if linktype != 1:
        raise SystemExit(f"{path}: link type {linktype}, want 1 (Ethernet)")
    off = 24
    while off + 16 <= len(data):
        _, _, incl, orig = struct.unpack(endian + "IIII", data[off : off + 16])
        off += 16
        if incl != orig:
            raise SystemExit(f"{path}: truncated capture (snaplen)")
        yield data[off : off + incl]
        off += incl


def csum(data):
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while s > 0xFFFF:
        s = (s & 0xFFFF) + (s >> 16)
    return s


def decode(frame):
    """Returns a dict of fields, flat, for one Ethernet frame."""
    d = {"len": len(frame)}
    d["eth.dst"] = frame[0:6].hex(":")
    d["eth.src"] = frame[6:12].hex(":")
    et = struct.unpack("!H", frame[12:14])[0]
    off = 14
    if et == 0x8100:
        tci = struct.unpack("!H", frame[14:16])[0]
        d["vlan.pcp"] = tci >> 13
        d["vlan.id"] = tci & 0xFFF
        et = struct.unpack("!H", frame[16:18])[0]
        off = 18
    d["eth.type"] = "0x%04x" % et
    if et == 0x0806:
        a = frame[off:]
        htype, ptype, hlen, plen, op = struct.unpack("!HHBBH", a[:8])
        d.update({"arp.htype": htype, "arp.ptype": "0x%04x" % ptype, "arp.hlen": hlen,
                  "arp.plen": plen, "arp.op": op, "arp.sha": a[8:14].hex(":"),
                  "arp.spa": ".".join(map(str, a[14:18])), "arp.tha": a[18:24].hex(":"),
                  "arp.tpa": ".".join(map(str, a[24:28])), "arp.pad": len(a) - 28})
        return d
    if et == 0x0800:
        ip = frame[off:]
        ihl = (ip[0] & 15) * 4
        tot = struct.unpack("!H", ip[2:4])[0]
        flg = struct.unpack("!H", ip[6:8])[0]
        d.update({"ip.version": ip[0] >> 4, "ip.ihl": ihl, "ip.dscp": ip[1] >> 2,
                  "ip.ecn": ip[1] & 3, "ip.total_len": tot,
                  "ip.ident": "0x%04x" % struct.unpack("!H", ip[4:6])[0],
                  "ip.df": bool(flg & 0x4000), "ip.mf": bool(flg & 0x2000),
                  "ip.frag_off": (flg & 0x1FFF) * 8, "ip.ttl": ip[8], "ip.proto": ip[9],
                  "ip.checksum": "0x%04x" % struct.unpack("!H", ip[10:12])[0],
                  "ip.checksum_ok": csum(ip[:ihl]) == 0xFFFF,
                  "ip.src": ".".join(map(str, ip[12:16])), "ip.dst": ".".join(map(str, ip[16:20])),
                  "eth.pad": len(ip) - tot})
        l4 = ip[ihl:tot]
        pseudo = ip[12:20] + struct.pack("!BBH", 0, ip[9], len(l4))
        proto = ip[9]
    elif et == 0x86DD:
        ip = frame[off:]
        vtf = struct.unpack("!I", ip[0:4])[0]
        plen = struct.unpack("!H", ip[4:6])[0]
        d.update({"ip6.version": vtf >> 28, "ip6.tclass": (vtf >> 20) & 0xFF,
                  "ip6.flow": "0x%05x" % (vtf & 0xFFFFF), "ip6.payload_len": plen,
                  "ip6.next": ip[6], "ip6.hlim": ip[7], "ip6.src": ip[8:24].hex(),
                  "ip6.dst": ip[24:40].hex()})
        l4 = ip[40 : 40 + plen]
        pseudo = ip[8:40] + struct.pack("!IxxxB", len(l4), ip[6])
        proto = ip[6]
    else:
        return d
    if proto == 6:
        t = l4
        doff = (t[12] >> 4) * 4
        d.update({"tcp.sport": struct.unpack("!H", t[0:2])[0],
                  "tcp.dport": struct.unpack("!H", t[2:4])[0],
                  "tcp.seq": "0x%08x" % struct.unpack("!I", t[4:8])[0],
                  "tcp.ack": "0x%08x" % struct.unpack("!I", t[8:12])[0],
                  "tcp.doff": doff, "tcp.flags": "0x%03x" % (((t[12] & 1) << 8) | t[13]),
                  "tcp.window": struct.unpack("!H", t[14:16])[0],
                  "tcp.checksum": "0x%04x" % struct.unpack("!H", t[16:18])[0],
                  "tcp.checksum_ok": csum(pseudo + t) == 0xFFFF,
                  "tcp.urgent": struct.unpack("!H", t[18:20])[0],
                  "tcp.options": t[20:doff].hex(), "tcp.payload_len": len(t) - doff})
        opts = t[20:doff]
        i = 0
        while i < len(opts):
            k = opts[i]
            if k == 0:
                break
            if k == 1:
                i += 1
                continue
            ln = opts[i + 1]
            v = opts[i + 2 : i + ln]
            if k == 2:
                d["opt.mss"] = struct.unpack("!H", v)[0]
            elif k == 3:
                d["opt.wscale"] = v[0]
            elif k == 4:
                d["opt.sackp"] = True
            elif k == 5:
                d["opt.sack"] = [tuple("0x%08x" % x for x in struct.unpack("!II", v[j : j + 8]))
                                 for j in range(0, len(v), 8)]
            elif k == 8:
                d["opt.tsval"], d["opt.tsecr"] = ("0x%08x" % x for x in struct.unpack("!II", v))
            i += ln
    elif proto in (1, 58):
        m = l4
        d.update({"icmp.type": m[0], "icmp.code": m[1],
                  "icmp.checksum": "0x%04x" % struct.unpack("!H", m[2:4])[0],
                  "icmp.checksum_ok": csum((pseudo if proto == 58 else b"") + m) == 0xFFFF,
                  "icmp.rest": m[4:8].hex(), "icmp.body_len": len(m) - 8})
        if (proto == 1 and m[0] == 3) or (proto == 58 and m[0] == 2):
            q = m[8:]
            if proto == 1:
                qihl = (q[0] & 15) * 4
                d["quote.total_len"] = struct.unpack("!H", q[2:4])[0]
                d["quote.src"] = ".".join(map(str, q[12:16]))
                d["quote.dst"] = ".".join(map(str, q[16:20]))
                qt = q[qihl:]
            else:
                d["quote.payload_len"] = struct.unpack("!H", q[4:6])[0]
                d["quote.src"] = q[8:24].hex()
                d["quote.dst"] = q[24:40].hex()
                qt = q[40:]
            d["quote.sport"], d["quote.dport"], qs = struct.unpack("!HHI", qt[:8])
            d["quote.seq"] = "0x%08x" % qs
            d["quote.tcp_len"] = len(qt)
        if m[0] in (0, 8, 128, 129):
            d["echo.ident"], d["echo.seq"] = struct.unpack("!HH", m[4:8])
            d["echo.data"] = m[8:].hex()
    return d


def classify(d):
    """Name of the golden file this frame is, or None."""
    et = d.get("eth.type")
    vlan = "vlan.id" in d
    if et == "0x0806" and not vlan:
        return {1: "linux_arp_request", 2: "linux_arp_reply"}.get(d["arp.op"])
    if "tcp.flags" in d:
        fl = int(d["tcp.flags"], 16)
        sp, dp = d["tcp.sport"], d["tcp.dport"]
        v6 = et == "0x86dd"
        if vlan:
            return None
        if v6:
            if sp == 40004 and fl == 0x002:
                return "linux_syn6"
            if dp == 40004 and fl == 0x012:
                return "linux_synack6"
            return None
        if sp == 40001:
            if fl == 0x002:
                return "linux_syn"
            if fl == 0x010 and d["tcp.payload_len"] == 0:
                return "linux_ack"
            if fl == 0x018:
                return "linux_data"
            if fl & 0x001:
                return "linux_fin"
        if dp == 40003 and fl == 0x010 and "opt.sack" in d:
            return "linux_ack_sack"
        if dp == 40001 and fl == 0x012:
            return "linux_synack"
        if sp == 5002 and fl & 0x004:
            return "linux_rst"
        return None
    if et == "0x86dd" and d["ip6.next"] == 0:
        return "linux_mld_hbh"
    if "icmp.type" in d and not vlan:
        if et == "0x0800":
            return {(3, 4): "linux_icmp_frag_needed", (8, 0): "linux_icmp_echo_request",
                    (0, 0): "linux_icmp_echo_reply"}.get((d["icmp.type"], d["icmp.code"]))
        if d["icmp.type"] == 2:
            return "linux_icmp6_packet_too_big"
    return None


WANTED = ["linux_arp_request", "linux_arp_reply", "linux_syn", "linux_synack", "linux_ack",
          "linux_data", "linux_fin", "linux_rst", "linux_icmp_frag_needed",
          "linux_icmp_echo_request", "linux_icmp_echo_reply", "linux_syn6", "linux_synack6",
          "linux_icmp6_packet_too_big", "linux_ack_sack", "linux_mld_hbh"]
# Derived, not captured: see tag().
DERIVED = ["linux_vlan_syn"]


def extract(pcap, outdir):
    got = {}
    for frame in read_pcap(pcap):
        try:
            name = classify(decode(frame))
        except (IndexError, struct.error):
            continue
        if name and name not in got:
            got[name] = frame
    missing = [n for n in WANTED if n not in got]
    if missing:
        raise SystemExit("capture lacks: " + ", ".join(missing))
    got["linux_vlan_syn"] = tag(got["linux_syn"], 100)
    for name in WANTED + DERIVED:
        with open(os.path.join(outdir, name + ".bin"), "wb") as f:
            f.write(got[name])
        print(f"{name}.bin: {len(got[name])} bytes")


def tag(frame, vid):
    """The frame with an 802.1Q tag (TPID 0x8100, PCP 0, DEI 0, VID vid) after the MACs."""
    return frame[:12] + struct.pack("!HH", 0x8100, vid) + frame[12:]


def dump(outdir):
    for name in WANTED + DERIVED:
        with open(os.path.join(outdir, name + ".bin"), "rb") as f:
            frame = f.read()
        print(f"== {name}.bin")
        for k, v in decode(frame).items():
            print(f"  {k} = {v}")


if __name__ == "__main__":
    if len(sys.argv) >= 2 and sys.argv[1] == "--dump":
        dump(sys.argv[2] if len(sys.argv) > 2 else os.path.dirname(os.path.abspath(__file__)))
    elif len(sys.argv) == 3:
        extract(sys.argv[1], sys.argv[2])
    else:
        raise SystemExit(__doc__)
