/* SPDX-License-Identifier: MIT OR Apache-2.0 OR GPL-2.0-only */
/*
 * The SYN shield: with SHIELD_F_ON set in `shield_cfg`, a pure SYN (SYN set; ACK, RST and FIN
 * clear) to a listening (address, port) is answered here, by XDP_TX, with the SYN cookie
 * SYN-ACK the stack itself would send (src/tcp/listener.rs `on_syn`, cookie branch): the flood
 * never reaches an AF_XDP ring, a user-space wake-up or the cores' queues, and the legitimate
 * clients' segments do not wait behind it. The final ACK is steered to AF_XDP as before; the
 * core that receives it validates the cookie (syncookie::check, current or previous key) and
 * creates the connection. Nothing here creates state, so a forged or stale ACK still meets
 * the stack's check, which refuses it (RFC 4987 §3.6).
 *
 * Why the stack's own cookie, computed here, rather than another scheme: the stack already
 * validates these on any core (DESIGN.md, "Sharding across cores"), with keys rotated from one
 * master secret, so a cookie from the program and a cookie from a core are interchangeable.
 * The shield can switch on and off (serve --syn-shield auto) with handshakes in flight, and
 * a fleet sharing --cookie-secret-file keeps its property that any host validates any
 * host's cookie. The hash is SipHash-2-4 (siphash.h) over the same bytes as
 * src/tcp/secrets.rs `keyed_hash`: the 4-tuple (ours first), the client's ISN and the
 * cookie counter t; the cookie layout is syncookie.rs's (t mod 32, MSS index, 24 hash bits).
 *
 * Keys and time. The engine writes the cookie key of each 10-minute epoch into
 * `shield_keys` (slot epoch & 1) before the epoch is used, and never rewrites a slot the
 * program may be reading, so no SYN-ACK is made from a half-written key. The program uses an
 * epoch's key SHIELD_KEY_GRACE_NS after the cores have switched to it: a cookie made with
 * the previous key is still accepted by every core (it is their previous key), while a
 * cookie made with a key a core has not installed yet would be refused. The engine's clock
 * is CLOCK_MONOTONIC shifted by `clock_offset_ns` (its start, or UNIX time with a secret
 * file), which bpf_ktime_get_ns (CLOCK_MONOTONIC) plus the offset reproduces; the cookie
 * counter and the timestamp clock come from it, so the cookie's t and the SYN-ACK's TSval
 * are what a core would have used at that instant, and the connection's later timestamps
 * continue from that TSval (RFC 7323 §5.4 offset per tuple, PAWS and RTT measurement work).
 *
 * A SYN the stack would refuse is dropped here and counted: a bad IPv4 or TCP checksum,
 * malformed options, a header longer than the segment, a multicast, broadcast or unspecified
 * source, source port 0. Anything the shield does not handle goes on to the stack as before
 * (counted as to_stack): see the XXX notes below.
 *
 * XXX: the program cannot see the stack's tables, so a SYN for a tuple a core holds is
 * answered with a cookie too: in TIME-WAIT the core takes the cookie ACK as the reuse it
 * would have allowed the SYN (listener.rs cookie_ack_in_time_wait, RFC 6191); in
 * ESTABLISHED or SYN-RECEIVED the peer gets a cookie SYN-ACK where the stack would send a
 * challenge ACK (RFC 5961 §4) or its own SYN-ACK again, and its answer is then judged by that
 * connection as any out-of-window segment.
 *
 * Needs, from the including file: count(stat) and the maps of maps.h.
 */
#ifndef XDPTCP_SHIELD_H
#define XDPTCP_SHIELD_H

#include "parsing.h"
#include "maps.h"
#include "siphash.h"

/* shield_syn's answer when the frame is not the shield's: steer it as usual. */
#define SHIELD_CONTINUE (-1)

/* TCP option kinds: RFC 9293 §3.2, RFC 7323 §2.2/§3.2, RFC 2018 §2. */
#define TCPOPT_EOL 0
#define TCPOPT_NOP 1
#define TCPOPT_MSS 2
#define TCPOPT_WSCALE 3
#define TCPOPT_SACK_PERM 4
#define TCPOPT_TIMESTAMP 8
#define MAX_TCP_OPTION_BYTES 40

/* TCP flags (byte 13 of the header). */
#define TH_FIN 0x01
#define TH_SYN 0x02
#define TH_RST 0x04
#define TH_ACK 0x10
#define TH_ECE 0x40
#define TH_CWR 0x80

/* RFC 9293 §3.7.1 (MUST-15): the MSS assumed when a SYN carries none, 536 on IPv4 (conn.rs
 * DEFAULT_MSS_V4) and 1280 - 60 on IPv6 (DEFAULT_MSS_V6). */
#define SHIELD_DEFAULT_MSS 536
#define SHIELD_DEFAULT_MSS_V6 1220
/* Cookie option bits in the low bits of TSval (syncookie.rs TS_OPT_BITS and friends). */
#define COOKIE_TS_OPT_MASK 0x3f
#define COOKIE_TS_WSCALE_NONE 0xf
#define COOKIE_TS_SACK 0x10
#define COOKIE_TS_ECN 0x20
/* RFC 7323 §2.3: the largest window shift. */
#define MAX_WSCALE 14
#define NSEC_PER_MSEC 1000000ULL
#define IPV4_DF 0x4000

/* What the shield needs from a SYN's options (the stack's TcpOptions::parse keeps the last
 * of each kind, as here). */
struct syn_opts {
	__u32 tsval;
	__u16 mss;
	__u8 wscale;
	__u8 has_mss;
	__u8 has_wscale;
	__u8 sack_perm;
	__u8 has_ts;
	__u8 pad;
};

static __always_inline int shield_to_stack(void)
{
	count(XSK_STAT_SHIELD_TO_STACK);
	return SHIELD_CONTINUE;
}

static __always_inline int shield_drop(__u32 stat)
{
	count(stat);
	return XDP_DROP;
}

/* Index in syncookie.rs MSS_TABLE (536, 1200, 1300, 1360, 1400, 1440, 1460, 8960) of the
 * largest entry not above `mss`; 0 below the first. */
static __always_inline __u32 cookie_mss_index(__u32 mss)
{
	if (mss >= 8960)
		return 7;
	if (mss >= 1460)
		return 6;
	if (mss >= 1440)
		return 5;
	if (mss >= 1400)
		return 4;
	if (mss >= 1360)
		return 3;
	if (mss >= 1300)
		return 2;
	if (mss >= 1200)
		return 1;
	return 0;
}

/* One's complement sum of the `n` bytes at `p` (n even, a constant), as 16-bit words in the
 * order they are stored: the sum is byte-order independent as long as the result is stored
 * back the same way (RFC 1071 §2(B)). */
static __always_inline __u32 csum_words(const __u8 *p, const int n)
{
	__u32 sum = 0;
	__u16 w;
	int i;

#pragma unroll
	for (i = 0; i < n; i += 2) {
		__builtin_memcpy(&w, p + i, sizeof(w));
		sum += w;
	}
	return sum;
}

/* The checksum field for `sum`: folded to 16 bits and inverted. A received header whose sum
 * includes its checksum field folds to 0xffff, so this is 0 for a valid one. */
static __always_inline __u16 csum_finish(__u32 sum)
{
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return (__u16)~sum;
}

static __always_inline __u32 be32_at(const __u8 *p)
{
	return ((__u32)p[0] << 24) | ((__u32)p[1] << 16) | ((__u32)p[2] << 8) | p[3];
}

static __always_inline void put_be16(__u8 *p, __u16 v)
{
	p[0] = v >> 8;
	p[1] = v & 0xff;
}

static __always_inline void put_be32(__u8 *p, __u32 v)
{
	p[0] = v >> 24;
	p[1] = (v >> 16) & 0xff;
	p[2] = (v >> 8) & 0xff;
	p[3] = v & 0xff;
}

/* The option walk's state: the TCP header (copied from the frame, zero past `hlen`), where
 * the walk is, and what it found. */
struct opt_walk {
	__u8 th[64];
	__u32 hlen;
	__u32 off;
	struct syn_opts o;
};

/*
 * One step of the walk over the SYN's options (a bpf_loop callback), with the rules of the
 * stack's parser (wire::TcpOptions::parse): EOL ends the list, NOP is one byte, any other
 * kind has a length of at least 2 that stays inside the header, or the list ends there and
 * the options before it are kept (Linux tcp_parse_options; RFC 9293 MUST-68: be prepared
 * for an illegal length); a known kind with another length is ignored; a later option of a kind
 * replaces an earlier one. Each step moves at least one byte, so 40 steps cover any header.
 *
 * Verifier: a plain loop here made the verifier walk every path through 40 iterations (over
 * a million instructions); bpf_loop checks the body once. Offsets are masked with 63 to stay
 * inside the buffer; past `hlen` only the length checks read, and they refuse the option.
 */
static long syn_option_step(__u64 index, void *data)
{
	struct opt_walk *w = data;
	__u32 off = w->off, hlen = w->hlen, kind, len;

	if (off >= hlen)
		return 1;
	kind = w->th[off & 63];
	if (kind == TCPOPT_EOL)
		return 1;
	if (kind == TCPOPT_NOP) {
		w->off = off + 1;
		return 0;
	}
	if (off + 1 >= hlen)
		return 1;
	len = w->th[(off + 1) & 63];
	if (len < 2 || off + len > hlen)
		return 1;
	if (kind == TCPOPT_MSS && len == 4) {
		w->o.mss = ((__u16)w->th[(off + 2) & 63] << 8) | w->th[(off + 3) & 63];
		w->o.has_mss = 1;
	} else if (kind == TCPOPT_WSCALE && len == 3) {
		w->o.wscale = w->th[(off + 2) & 63];
		w->o.has_wscale = 1;
	} else if (kind == TCPOPT_SACK_PERM && len == 2) {
		w->o.sack_perm = 1;
	} else if (kind == TCPOPT_TIMESTAMP && len == 10) {
		w->o.tsval = ((__u32)w->th[(off + 2) & 63] << 24) | ((__u32)w->th[(off + 3) & 63] << 16) |
			     ((__u32)w->th[(off + 4) & 63] << 8) | w->th[(off + 5) & 63];
		w->o.has_ts = 1;
	}
	w->off = off + len;
	return 0;
}

/* A source the stack refuses (tcp::shard is_valid_source): unspecified, broadcast or
 * multicast. `src` is the address as it sits in the header. */
static __always_inline int bad_source(const __u8 *src, const int v6)
{
	__u32 i, zero = 1, ones = 1;

	if (v6) {
		if (src[0] == 0xff)
			return 1;
#pragma unroll
		for (i = 0; i < 16; i++)
			zero &= src[i] == 0;
		return zero;
	}
	if ((src[0] & 0xf0) == 0xe0)
		return 1;
#pragma unroll
	for (i = 0; i < 4; i++) {
		zero &= src[i] == 0;
		ones &= src[i] == 0xff;
	}
	return zero | ones;
}

/*
 * Answers the pure SYN in `ctx` (IPv4 without options when !v6, IPv6 without extension
 * headers when v6; no VLAN tag) with the cookie SYN-ACK, in place: XDP_TX. Or drops it
 * (XDP_DROP), or leaves it untouched for the stack (SHIELD_CONTINUE).
 *
 * The headers are copied to the stack, checked there, the reply is built there and copied
 * back over the frame, which is cut or grown to the reply's length first.
 */
static __always_inline int shield_answer(struct xdp_md *ctx, const struct shield_config *cfg, const int v6)
{
	const __u32 iplen = v6 ? sizeof(struct ipv6hdr) : sizeof(struct iphdr);
	const __u32 alen = v6 ? 16 : 4;
	/* Where the addresses sit in the header: source, then destination. */
	const __u32 src_off = v6 ? 8 : 12;
	__u8 ip[40] = {}, m[48] = {}, oip[40] = {}, out[40] = {};
	struct opt_walk w = {};
	const __u8 *th = w.th;
	struct syn_opts *o = &w.o;
	const struct shield_key *key;
	void *data, *data_end;
	struct ethhdr *eth;
	__u8 *tcp, mac[ETH_ALEN];
	__u32 l4len, frame_len, sum, counter, cookie, local_mss, peer_mss, tsval = 0;
	__u32 ts_now, bits, slot, seq;
	/* 64-bit so that the bounds checks and the helpers' size arguments are one register:
	 * a 32-bit value is compared through a zero-extended copy, whose bounds the verifier
	 * does not carry back to the original. */
	__u64 hlen, tcp_len, now, epoch;
	int ts_ok, ws_ok, sack_ok, ecn, delta;
	__u16 check;

	data = (void *)(long)ctx->data;
	data_end = (void *)(long)ctx->data_end;
	tcp = data + ETH_HLEN + iplen;
	if ((void *)(tcp + sizeof(struct tcphdr)) > data_end)
		return SHIELD_CONTINUE;
	hlen = (tcp[12] >> 4) * 4;
	if (bpf_xdp_load_bytes(ctx, ETH_HLEN, ip, iplen))
		return shield_to_stack();

	/* Lengths, as the stack's parsers check them: a header longer than the segment, or a
	 * segment past the end of the frame, is refused there (Truncated, BadHeaderLen). */
	frame_len = bpf_xdp_get_buff_len(ctx);
	if (v6) {
		l4len = ((__u32)ip[4] << 8) | ip[5];
	} else {
		l4len = ((__u32)ip[2] << 8) | ip[3];
		if (l4len < sizeof(struct iphdr))
			return shield_drop(XSK_STAT_SHIELD_DROP_MALFORMED);
		l4len -= sizeof(struct iphdr);
	}
	if (hlen < sizeof(struct tcphdr) || l4len < hlen || ETH_HLEN + iplen + l4len > frame_len)
		return shield_drop(XSK_STAT_SHIELD_DROP_MALFORMED);
	/* XXX: a SYN with data (TCP Fast Open, or a flood padding its SYNs) goes to the stack,
	 * which answers it as any SYN (the data is not acknowledged); verifying a checksum over
	 * a payload of any length is not worth a loop here. */
	if (l4len != hlen)
		return shield_to_stack();
	/* Verifier: hlen is known to be 20..60 only after these checks; the barrier stops the
	 * compiler from using l4len (equal here, unbounded for the verifier) in its place. */
	barrier_var(hlen);
	if (hlen < sizeof(struct tcphdr) || hlen > sizeof(struct tcphdr) + MAX_TCP_OPTION_BYTES)
		return shield_to_stack();
	if (bpf_xdp_load_bytes(ctx, ETH_HLEN + iplen, w.th, hlen))
		return shield_to_stack();

	/* Checksums: IPv4 header (RFC 791), then TCP over the pseudo-header (RFC 9293 §3.1,
	 * RFC 8200 §8.1); the buffer is zero past the header, which adds nothing. */
	if (!v6 && csum_finish(csum_words(ip, sizeof(struct iphdr))) != 0)
		return shield_drop(XSK_STAT_SHIELD_DROP_CHECKSUM);
	sum = csum_words(ip + src_off, 2 * alen) + bpf_htons(IPPROTO_TCP) + bpf_htons((__u16)hlen);
	sum += csum_words(th, 60);
	if (csum_finish(sum) != 0)
		return shield_drop(XSK_STAT_SHIELD_DROP_CHECKSUM);

	if (bad_source(ip + src_off, v6) || (th[0] == 0 && th[1] == 0))
		return shield_drop(XSK_STAT_SHIELD_DROP_MALFORMED);
	w.hlen = hlen;
	w.off = sizeof(struct tcphdr);
	bpf_loop(MAX_TCP_OPTION_BYTES, syn_option_step, &w, 0);

	/* The engine's clock, and the key of the epoch the program is in (see the top). */
	now = bpf_ktime_get_ns() + (__u64)cfg->clock_offset_ns;
	if (now < SHIELD_KEY_GRACE_NS)
		return shield_to_stack();
	epoch = (now - SHIELD_KEY_GRACE_NS) / SHIELD_KEY_PERIOD_NS;
	slot = epoch & 1;
	key = bpf_map_lookup_elem(&shield_keys, &slot);
	/* No key for this epoch (the engine has not written it: it is stopping, or stalled
	 * for a whole period): the stack answers, with the keys it has. */
	if (!key || key->epoch != epoch)
		return shield_to_stack();
	counter = now / SHIELD_COOKIE_PERIOD_NS;

	/* The hashed bytes of secrets.rs keyed_hash: our address, the peer's, our port, the
	 * peer's (network order), then the extra words big-endian. */
	__builtin_memcpy(m, ip + src_off + alen, alen);
	__builtin_memcpy(m + alen, ip + src_off, alen);
	m[2 * alen] = th[2];
	m[2 * alen + 1] = th[3];
	m[2 * alen + 2] = th[0];
	m[2 * alen + 3] = th[1];

	/* Linux `cookie_init_timestamp`: the options the SYN asked for ride in TSval, which needs
	 * timestamps on both sides; without them the SYN-ACK offers neither window scaling nor
	 * SACK (the cookie could not carry them). */
	ecn = (th[13] & (TH_ECE | TH_CWR)) == (TH_ECE | TH_CWR);
	ts_ok = o->has_ts && (cfg->flags & SHIELD_F_TIMESTAMPS);
	ws_ok = ts_ok && o->has_wscale && (cfg->flags & SHIELD_F_WINDOW_SCALING);
	sack_ok = ts_ok && o->sack_perm && (cfg->flags & SHIELD_F_SACK);
	if (ts_ok) {
		/* RFC 7323 §5.4: the timestamp clock (1 ms) plus the tuple's offset, the offset
		 * being the high half of the keyed hash of the tuple alone (secrets.rs ts_offset);
		 * the bytes after the tuple are still zero here. */
		ts_now = (__u32)(now / NSEC_PER_MSEC) +
			 (__u32)(siphash24(cfg->ts_key, m, 2 * alen + 4) >> 32);
		bits = ws_ok ? (o->wscale < MAX_WSCALE ? o->wscale : MAX_WSCALE) : COOKIE_TS_WSCALE_NONE;
		if (sack_ok)
			bits |= COOKIE_TS_SACK;
		if (ecn)
			bits |= COOKIE_TS_ECN;
		/* syncookie::encode_ts_options: never ahead of the clock. */
		tsval = (ts_now & ~COOKIE_TS_OPT_MASK) | bits;
		if (tsval > ts_now)
			tsval -= COOKIE_TS_OPT_MASK + 1;
	}

	/* syncookie::generate: MSS index of the peer's MSS (at most ours), t mod 32, 24 bits of
	 * SipHash(key, tuple, client ISN, t). */
	local_mss = v6 ? cfg->mss_v6 : cfg->mss_v4;
	peer_mss = o->has_mss ? o->mss : (v6 ? SHIELD_DEFAULT_MSS_V6 : SHIELD_DEFAULT_MSS);
	if (peer_mss > local_mss)
		peer_mss = local_mss;
	__builtin_memcpy(m + 2 * alen + 4, th + 4, 4);
	put_be32(m + 2 * alen + 8, counter);
	cookie = ((counter & 31) << 27) | (cookie_mss_index(peer_mss) << 24) |
		 ((__u32)siphash24(key->key, m, 2 * alen + 12) & 0xffffff);
	seq = be32_at(th + 4);

	/* The TCP header, as listener.rs send_synack with synack_options: MSS; SACK-permitted
	 * and timestamps (or NOP NOP timestamps); NOP window scale (wire::TcpOptions::emit). */
	tcp_len = sizeof(struct tcphdr) + 4 + (ts_ok ? 12 : 0) + (ws_ok ? 4 : 0);
	out[0] = th[2];
	out[1] = th[3];
	out[2] = th[0];
	out[3] = th[1];
	put_be32(out + 4, cookie);
	put_be32(out + 8, seq + 1);
	out[12] = (tcp_len / 4) << 4;
	out[13] = TH_SYN | TH_ACK;
	put_be16(out + 14, cfg->window);
	out[20] = TCPOPT_MSS;
	out[21] = 4;
	put_be16(out + 22, local_mss);
	if (ts_ok) {
		out[24] = sack_ok ? TCPOPT_SACK_PERM : TCPOPT_NOP;
		out[25] = sack_ok ? 2 : TCPOPT_NOP;
		out[26] = TCPOPT_TIMESTAMP;
		out[27] = 10;
		put_be32(out + 28, tsval);
		put_be32(out + 32, o->tsval);
	}
	if (ws_ok) {
		out[36] = TCPOPT_NOP;
		out[37] = TCPOPT_WSCALE;
		out[38] = 3;
		out[39] = cfg->rcv_wscale;
	}

	/* The IP header, as emit.rs: no DSCP/ECN, ID 0 and DF for IPv4, no flow label. */
	if (v6) {
		oip[0] = 0x60;
		put_be16(oip + 4, tcp_len);
		oip[6] = IPPROTO_TCP;
		oip[7] = cfg->ttl;
	} else {
		oip[0] = 0x45;
		put_be16(oip + 2, sizeof(struct iphdr) + tcp_len);
		put_be16(oip + 6, IPV4_DF);
		oip[8] = cfg->ttl;
		oip[9] = IPPROTO_TCP;
	}
	__builtin_memcpy(oip + src_off, ip + src_off + alen, alen);
	__builtin_memcpy(oip + src_off + alen, ip + src_off, alen);
	if (!v6) {
		check = csum_finish(csum_words(oip, sizeof(struct iphdr)));
		__builtin_memcpy(oip + 10, &check, sizeof(check));
	}
	sum = csum_words(oip + src_off, 2 * alen) + bpf_htons(IPPROTO_TCP) + bpf_htons((__u16)tcp_len);
	check = csum_finish(sum + csum_words(out, sizeof(out)));
	__builtin_memcpy(out + 16, &check, sizeof(check));

	/* Cut (or grow) the frame to the reply: whatever link padding the SYN carried goes. A
	 * frame that cannot grow (no tailroom) is left intact for the stack. */
	delta = (int)(ETH_HLEN + iplen + tcp_len) - (int)frame_len;
	if (delta && bpf_xdp_adjust_tail(ctx, delta))
		return shield_to_stack();
	barrier_var(tcp_len);
	if (tcp_len < sizeof(struct tcphdr) || tcp_len > sizeof(out))
		return XDP_ABORTED;	/* cannot happen: 24, 36 or 40 */
	/* XXX: a failed store after a successful resize leaves a frame that is neither the SYN
	 * nor the reply; the stores cannot fail on the length just set, and XDP_ABORTED makes
	 * such a frame visible (the xdp:xdp_exception tracepoint) rather than sent. */
	if (bpf_xdp_store_bytes(ctx, ETH_HLEN, oip, iplen) ||
	    bpf_xdp_store_bytes(ctx, ETH_HLEN + iplen, out, tcp_len))
		return XDP_ABORTED;

	/* The verifier forgets packet pointers across bpf_xdp_adjust_tail: derive them again. */
	data = (void *)(long)ctx->data;
	data_end = (void *)(long)ctx->data_end;
	eth = data;
	if ((void *)(eth + 1) > data_end)
		return XDP_ABORTED;
	__builtin_memcpy(mac, eth->h_dest, ETH_ALEN);
	__builtin_memcpy(eth->h_dest, eth->h_source, ETH_ALEN);
	__builtin_memcpy(eth->h_source, mac, ETH_ALEN);
	count(XSK_STAT_SHIELD_SYNACK);
	return XDP_TX;
}

/* Separate subprograms for IPv4 and IPv6: each gets its own 512-byte stack frame, and each
 * inlines shield_answer with the family a constant. */
static __noinline int shield_answer4(struct xdp_md *ctx, const struct shield_config *cfg)
{
	return shield_answer(ctx, cfg, 0);
}

static __noinline int shield_answer6(struct xdp_md *ctx, const struct shield_config *cfg)
{
	return shield_answer(ctx, cfg, 1);
}

/*
 * For a frame steering classed as CLASS_LISTEN: counts a pure SYN (shield on or off: the
 * rate `serve --syn-shield auto` watches), and with the shield on answers it
 * (shield_answer). SHIELD_CONTINUE: not answered, frame untouched, steer it.
 */
static __always_inline int shield_syn(struct xdp_md *ctx)
{
	void *data_end = (void *)(long)ctx->data_end;
	void *data = (void *)(long)ctx->data;
	const struct shield_config *cfg;
	struct ethhdr *eth = data;
	struct iphdr *iph;
	__u8 *tcp;
	__u32 zero = 0;
	int v6;

	if ((void *)(eth + 1) > data_end)
		return SHIELD_CONTINUE;
	if (eth->h_proto == bpf_htons(ETH_P_IP)) {
		iph = (void *)(eth + 1);
		if ((void *)(iph + 1) > data_end)
			return SHIELD_CONTINUE;
		/* XXX: IPv4 options are not handled here: such SYNs go to the stack uncounted. */
		if (iph->ihl != 5)
			return SHIELD_CONTINUE;
		tcp = (void *)(iph + 1);
		v6 = 0;
	} else if (eth->h_proto == bpf_htons(ETH_P_IPV6)) {
		/* Steering classed it as TCP right after the fixed header (no extension header). */
		tcp = data + ETH_HLEN + sizeof(struct ipv6hdr);
		v6 = 1;
	} else {
		/* XXX: VLAN-tagged frames go to the stack (it runs untagged: net::NetConfig vlan). */
		return SHIELD_CONTINUE;
	}
	if ((void *)(tcp + sizeof(struct tcphdr)) > data_end)
		return SHIELD_CONTINUE;
	if ((tcp[13] & (TH_SYN | TH_ACK | TH_RST | TH_FIN)) != TH_SYN)
		return SHIELD_CONTINUE;
	count(XSK_STAT_SYN);
	cfg = bpf_map_lookup_elem(&shield_cfg, &zero);
	if (!cfg || !(cfg->flags & SHIELD_F_ON))
		return SHIELD_CONTINUE;
	return v6 ? shield_answer6(ctx, cfg) : shield_answer4(ctx, cfg);
}

#endif /* XDPTCP_SHIELD_H */
