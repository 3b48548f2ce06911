/* SPDX-License-Identifier: MIT OR Apache-2.0 OR GPL-2.0-only */
/*
 * Every map of the steering program. User space fills them through the skeleton
 * (src/io/xdp/loader.rs); sizes are the defaults the loader refuses to exceed.
 */
#ifndef XDPTCP_MAPS_H
#define XDPTCP_MAPS_H

#include "shared.h"

#define MAX_QUEUES 256
#define MAX_LISTEN 4096
#define MAX_OWNED_ADDRS 256

/* AF_XDP sockets by rx queue index: the redirect target, one socket per queue. */
struct {
	__uint(type, BPF_MAP_TYPE_XSKMAP);
	__uint(max_entries, MAX_QUEUES);
	__type(key, __u32);
	__type(value, __u32);
} xsks_map SEC(".maps");

/* Listening (address, port) pairs; value unused (0). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_LISTEN);
	__type(key, struct listen_key);
	__type(value, __u32);
} listen SEC(".maps");

/* Addresses the stack answers for (client connections, ARP/ICMP in own-address mode). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_OWNED_ADDRS);
	__type(key, struct addr_key);
	__type(value, __u32);
} owned_addrs SEC(".maps");

/* One struct steer_config at key 0: client port range and mode flags. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct steer_config);
} config SEC(".maps");

/* Per-CPU counters indexed by enum xsk_stat; user space sums the CPUs. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, XSK_STAT__MAX);
	__type(key, __u32);
	__type(value, __u64);
} stats SEC(".maps");

/* SYN shield settings: one struct shield_config at key 0 (all zero: shield off). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct shield_config);
} shield_cfg SEC(".maps");

/* SYN shield cookie keys, slot = epoch & 1: the epoch in use and the next (see shield.h). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, struct shield_key);
} shield_keys SEC(".maps");

#endif /* XDPTCP_MAPS_H */
