/* SPDX-License-Identifier: MIT OR Apache-2.0 OR GPL-2.0-only */
/*
 * Types shared between the XDP program and user space. Every struct here is mirrored in
 * src/io/xdp/abi.rs as #[repr(C)] with a size assertion: change both together.
 *
 * Byte order: ports and the config are in host byte order (user space writes them as plain
 * integers); addresses are the raw network-order bytes of the packet.
 */
#ifndef XDPTCP_SHARED_H
#define XDPTCP_SHARED_H

/* Counters in the per-CPU `stats` map, one slot per value. */
enum xsk_stat {
	XSK_STAT_SEEN = 0,	/* every frame the program ran on */
	XSK_STAT_REDIRECTED,	/* bpf_redirect_map answered XDP_REDIRECT */
	XSK_STAT_NO_SOCKET,	/* ours, but no AF_XDP socket on this rx queue: passed */
	XSK_STAT_PASSED,	/* every XDP_PASS verdict, whatever the reason */
	XSK_STAT_TRUNCATED,	/* a header ran past data_end: passed */
	XSK_STAT_BAD_HEADER,	/* IPv4 version/IHL wrong: passed */
	XSK_STAT_FRAGMENT,	/* IPv4 fragment: passed (see XXX in steer.bpf.c) */
	XSK_STAT_IPV6_EXT,	/* IPv6 with an extension header: passed */
	XSK_STAT_MATCH_LISTEN,	/* TCP to a (address, port) in `listen` */
	XSK_STAT_MATCH_CLIENT,	/* TCP to an owned address, port in the client range */
	XSK_STAT_MATCH_ARP,	/* ARP for an owned address (own-address mode) */
	XSK_STAT_MATCH_ICMP,	/* other ICMP/ICMPv6 (incl. NDP) for an owned address (own-address mode) */
	XSK_STAT_MATCH_ICMP_ERROR,	/* ICMP/ICMPv6 error quoting TCP the stack sent (either mode) */
	XSK_STAT__MAX,
};

/* Address families as stored in the keys below. */
#define STEER_FAMILY_IPV4 4
#define STEER_FAMILY_IPV6 6

/* steer_config.flags */
/* The stack owns its addresses (the kernel has no copy): ARP, ICMP and NDP for them are
 * the stack's. Without it the stack shares the host's address and they pass to the kernel. */
#define STEER_F_OWN_ADDRESS (1U << 0)

/* The single entry of the `config` array map. */
struct steer_config {
	__u16 client_port_min;	/* inclusive; min > max means "no client range" */
	__u16 client_port_max;	/* inclusive */
	__u32 flags;		/* STEER_F_* */
};

/* Key of `listen`: a listening (address, port). An all-zero address is the wildcard of its
 * family. IPv4 addresses use addr[0..4], the rest zero. */
struct listen_key {
	__u8 family;		/* STEER_FAMILY_* */
	__u8 pad;		/* zero */
	__u16 port;		/* host byte order */
	__u8 addr[16];
};

/* Key of `owned_addrs`: an address the stack answers for. */
struct addr_key {
	__u8 family;		/* STEER_FAMILY_* */
	__u8 pad[3];		/* zero */
	__u8 addr[16];
};

#endif /* XDPTCP_SHARED_H */
