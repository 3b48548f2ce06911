// SPDX-License-Identifier: MIT OR Apache-2.0 OR GPL-2.0-only
/*
 * synack_tx: the ceiling of the test bed for answering a SYN flood. Each pure SYN (SYN set;
 * ACK, RST and FIN clear) over IPv4 to the configured port is turned into a SYN-ACK in place
 * and sent back out of the interface it came in on (XDP_TX): MACs, addresses and ports
 * swapped, ack = seq + 1, a cheap per-flow ISN, window 65535, one MSS option, both checksums
 * computed afresh. Nothing is remembered, so the ACK that completes the handshake passes to
 * the kernel like everything else. A benchmark measures the real stack against this.
 *
 * xdp_pass: passes every frame. Attached to the other end of a veth pair, it is what makes
 * XDP_TX frames arrive there at all.
 *
 * User space: src/io/xdp/ceiling.rs.
 */
#include <linux/bpf.h>
#include <linux/in.h>
#include "parsing.h"

#define SYNACK_MSS 1460
#define SYNACK_WINDOW 65535
#define SYNACK_TTL 64
#define TCPOPT_MSS_KIND 2
#define TCPOPT_MSS_LEN 4
/* The reply's TCP header: the fixed 20 bytes and the MSS option. */
#define SYNACK_TCP_LEN (sizeof(struct tcphdr) + TCPOPT_MSS_LEN)
#define SYNACK_IP_LEN (sizeof(struct iphdr) + SYNACK_TCP_LEN)

#define IPV4_DF 0x4000

/* TCP flag bits (byte 13 of the header) and the data offset / flags word (bytes 12-13). */
#define TCP_FIN 0x01
#define TCP_SYN 0x02
#define TCP_RST 0x04
#define TCP_ACK 0x10
#define TCP_FLAGS_OFF 13
#define TCP_DOFF_FLAGS_OFF 12

/* Counters in `synack_stats`, mirrored by src/io/xdp/ceiling.rs. */
enum synack_stat {
	SYNACK_STAT_ANSWERED = 0,	/* a SYN turned into a SYN-ACK: XDP_TX */
	SYNACK_STAT_PASSED,		/* every XDP_PASS verdict of synack_tx */
	SYNACK_STAT__MAX,
};

/* Key 0: the destination port answered, host byte order; 0 answers every port. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} synack_cfg SEC(".maps");

/* Per-CPU counters indexed by enum synack_stat; user space sums the CPUs. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, SYNACK_STAT__MAX);
	__type(key, __u32);
	__type(value, __u64);
} synack_stats SEC(".maps");

static __always_inline int count(__u32 stat, int verdict)
{
	__u64 *v = bpf_map_lookup_elem(&synack_stats, &stat);

	/* Per-CPU slot: no other CPU writes it, no atomic needed. */
	if (v)
		*v += 1;
	return verdict;
}

static __always_inline int pass(void)
{
	return count(SYNACK_STAT_PASSED, XDP_PASS);
}

/* One's complement sum of 32 bits folded to 16, inverted: the checksum field. */
static __always_inline __u16 csum_fold(__u32 sum)
{
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return (__u16)~sum;
}

/*
 * The reply's ISN: a few multiplications and shifts over the addresses, the ports and the
 * client's ISN, so it differs between flows and between attempts of one flow.
 * XXX: predictable to anyone who reads this file, unlike RFC 6528 ISNs or SYN cookies; the
 * program is a benchmark ceiling, never a defence.
 */
static __always_inline __u32 synack_isn(__u32 saddr, __u32 daddr, __u32 ports, __u32 seq)
{
	__u32 h = saddr * 0x9e3779b1u;

	h = (h ^ daddr) * 0x85ebca6bu;
	h = (h ^ ports) * 0xc2b2ae35u;
	h ^= seq;
	h ^= h >> 15;
	h *= 0x27d4eb2fu;
	h ^= h >> 13;
	return h;
}

/*
 * True for an IPv4 TCP pure SYN to the configured port whose lengths add up; the caller may
 * then rewrite it. *l3_off is where the IPv4 header starts (after Ethernet and the tag),
 * *frame_len the length of the frame.
 */
static __always_inline int is_answerable_syn(struct xdp_md *ctx, __u32 *l3_off, __u32 *frame_len)
{
	void *data_end = (void *)(long)ctx->data_end;
	void *data = (void *)(long)ctx->data;
	struct hdr_cursor nh = { .pos = data };
	struct ethhdr *eth;
	struct iphdr *iph;
	struct tcphdr *tcp;
	__u32 zero = 0, tot_len, doff;
	__u32 *port;
	__u8 flags;
	int proto;

	proto = parse_ethhdr(&nh, data_end);
	if (proto != bpf_htons(ETH_P_IP))
		return 0;
	/*
	 * XXX: the offset comes from the outer EtherType, and the frame length from a helper,
	 * rather than from subtracting or comparing packet pointers, which the verifier allows
	 * only with CAP_PERFMON (parse_iphdr's variable offset still needs it today).
	 */
	eth = data;
	if ((void *)(eth + 1) > data_end)
		return 0;
	*l3_off = eth->h_proto == bpf_htons(ETH_P_IP) ? sizeof(struct ethhdr) :
		  sizeof(struct ethhdr) + sizeof(struct vlan_tag);

	proto = parse_iphdr(&nh, data_end, &iph);
	if (proto != IPPROTO_TCP)
		return 0;
	/* XXX: IPv4 options are not supported: such SYNs pass to the kernel. */
	if (iph->ihl != 5)
		return 0;
	/* XXX: fragments pass; a SYN has no reason to be one. */
	if (iph->frag_off & bpf_htons(IPV4_MF | IPV4_OFFSET))
		return 0;

	if (parse_tcphdr(&nh, data_end, &tcp) < 0)
		return 0;
	flags = ((__u8 *)tcp)[TCP_FLAGS_OFF];
	if ((flags & (TCP_SYN | TCP_ACK | TCP_RST | TCP_FIN)) != TCP_SYN)
		return 0;

	port = bpf_map_lookup_elem(&synack_cfg, &zero);
	if (!port)
		return 0;	/* cannot happen: array maps always have key 0 */
	if (*port && tcp->dest != bpf_htons((__u16)*port))
		return 0;

	/*
	 * The lengths must add up, as the kernel would insist.
	 * XXX: checksums are not verified: the kernel drops a SYN with a bad one, this program
	 * answers it.
	 */
	doff = tcp->doff * 4;
	tot_len = bpf_ntohs(iph->tot_len);
	if (doff < sizeof(struct tcphdr) || tot_len < sizeof(struct iphdr) + doff)
		return 0;
	*frame_len = bpf_xdp_get_buff_len(ctx);
	if (*l3_off + tot_len > *frame_len)
		return 0;
	return 1;
}

SEC("xdp")
int synack_tx(struct xdp_md *ctx)
{
	void *data_end, *data;
	struct ethhdr *eth;
	struct iphdr *iph;
	struct tcphdr *tcp;
	__u8 mac[ETH_ALEN];
	__u32 l3_off = 0, frame_len = 0, addr, sum, i;
	__u16 *w;
	__u8 *opt;
	__be16 port;
	int delta;

	if (!is_answerable_syn(ctx, &l3_off, &frame_len))
		return pass();

	/*
	 * Cut (or grow) the frame to exactly the reply: whatever options, payload and link
	 * padding the SYN carried go. Growing needs tailroom: without it the SYN passes,
	 * untouched.
	 */
	delta = (int)(l3_off + SYNACK_IP_LEN) - (int)frame_len;
	if (delta && bpf_xdp_adjust_tail(ctx, delta))
		return pass();

	/*
	 * XXX: the verifier forgets every packet pointer across bpf_xdp_adjust_tail: derive
	 * them again. l3_off is 14 or 18, so the checks below cannot fail after a successful
	 * adjust; if one did, the SYN (options cut) would pass to the kernel.
	 */
	data_end = (void *)(long)ctx->data_end;
	data = (void *)(long)ctx->data;
	eth = data;
	if ((void *)(eth + 1) > data_end)
		return pass();
	/* XXX: bounds l3_off for the verifier, which does not follow it out of the helper. */
	if (l3_off > sizeof(struct ethhdr) + sizeof(struct vlan_tag))
		return pass();
	iph = data + l3_off;
	if ((void *)(iph + 1) > data_end)
		return pass();
	tcp = (void *)(iph + 1);
	if ((void *)tcp + SYNACK_TCP_LEN > data_end)
		return pass();

	__builtin_memcpy(mac, eth->h_dest, ETH_ALEN);
	__builtin_memcpy(eth->h_dest, eth->h_source, ETH_ALEN);
	__builtin_memcpy(eth->h_source, mac, ETH_ALEN);

	addr = iph->saddr;
	iph->saddr = iph->daddr;
	iph->daddr = addr;
	iph->tos = 0;
	iph->tot_len = bpf_htons(SYNACK_IP_LEN);
	iph->id = 0;
	iph->frag_off = bpf_htons(IPV4_DF);
	iph->ttl = SYNACK_TTL;
	iph->check = 0;
	sum = 0;
	w = (__u16 *)iph;
#pragma unroll
	for (i = 0; i < sizeof(struct iphdr) / 2; i++)
		sum += w[i];
	iph->check = csum_fold(sum);

	port = tcp->source;
	tcp->source = tcp->dest;
	tcp->dest = port;
	tcp->ack_seq = bpf_htonl(bpf_ntohl(tcp->seq) + 1);
	tcp->seq = bpf_htonl(synack_isn(iph->saddr, iph->daddr,
					((__u32)tcp->source << 16) | tcp->dest,
					bpf_ntohl(tcp->seq)));
	/* Data offset 6 words, flags SYN|ACK, reserved bits and ECE/CWR clear. */
	*(__be16 *)((void *)tcp + TCP_DOFF_FLAGS_OFF) =
		bpf_htons((SYNACK_TCP_LEN / 4) << 12 | TCP_SYN | TCP_ACK);
	tcp->window = bpf_htons(SYNACK_WINDOW);
	tcp->urg_ptr = 0;
	opt = (__u8 *)(tcp + 1);
	opt[0] = TCPOPT_MSS_KIND;
	opt[1] = TCPOPT_MSS_LEN;
	opt[2] = SYNACK_MSS >> 8;
	opt[3] = SYNACK_MSS & 0xff;

	/* Pseudo-header (addresses, protocol, TCP length) and the 24 bytes of TCP. */
	tcp->check = 0;
	sum = (iph->saddr & 0xffff) + (iph->saddr >> 16) +
	      (iph->daddr & 0xffff) + (iph->daddr >> 16) +
	      bpf_htons(IPPROTO_TCP) + bpf_htons(SYNACK_TCP_LEN);
	w = (__u16 *)tcp;
#pragma unroll
	for (i = 0; i < SYNACK_TCP_LEN / 2; i++)
		sum += w[i];
	tcp->check = csum_fold(sum);

	return count(SYNACK_STAT_ANSWERED, XDP_TX);
}

SEC("xdp")
int xdp_pass(struct xdp_md *ctx)
{
	return XDP_PASS;
}

char _license[] SEC("license") = "Dual MIT/GPL";
