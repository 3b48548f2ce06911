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
	XSK_STAT_SYN,		/* pure SYN to a listening (address, port), shield on or off */
	XSK_STAT_SHIELD_SYNACK,	/* shield: a cookie SYN-ACK sent back (XDP_TX) */
	XSK_STAT_SHIELD_DROP_CHECKSUM,	/* shield: SYN with a bad IPv4 or TCP checksum dropped */
	XSK_STAT_SHIELD_DROP_MALFORMED,	/* shield: SYN the stack would drop as malformed, dropped */
	XSK_STAT_SHIELD_TO_STACK,	/* shield on, SYN not answered here: steered to the stack */
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

/*
 * The SYN shield (shield.h). Its settings are one struct shield_config at key 0 of
 * `shield_cfg`; the cookie keys are two struct shield_key in `shield_keys`, slot = epoch & 1.
 */

/* shield_config.flags */
#define SHIELD_F_ON (1U << 0)		/* answer pure SYNs to listening ports with cookies */
#define SHIELD_F_TIMESTAMPS (1U << 1)	/* the stack's tcp_timestamps */
#define SHIELD_F_WINDOW_SCALING (1U << 2)	/* the stack's tcp_window_scaling */
#define SHIELD_F_SACK (1U << 3)		/* the stack's tcp_sack */

/* The engine derives a new cookie key every SHIELD_KEY_PERIOD_NS of its clock
 * (engine::secret_file::COOKIE_KEY_PERIOD). The program moves to a period's key
 * SHIELD_KEY_GRACE_NS after the cores have (see shield.h). */
#define SHIELD_KEY_PERIOD_NS (600ULL * 1000000000ULL)
#define SHIELD_KEY_GRACE_NS (1000000000ULL)
/* The cookie counter t advances every 64 s (RFC 4987 §3.6, syncookie::COUNTER_PERIOD_SECS). */
#define SHIELD_COOKIE_PERIOD_NS (64ULL * 1000000000ULL)

/* The single entry of `shield_cfg`. Everything but `flags` is fixed for the life of the
 * engine, so a reader that sees a half-written update (a map update is a plain copy) at
 * worst reads the old or the new on/off bit. */
struct shield_config {
	__s64 clock_offset_ns;	/* engine clock = bpf_ktime_get_ns() + clock_offset_ns */
	__u8 ts_key[16];	/* SipHash key of RFC 7323 §5.4 timestamp offsets */
	__u32 flags;		/* SHIELD_F_* */
	__u16 mss_v4;		/* MSS option of the SYN-ACK, IPv4 */
	__u16 mss_v6;		/* and IPv6 */
	__u16 window;		/* window field of the SYN-ACK (never scaled) */
	__u8 rcv_wscale;	/* window scale offered when the SYN offered one */
	__u8 ttl;		/* IPv4 TTL / IPv6 hop limit */
	__u32 pad;		/* zero */
};

/* One entry of `shield_keys`: the cookie key of one epoch. */
struct shield_key {
	__u64 epoch;		/* engine clock / SHIELD_KEY_PERIOD_NS */
	__u8 key[16];		/* SipHash key of the cookies of that epoch */
};

#endif /* XDPTCP_SHARED_H */
