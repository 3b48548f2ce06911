/* SPDX-License-Identifier: MIT OR Apache-2.0 OR GPL-2.0-only */
/*
 * SipHash-2-4 (Aumasson and Bernstein, "SipHash: a fast short-input PRF", 2012): the keyed
 * hash of src/tcp/secrets.rs (`keyed_hash`, the siphasher crate's SipHasher24 over the
 * bytes written to it), so that a cookie made here is the cookie the stack would make.
 *
 * The message length is a compile-time constant at every call site (the caller is always
 * inlined), so the word loop unrolls into straight-line code: no loop for the verifier to
 * walk, and 8 to 16 SipRounds per hash for the messages the shield hashes (12 to 44 bytes).
 */
#ifndef XDPTCP_SIPHASH_H
#define XDPTCP_SIPHASH_H

#include <linux/types.h>
#include <bpf/bpf_helpers.h>

struct sip_state {
	__u64 v0, v1, v2, v3;
};

static __always_inline __u64 sip_rotl(__u64 x, int b)
{
	return (x << b) | (x >> (64 - b));
}

static __always_inline void sip_round(struct sip_state *s)
{
	s->v0 += s->v1;
	s->v1 = sip_rotl(s->v1, 13);
	s->v1 ^= s->v0;
	s->v0 = sip_rotl(s->v0, 32);
	s->v2 += s->v3;
	s->v3 = sip_rotl(s->v3, 16);
	s->v3 ^= s->v2;
	s->v0 += s->v3;
	s->v3 = sip_rotl(s->v3, 21);
	s->v3 ^= s->v0;
	s->v2 += s->v1;
	s->v1 = sip_rotl(s->v1, 17);
	s->v1 ^= s->v2;
	s->v2 = sip_rotl(s->v2, 32);
}

/* Eight bytes as a little-endian word, as SipHash reads its key and message. */
static __always_inline __u64 sip_le64(const __u8 *p)
{
	__u64 w;

	__builtin_memcpy(&w, p, sizeof(w));
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
	w = __builtin_bswap64(w);
#endif
	return w;
}

/* One message word: c = 2 compression rounds. */
static __always_inline void sip_compress(struct sip_state *s, __u64 m)
{
	s->v3 ^= m;
	sip_round(s);
	sip_round(s);
	s->v0 ^= m;
}

/*
 * SipHash-2-4 of the first `len` bytes of `msg` under the 16-byte `key`. `msg` must hold
 * `len` rounded up to the next multiple of 8, the bytes past `len` zero: the last word is
 * read whole, and SipHash pads the tail with zeros below the length byte.
 */
static __always_inline __u64 siphash24(const __u8 *key, const __u8 *msg, const __u32 len)
{
	__u64 k0 = sip_le64(key), k1 = sip_le64(key + 8);
	struct sip_state s = {
		.v0 = k0 ^ 0x736f6d6570736575ULL,
		.v1 = k1 ^ 0x646f72616e646f6dULL,
		.v2 = k0 ^ 0x6c7967656e657261ULL,
		.v3 = k1 ^ 0x7465646279746573ULL,
	};
	__u32 i;

#pragma unroll
	for (i = 0; i + 8 <= len; i += 8)
		sip_compress(&s, sip_le64(msg + i));
	/* The last word: the 0 to 7 bytes left, zero padded, and the length mod 256 on top. */
	sip_compress(&s, ((__u64)(len & 0xff) << 56) | sip_le64(msg + (len & ~7U)));
	/* d = 4 finalization rounds. */
	s.v2 ^= 0xff;
	sip_round(&s);
	sip_round(&s);
	sip_round(&s);
	sip_round(&s);
	return s.v0 ^ s.v1 ^ s.v2 ^ s.v3;
}

#endif /* XDPTCP_SIPHASH_H */
