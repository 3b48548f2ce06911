// SPDX-License-Identifier: MIT OR Apache-2.0 OR GPL-2.0-only
/*
 * xsk_steer: hand the segments that belong to the user-space stack to the AF_XDP socket of
 * the queue they arrived on; pass everything else to the kernel untouched.
 *
 * Ours:
 *   - TCP to an (address, port) in `listen`, or to (wildcard, port) of the same family;
 *   - TCP to an address in `owned_addrs` with the destination port in the client range, or on
 *     any port in own-address mode
 *     (config), i.e. replies to connections the stack opened;
 *   - in either mode: ICMPv4 destination unreachable / time exceeded / parameter problem and
 *     ICMPv6 destination unreachable / packet too big / time exceeded / parameter problem
 *     whose quoted packet is TCP that steering would have taken in the reverse direction,
 *     i.e. the quoted *source* is a listen entry, or an owned address with a client port
 *     (any port in own-address mode), whatever the error's own destination. Path-MTU
 *     discovery (RFC 1191, RFC 8201) depends on these reaching the stack;
 *   - in own-address mode only: ARP whose target is an owned address, ICMP to an owned
 *     address, ICMPv6 to an owned address or a neighbour solicitation for one.
 * Anything else, and anything we cannot parse, is XDP_PASS.
 *
 * With the SYN shield on (shield.h), a pure SYN to a listening port is answered here by
 * XDP_TX with a SYN cookie, or dropped when the stack would refuse it.
 *
 * Invariant (see the shard's connection table): steering never looks at the source, so a
 * flow lands on whichever rx queue the NIC's RSS (or veth's tx queue choice) put it on, and
 * the shard of that queue owns it or hands it over. ICMP errors come from routers, so they
 * hash apart from the flow they quote: the stack finds the owner by the quoted 4-tuple.
 */
#include <linux/bpf.h>
#include <linux/in.h>
#include "parsing.h"
#include "maps.h"

/* What a frame is, as far as steering cares. */
enum steer_class {
	CLASS_KERNEL = 0,	/* not ours */
	CLASS_LISTEN,
	CLASS_CLIENT,
	CLASS_ARP,
	CLASS_ICMP,
	CLASS_ICMP_ERROR,
	CLASS_TRUNCATED,
	CLASS_BAD_HEADER,
	CLASS_FRAGMENT,
	CLASS_IPV6_EXT,
};

static __always_inline void count(__u32 stat)
{
	__u64 *v = bpf_map_lookup_elem(&stats, &stat);

	/* Per-CPU slot: no other CPU writes it, no atomic needed. */
	if (v)
		*v += 1;
}

/* The SYN shield needs count() and the maps. */
#include "shield.h"

static __always_inline int class_of_parse_error(int err)
{
	return err == PARSE_TRUNCATED ? CLASS_TRUNCATED : CLASS_BAD_HEADER;
}

static __always_inline int is_owned4(const void *addr)
{
	struct addr_key key = {};

	key.family = STEER_FAMILY_IPV4;
	__builtin_memcpy(key.addr, addr, 4);
	return bpf_map_lookup_elem(&owned_addrs, &key) != NULL;
}

static __always_inline int is_owned6(const void *addr)
{
	struct addr_key key = {};

	key.family = STEER_FAMILY_IPV6;
	__builtin_memcpy(key.addr, addr, 16);
	return bpf_map_lookup_elem(&owned_addrs, &key) != NULL;
}

/* TCP: listen entry (exact, then wildcard), or owned address + client port range. */
static __always_inline int classify_tcp(const struct steer_config *cfg, __u8 family,
					const void *daddr, __be16 dport)
{
	struct listen_key key = {};
	__u16 port = bpf_ntohs(dport);

	key.family = family;
	key.port = port;
	if (family == STEER_FAMILY_IPV4)
		__builtin_memcpy(key.addr, daddr, 4);
	else
		__builtin_memcpy(key.addr, daddr, 16);
	if (bpf_map_lookup_elem(&listen, &key))
		return CLASS_LISTEN;

	__builtin_memset(key.addr, 0, sizeof(key.addr));
	if (bpf_map_lookup_elem(&listen, &key))
		return CLASS_LISTEN;

	if (port >= cfg->client_port_min && port <= cfg->client_port_max) {
		if (family == STEER_FAMILY_IPV4 ? is_owned4(daddr) : is_owned6(daddr))
			return CLASS_CLIENT;
	}
	/* An address the stack owns is the stack's on every port: it answers closed ports with
	 * a RST (RFC 9293 §3.10.7.1); the kernel has no such address and would stay silent. */
	if ((cfg->flags & STEER_F_OWN_ADDRESS) &&
	    (family == STEER_FAMILY_IPV4 ? is_owned4(daddr) : is_owned6(daddr)))
		return CLASS_CLIENT;
	return CLASS_KERNEL;
}

/*
 * The quoted segment of an ICMP error is one the stack (or the kernel) sent: its source is
 * our side. Ours when classify_tcp would take the reverse direction, i.e. the reply to it.
 */
static __always_inline int classify_tcp_quote(const struct steer_config *cfg, __u8 family,
					      const void *saddr, __be16 sport)
{
	return classify_tcp(cfg, family, saddr, sport) == CLASS_KERNEL ? CLASS_KERNEL
									: CLASS_ICMP_ERROR;
}

/*
 * ICMPv4 error about a TCP segment of ours (RFC 792, RFC 1122 §4.2.3.9): CLASS_ICMP_ERROR.
 * Any other ICMP is CLASS_KERNEL, or a parse error class when the quote is cut short or
 * malformed. `nh` is a copy: the caller's cursor stays on the ICMP header.
 */
static __always_inline int classify_icmp4_error(struct hdr_cursor nh, void *data_end,
						const struct steer_config *cfg)
{
	struct icmp_err_hdr *icmp;
	struct tcp_quote *quote;
	struct iphdr *qiph;
	int type, proto, err;

	type = parse_icmp_err_hdr(&nh, data_end, &icmp);
	if (type < 0)
		return class_of_parse_error(type);
	if (type != ICMP_DEST_UNREACH && type != ICMP_TIME_EXCEEDED && type != ICMP_PARAMETERPROB)
		return CLASS_KERNEL;

	/*
	 * The quoted IPv4 header, options included (IHL honoured). Verifier: this is a second
	 * variable offset on top of the outer header's; parse_iphdr bounds ihl * 4 to [20, 60]
	 * and re-checks the whole header against data_end from the new position, which is what
	 * the verifier needs to track the sum.
	 */
	proto = parse_iphdr(&nh, data_end, &qiph);
	if (proto < 0)
		return class_of_parse_error(proto);
	if (proto != IPPROTO_TCP)
		return CLASS_KERNEL;
	/* A quoted later fragment has no TCP header; the stack sets DF and never sends one. */
	if (qiph->frag_off & bpf_htons(IPV4_OFFSET))
		return CLASS_FRAGMENT;
	err = parse_tcp_quote(&nh, data_end, &quote);
	if (err < 0)
		return class_of_parse_error(err);
	return classify_tcp_quote(cfg, STEER_FAMILY_IPV4, &qiph->saddr, quote->source);
}

/* An IPv6 extension header (RFC 8200 §4) the program does not walk. */
static __always_inline int is_ipv6_ext(int nexthdr)
{
	switch (nexthdr) {
	case IPPROTO_HOPOPTS:
	case IPPROTO_ROUTING:
	case IPPROTO_FRAGMENT:
	case IPPROTO_DSTOPTS:
	case IPPROTO_AH:
	case IPPROTO_ESP:
	case IPPROTO_MH:
		return 1;
	default:
		return 0;
	}
}

/* The ICMPv6 counterpart (RFC 4443 §3.1-3.4). `nh` is a copy, as above. */
static __always_inline int classify_icmp6_error(struct hdr_cursor nh, void *data_end,
						const struct steer_config *cfg)
{
	struct icmp_err_hdr *icmp;
	struct tcp_quote *quote;
	struct ipv6hdr *qip6h;
	int type, nexthdr, err;

	type = parse_icmp_err_hdr(&nh, data_end, &icmp);
	if (type < 0)
		return class_of_parse_error(type);
	if (type != ICMPV6_DEST_UNREACH && type != ICMPV6_PKT_TOOBIG &&
	    type != ICMPV6_TIME_EXCEED && type != ICMPV6_PARAMPROB)
		return CLASS_KERNEL;

	nexthdr = parse_ip6hdr(&nh, data_end, &qip6h);
	if (nexthdr < 0)
		return class_of_parse_error(nexthdr);
	/*
	 * XXX: extension headers in the quote are not walked either (see classify_ipv6): the
	 * error passes to the kernel. The stack sends none, so a quote with one is about someone
	 * else's packet or was rewritten on the way.
	 */
	if (is_ipv6_ext(nexthdr))
		return CLASS_IPV6_EXT;
	if (nexthdr != IPPROTO_TCP)
		return CLASS_KERNEL;
	err = parse_tcp_quote(&nh, data_end, &quote);
	if (err < 0)
		return class_of_parse_error(err);
	return classify_tcp_quote(cfg, STEER_FAMILY_IPV6, &qip6h->saddr, quote->source);
}

static __always_inline int classify_ipv4(struct hdr_cursor *nh, void *data_end,
					 const struct steer_config *cfg)
{
	struct iphdr *iph;
	struct tcphdr *tcp;
	int proto, err, class;

	proto = parse_iphdr(nh, data_end, &iph);
	if (proto < 0)
		return class_of_parse_error(proto);

	/*
	 * XXX: IPv4 fragments pass to the kernel, which reassembles and then finds no socket.
	 * Only the first fragment carries the ports, so steering them would split a datagram
	 * between two receivers; the stack advertises an MSS that avoids fragmentation.
	 */
	if (iph->frag_off & bpf_htons(IPV4_MF | IPV4_OFFSET))
		return CLASS_FRAGMENT;

	switch (proto) {
	case IPPROTO_TCP:
		err = parse_tcphdr(nh, data_end, &tcp);
		if (err < 0)
			return class_of_parse_error(err);
		return classify_tcp(cfg, STEER_FAMILY_IPV4, &iph->daddr, tcp->dest);
	case IPPROTO_ICMP:
		/* Errors about the stack's segments first, in either mode, whoever they are
		 * addressed to; then, in own-address mode, everything else to an owned address
		 * (echo, and errors the quote test turned down: the kernel has no such address). */
		class = classify_icmp4_error(*nh, data_end, cfg);
		if (class == CLASS_ICMP_ERROR)
			return class;
		if ((cfg->flags & STEER_F_OWN_ADDRESS) && is_owned4(&iph->daddr))
			return CLASS_ICMP;
		return class;
	default:
		return CLASS_KERNEL;
	}
}

static __always_inline int classify_ipv6(struct hdr_cursor *nh, void *data_end,
					 const struct steer_config *cfg)
{
	struct ipv6hdr *ip6h;
	struct tcphdr *tcp;
	struct nd_solicit *ns;
	int nexthdr, err, class;

	nexthdr = parse_ip6hdr(nh, data_end, &ip6h);
	if (nexthdr < 0)
		return class_of_parse_error(nexthdr);

	switch (nexthdr) {
	case IPPROTO_TCP:
		err = parse_tcphdr(nh, data_end, &tcp);
		if (err < 0)
			return class_of_parse_error(err);
		return classify_tcp(cfg, STEER_FAMILY_IPV6, &ip6h->daddr, tcp->dest);
	case IPPROTO_ICMPV6:
		/* As for ICMPv4: errors about our segments first, then own-address mode. */
		class = classify_icmp6_error(*nh, data_end, cfg);
		if (class == CLASS_ICMP_ERROR)
			return class;
		if (!(cfg->flags & STEER_F_OWN_ADDRESS))
			return class;
		if (is_owned6(&ip6h->daddr))
			return CLASS_ICMP;
		/* Solicitations go to the solicited-node multicast group: match the target. */
		ns = nh->pos;
		if ((void *)(ns + 1) > data_end)
			return class;
		if (ns->type == ICMPV6_NEIGHBOUR_SOLICIT && is_owned6(&ns->target))
			return CLASS_ICMP;
		return class;
	default:
		/*
		 * XXX: extension headers are not walked: such segments pass to the kernel. A
		 * bounded walk (as in xdp-tools' parsing_helpers.h) would steer them; no TCP
		 * peer we serve sends them today.
		 */
		return is_ipv6_ext(nexthdr) ? CLASS_IPV6_EXT : CLASS_KERNEL;
	}
}

static __always_inline int classify_arp(struct hdr_cursor *nh, void *data_end,
					const struct steer_config *cfg)
{
	struct arp_eth_ipv4 *arp;
	int err;

	/* Shared-address mode: the kernel owns the address and answers ARP for it. */
	if (!(cfg->flags & STEER_F_OWN_ADDRESS))
		return CLASS_KERNEL;
	err = parse_arp(nh, data_end, &arp);
	if (err == PARSE_TRUNCATED)
		return CLASS_TRUNCATED;
	if (err < 0)
		return CLASS_KERNEL;	/* not IPv4 over Ethernet: not ours */
	return is_owned4(arp->tpa) ? CLASS_ARP : CLASS_KERNEL;
}

static __always_inline int classify(struct xdp_md *ctx, const struct steer_config *cfg)
{
	void *data_end = (void *)(long)ctx->data_end;
	struct hdr_cursor nh = { .pos = (void *)(long)ctx->data };
	int proto;

	proto = parse_ethhdr(&nh, data_end);
	if (proto < 0)
		return class_of_parse_error(proto);

	switch (proto) {
	case bpf_htons(ETH_P_IP):
		return classify_ipv4(&nh, data_end, cfg);
	case bpf_htons(ETH_P_IPV6):
		return classify_ipv6(&nh, data_end, cfg);
	case bpf_htons(ETH_P_ARP):
		return classify_arp(&nh, data_end, cfg);
	default:
		return CLASS_KERNEL;
	}
}

static __always_inline int pass(__u32 stat)
{
	if (stat != XSK_STAT__MAX)
		count(stat);
	count(XSK_STAT_PASSED);
	return XDP_PASS;
}

SEC("xdp")
int xsk_steer(struct xdp_md *ctx)
{
	const struct steer_config *cfg;
	__u32 zero = 0;
	__u32 match;
	int class, ret;

	count(XSK_STAT_SEEN);
	cfg = bpf_map_lookup_elem(&config, &zero);
	if (!cfg)
		return pass(XSK_STAT__MAX);	/* cannot happen: array maps always have key 0 */

	class = classify(ctx, cfg);
	switch (class) {
	case CLASS_LISTEN:
		match = XSK_STAT_MATCH_LISTEN;
		break;
	case CLASS_CLIENT:
		match = XSK_STAT_MATCH_CLIENT;
		break;
	case CLASS_ARP:
		match = XSK_STAT_MATCH_ARP;
		break;
	case CLASS_ICMP:
		match = XSK_STAT_MATCH_ICMP;
		break;
	case CLASS_ICMP_ERROR:
		match = XSK_STAT_MATCH_ICMP_ERROR;
		break;
	case CLASS_TRUNCATED:
		return pass(XSK_STAT_TRUNCATED);
	case CLASS_BAD_HEADER:
		return pass(XSK_STAT_BAD_HEADER);
	case CLASS_FRAGMENT:
		return pass(XSK_STAT_FRAGMENT);
	case CLASS_IPV6_EXT:
		return pass(XSK_STAT_IPV6_EXT);
	default:
		return pass(XSK_STAT__MAX);
	}

	count(match);
	if (class == CLASS_LISTEN) {
		ret = shield_syn(ctx);
		if (ret != SHIELD_CONTINUE)
			return ret;
	}
	/* The flags argument is the verdict when the queue has no socket: let the kernel have
	 * it rather than drop it (the stack is not running on that queue). */
	ret = bpf_redirect_map(&xsks_map, ctx->rx_queue_index, XDP_PASS);
	if (ret == XDP_REDIRECT) {
		count(XSK_STAT_REDIRECTED);
		return ret;
	}
	return pass(XSK_STAT_NO_SOCKET);
}

char _license[] SEC("license") = "Dual MIT/GPL";
