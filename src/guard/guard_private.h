/*
 * guard_private.h: the guard's state, shared by guard_conn.c (connection
 * counts) and guard_ban.c (bans and strikes). Only src/guard/ and the
 * guard's unit tests include it; everyone else uses guard.h.
 */
#ifndef BULWARK_GUARD_PRIVATE_H
#define BULWARK_GUARD_PRIVATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/socket.h>
#include <time.h>

#include "guard/guard.h"

/*
 * Strike tracking is bounded: at most this many networks are followed at
 * once (the least recently struck one is forgotten to make room), and the
 * ring of timestamps kept per network holds at most GUARD_STRIKE_RING_MAX.
 * GUARD_STRIKE_BYTES_MAX lowers the network count when the rings are big.
 */
#define GUARD_STRIKE_NETWORKS_MAX 100000
#define GUARD_STRIKE_NETWORKS_MIN 1024
#define GUARD_STRIKE_RING_MAX 1000
#define GUARD_STRIKE_BYTES_MAX (64u * 1024 * 1024)
/*
 * Bans (and remembered levels) held in memory. At the bound, expired entries
 * are dropped (the store keeps their rows); if all are in force, no new ban
 * is taken until some run out (logged as event=guard.ban_failed).
 */
#define GUARD_BANS_MAX (1u << 18)

#define GUARD_BAN_REASON_MAX 32
/* "ffff:...:255.255.255.255/128" */
#define GUARD_NETWORK_TEXT_MAX 64

/*
 * A network: 16 bytes with host bits zero, IPv4 as ::ffff:a.b.c.d, and a
 * prefix over all 128 bits (an IPv4 /32 is 128, an IPv4 /24 is 120).
 */
struct guard_net {
	uint8_t addr[16];
	uint8_t prefix;
};

/* A connection-count slot (guard_conn.c). */
struct guard_slot {
	uint8_t ip[16];
	uint32_t count;   /* 0: empty */
	bool used;        /* ever used: a tombstone keeps probe chains intact */
};

struct guard_ban_state;
struct guard_filter;

struct guard {
	/* connection counts (guard_conn.c) */
	struct guard_slot *slots;
	size_t cap;        /* power of two */
	size_t used;       /* slots with used=true */
	size_t total;
	/* bans and strikes (guard_ban.c); NULL until guard_bans_start */
	struct guard_ban_state *ban;
	/* the kernel ban filter and the listeners it is attached to (guard_filter.c) */
	struct guard_filter *filter;
};

/* Free the ban and strike tables (from guard_free). */
void guard_ban_state_free(struct guard_ban_state **state);

/* One ban as the table holds it, for tests and diagnostics. */
struct guard_ban_info {
	char network[GUARD_NETWORK_TEXT_MAX];
	char reason[GUARD_BAN_REASON_MAX];
	int evidence;
	int level;          /* bans of this network so far, this one included */
	int64_t created, expires;
	bool active;        /* expires > now */
};

/*
 * The table entry whose network contains sa (active first), whether active
 * or only remembered for its level. 1 found, 0 none. Does not count a refusal.
 */
int guard_ban_get(const struct guard *guard, const struct sockaddr *sa, time_t now,
    struct guard_ban_info *info_r);

/*
 * Why the last guard_strike() decided as it did: "banned",
 * "below_threshold", "already_banned", "ignoreip", "disabled",
 * "not_started", "unknown_family", "out_of_memory" (strike table),
 * "ban_failed" (ban table full or no memory). The same word is logged as
 * decision= (ban_failed as event=guard.ban_failed).
 */
const char *guard_ban_last_decision(const struct guard *guard);

/* Networks followed by the strike table now, and its bound. */
size_t guard_ban_strike_networks(const struct guard *guard, size_t *max_r);
/* Strikes of sa's network within findtime of now; -1 if it is not followed. */
int guard_ban_strikes(const struct guard *guard, const struct sockaddr *sa, time_t now);

/*
 * The networks banned now, in the order the kernel filter takes them (the
 * most recently banned first: an attacker hammering now is the newest ban),
 * into a malloc'ed *nets_r. Returns how many; -1 out of memory.
 */
ssize_t guard_ban_active_nets(const struct guard *guard, time_t now, struct guard_net **nets_r);
/* Changes whenever the set of bans in force may have changed (0: no ban state). */
uint64_t guard_ban_generation(const struct guard *guard);
/* intrusion_prevention.drop_before_accept of the started ban state (false before). */
bool guard_ban_filter_wanted(const struct guard *guard);

/* ---- the kernel ban filter (guard_filter.c) ---- */

struct sock_filter;

/*
 * Compile a classic BPF socket filter that drops the TCP SYNs whose source
 * address lies in one of nets[0..n) and accepts every other packet. The
 * networks are taken in order while they fit in max_insns instructions
 * (at most BPF_MAXINSNS); the rest are left out. prog has room for
 * max_insns. Returns how many of nets the program covers; *len_r is its
 * length (0 when max_insns cannot even hold the frame: nothing to attach).
 * Pure: no system call, no allocation.
 */
size_t guard_filter_compile(const struct guard_net *nets, size_t n, struct sock_filter *prog,
    size_t max_insns, size_t *len_r);
/* Free the filter state (from guard_free); does not touch the sockets. */
void guard_filter_state_free(struct guard_filter **filter);

#endif
