/* SPDX-License-Identifier: MIT OR Apache-2.0 OR GPL-2.0-only */
/*
 * Cursor parsers, one per header. Each checks that the header lies inside the packet right
 * before reading it, advances the cursor past it, and returns what the caller needs next
 * (the next protocol) or a negative PARSE_* code. Nothing here reads past what steering needs.
 */
#ifndef XDPTCP_PARSING_H
#define XDPTCP_PARSING_H

#include <linux/types.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/tcp.h>
#include <linux/icmpv6.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#define PARSE_TRUNCATED (-1)	/* the header runs past data_end */
#define PARSE_BAD (-2)		/* a field no sender may put there */

/* IPv4 flags/fragment offset field (host order masks). */
#define IPV4_MF 0x2000
#define IPV4_OFFSET 0x1fff

/* ARP fixed values for IPv4 over Ethernet (RFC 826). */
#define ARP_HRD_ETHER 1
#define ICMPV6_NEIGHBOUR_SOLICIT 135

/*
 * ICMPv4 error types (RFC 792). Spelled out here because <linux/icmp.h> pulls in
 * <linux/if.h> and with it glibc's <sys/socket.h>, which does not build for -target bpf.
 * The ICMPv6 ones (ICMPV6_DEST_UNREACH .. ICMPV6_PARAMPROB) come from <linux/icmpv6.h>.
 */
#define ICMP_DEST_UNREACH 3
#define ICMP_TIME_EXCEEDED 11
#define ICMP_PARAMETERPROB 12

struct hdr_cursor {
	void *pos;
};

/* 802.1Q tag: not in the uapi headers. */
struct vlan_tag {
	__be16 tci;
	__be16 encapsulated_proto;
};

/* ARP for IPv4 over Ethernet: the fixed header and the addresses, unaligned as on the wire. */
struct arp_eth_ipv4 {
	__be16 hrd;
	__be16 pro;
	__u8 hln;
	__u8 pln;
	__be16 op;
	__u8 sha[ETH_ALEN];
	__u8 spa[4];
	__u8 tha[ETH_ALEN];
	__u8 tpa[4];
} __attribute__((packed));

/* ICMPv4 and ICMPv6 share the first 8 bytes (RFC 792, RFC 4443 §2.1): type, code, checksum
 * and a type-specific word (unused, next-hop MTU, MTU, pointer). Errors quote after it. */
struct icmp_err_hdr {
	__u8 type;
	__u8 code;
	__be16 checksum;
	__be32 rest;
};

/* The part of a quoted TCP header every error carries: RFC 792 quotes the IP header plus
 * "the first 64 bits of the original datagram's data", i.e. the ports and the sequence
 * number. RFC 1812 §4.3.2.3 and RFC 4443 §2.4 (c) quote more, but 8 bytes is all we may
 * count on. */
struct tcp_quote {
	__be16 source;
	__be16 dest;
	__be32 seq;
};

/* Neighbour solicitation (RFC 4861 §4.3): the ICMPv6 header, reserved word, target. */
struct nd_solicit {
	__u8 type;
	__u8 code;
	__be16 checksum;
	__be32 reserved;
	struct in6_addr target;
};

/* Ethernet plus at most one 802.1Q / 802.1ad tag. Returns the EtherType (network order). */
static __always_inline int parse_ethhdr(struct hdr_cursor *nh, void *data_end)
{
	struct ethhdr *eth = nh->pos;
	struct vlan_tag *tag;
	__be16 proto;

	if ((void *)(eth + 1) > data_end)
		return PARSE_TRUNCATED;
	nh->pos = eth + 1;
	proto = eth->h_proto;

	if (proto == bpf_htons(ETH_P_8021Q) || proto == bpf_htons(ETH_P_8021AD)) {
		tag = nh->pos;
		if ((void *)(tag + 1) > data_end)
			return PARSE_TRUNCATED;
		nh->pos = tag + 1;
		proto = tag->encapsulated_proto;
		/*
		 * XXX: one tag only. A second tag (QinQ) shows up as an unknown EtherType
		 * and passes to the kernel, which is the safe direction to fail in.
		 */
	}
	return proto;
}

/* IPv4 header, IHL-aware (options skipped). Returns the protocol; *iph points at it. */
static __always_inline int parse_iphdr(struct hdr_cursor *nh, void *data_end,
				       struct iphdr **iphdr)
{
	struct iphdr *iph = nh->pos;
	int hdrsize;

	if ((void *)(iph + 1) > data_end)
		return PARSE_TRUNCATED;
	if (iph->version != 4)
		return PARSE_BAD;
	hdrsize = iph->ihl * 4;
	if (hdrsize < (int)sizeof(*iph))
		return PARSE_BAD;
	/* The verifier tracks the variable offset: check the whole header, options included. */
	if (nh->pos + hdrsize > data_end)
		return PARSE_TRUNCATED;
	nh->pos += hdrsize;
	*iphdr = iph;
	return iph->protocol;
}

/* IPv6 fixed header. Returns the next header; *ip6h points at it. */
static __always_inline int parse_ip6hdr(struct hdr_cursor *nh, void *data_end,
					struct ipv6hdr **ip6hdr)
{
	struct ipv6hdr *ip6h = nh->pos;

	if ((void *)(ip6h + 1) > data_end)
		return PARSE_TRUNCATED;
	if (ip6h->version != 6)
		return PARSE_BAD;
	nh->pos = ip6h + 1;
	*ip6hdr = ip6h;
	return ip6h->nexthdr;
}

/* The fixed 20 bytes of TCP: enough for the ports. Options and data offset are the stack's
 * business, not the steering program's. */
static __always_inline int parse_tcphdr(struct hdr_cursor *nh, void *data_end,
					struct tcphdr **tcphdr)
{
	struct tcphdr *tcp = nh->pos;

	if ((void *)(tcp + 1) > data_end)
		return PARSE_TRUNCATED;
	nh->pos = tcp + 1;
	*tcphdr = tcp;
	return 0;
}

/* An ICMPv4/ICMPv6 header. Returns its type; *icmph points at it. */
static __always_inline int parse_icmp_err_hdr(struct hdr_cursor *nh, void *data_end,
					      struct icmp_err_hdr **icmph)
{
	struct icmp_err_hdr *icmp = nh->pos;

	if ((void *)(icmp + 1) > data_end)
		return PARSE_TRUNCATED;
	nh->pos = icmp + 1;
	*icmph = icmp;
	return icmp->type;
}

/* The first 8 bytes of a TCP header quoted in an ICMP error (see struct tcp_quote). */
static __always_inline int parse_tcp_quote(struct hdr_cursor *nh, void *data_end,
					   struct tcp_quote **quote)
{
	struct tcp_quote *q = nh->pos;

	if ((void *)(q + 1) > data_end)
		return PARSE_TRUNCATED;
	nh->pos = q + 1;
	*quote = q;
	return 0;
}

/* ARP for IPv4 over Ethernet. Returns 0, or PARSE_BAD for any other hardware/protocol. */
static __always_inline int parse_arp(struct hdr_cursor *nh, void *data_end,
				     struct arp_eth_ipv4 **arphdr)
{
	struct arp_eth_ipv4 *arp = nh->pos;

	if ((void *)(arp + 1) > data_end)
		return PARSE_TRUNCATED;
	if (arp->hrd != bpf_htons(ARP_HRD_ETHER) || arp->pro != bpf_htons(ETH_P_IP) ||
	    arp->hln != ETH_ALEN || arp->pln != 4)
		return PARSE_BAD;
	nh->pos = arp + 1;
	*arphdr = arp;
	return 0;
}

#endif /* XDPTCP_PARSING_H */
