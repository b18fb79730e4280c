/*
 * guard_ban.c: the built-in fail2ban. Strikes against a client network go
 * into a bounded table of small timestamp rings; maxretry of them within
 * findtime ban the network in an open-addressing table that guard_is_banned
 * reads at accept in O(1), without allocating. Bans are saved through the
 * directory and read back from it (bulwarkctl writes rows too, so rows are
 * checked when read). Trusts the kernel's sockaddr; both tables are keyed
 * with a random SipHash key so a client cannot choose colliding networks.
 */
#include "guard/guard.h"
#include "monitor/metrics.h"
#include "guard/guard_private.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/cidr.h"
#include "core/config.h"
#include "core/log.h"
#include "directory/directory.h"

#define GUARD_NONE UINT32_MAX
#define GUARD_BANS_INITIAL 64
/* A table full of bans in force retries its purge at most this often. */
#define GUARD_BANS_PURGE_INTERVAL 60

/* IPv4 networks and IPv6 networks are looked up separately (see cidr.c). */
enum guard_family { GUARD_V4 = 0, GUARD_V6 = 1 };

struct guard_ban_entry {
	struct guard_net net;
	bool live;       /* slot in use */
	bool active;     /* counted as in force: its unban is not counted yet */
	bool seen;       /* mark of guard_ban_sync */
	bool unsaved;    /* directory_ban_save failed: retried at the next reload */
	uint32_t hash;
	int32_t level;   /* bans of this network so far (the store's level) */
	int32_t evidence;
	int64_t created, expires;
	char reason[GUARD_BAN_REASON_MAX];
};

struct guard_strike_entry {
	struct guard_net net;
	uint32_t hash;
	uint32_t prev, next;   /* LRU list: least recently touched at lru_head */
	uint32_t last_auth;    /* unix time of the last login from it, 0: none */
	uint32_t head, n;      /* ring of strike times, in times[] */
};

struct guard_ban_state {
	const struct config *cfg;
	struct directory *dir;          /* NULL: memory only */
	unsigned char key[crypto_shorthash_KEYBYTES];
	int ipv6_prefix;
	int maxretry, maxretry_auth, findtime;
	int64_t bantime, bantime_max;

	/* bans, and levels remembered after expiry */
	struct guard_ban_entry *bans;
	size_t bans_cap;                /* power of two, at most half full */
	size_t bans_n;
	time_t purge_not_before;
	uint32_t prefix_nets[2][129];   /* [family][prefix]: entries with that prefix */
	uint8_t prefixes[2][129];       /* prefixes with entries, longest first */
	int nprefixes[2];

	/* strikes: a pool of entries, an index over it, one ring per entry */
	struct guard_strike_entry *strikes;
	uint32_t *times;                /* ring * strikes_cap slots */
	uint32_t *index;                /* GUARD_NONE: empty */
	size_t index_cap;               /* power of two, at least 2 * strikes_cap */
	uint32_t strikes_n, strikes_cap, strikes_max;
	uint32_t ring;
	uint32_t lru_head, lru_tail;

	unsigned long n_bans, n_unbans, n_refused;
	uint64_t generation;            /* bumped when the bans in force may change */
	const char *last_decision;
};

const char *
guard_strike_name(enum guard_strike s)
{
	switch (s) {
	case GUARD_STRIKE_AUTH_FAILED:
		return "auth_failed";
	case GUARD_STRIKE_RELAY_DENIED:
		return "relay_denied";
	case GUARD_STRIKE_UNKNOWN_RECIPIENT:
		return "unknown_recipient";
	case GUARD_STRIKE_PROTOCOL_ERRORS:
		return "protocol_errors";
	case GUARD_STRIKE_PREGREET:
		return "pregreet";
	case GUARD_STRIKE_TLS_GARBAGE:
		return "tls_garbage";
	case GUARD_STRIKE_COUNT:
		break;
	}
	return "unknown";
}

/* ---- networks ---- */

static const uint8_t guard_v4mapped[12] = { [10] = 0xff, [11] = 0xff };

static bool
guard_net_is_v4(const struct guard_net *net)
{
	return net->prefix >= 96 && memcmp(net->addr, guard_v4mapped, 12) == 0;
}

/* Zero the bits of addr after the first prefix. */
static void
guard_net_mask(uint8_t addr[16], unsigned prefix)
{
	for (unsigned i = 0; i < 16; i++) {
		unsigned first = i * 8;

		if (first + 8 <= prefix)
			continue;
		addr[i] &= first >= prefix ? 0 : (uint8_t)(0xff << (8 - (prefix - first)));
	}
}

/* sa's address as 16 bytes (IPv4 and IPv4-mapped as ::ffff:a.b.c.d). */
static bool
guard_ban_addr(const struct sockaddr *sa, uint8_t addr_r[16], enum guard_family *family_r)
{
	if (sa == NULL)
		return false;
	if (sa->sa_family == AF_INET) {
		memcpy(addr_r, guard_v4mapped, 12);
		memcpy(addr_r + 12, &((const struct sockaddr_in *)sa)->sin_addr, 4);
		*family_r = GUARD_V4;
		return true;
	}
	if (sa->sa_family == AF_INET6) {
		memcpy(addr_r, &((const struct sockaddr_in6 *)sa)->sin6_addr, 16);
		*family_r = memcmp(addr_r, guard_v4mapped, 12) == 0 ? GUARD_V4 : GUARD_V6;
		return true;
	}
	return false;
}

/* The network a ban of sa covers: its /32, or its ipv6_prefix. */
static bool
guard_ban_net(const struct sockaddr *sa, int ipv6_prefix, struct guard_net *net_r)
{
	enum guard_family family;

	memset(net_r, 0, sizeof(*net_r));
	if (!guard_ban_addr(sa, net_r->addr, &family))
		return false;
	if (ipv6_prefix < 1 || ipv6_prefix > 128)
		ipv6_prefix = 64;
	net_r->prefix = family == GUARD_V4 ? 128 : (uint8_t)ipv6_prefix;
	guard_net_mask(net_r->addr, net_r->prefix);
	return true;
}

static void
guard_net_text(const struct guard_net *net, char *buf, size_t buflen)
{
	char addr[INET6_ADDRSTRLEN];
	bool v4 = guard_net_is_v4(net);

	if (buflen == 0)
		return;
	if (inet_ntop(v4 ? AF_INET : AF_INET6, v4 ? net->addr + 12 : net->addr, addr,
	    sizeof(addr)) == NULL) {
		snprintf(buf, buflen, "?");
		return;
	}
	snprintf(buf, buflen, "%s/%u", addr, v4 ? net->prefix - 96u : (unsigned)net->prefix);
}

/* A store row's network ("203.0.113.9/32", "2001:db8::/64"). 0 ok, -1 bad. */
static int
guard_net_parse(const char *text, struct guard_net *net_r)
{
	struct cidr c;
	const char *error;

	memset(net_r, 0, sizeof(*net_r));
	if (text == NULL || cidr_parse(text, &c, &error) == -1)
		return -1;
	if (c.family == AF_INET) {
		memcpy(net_r->addr, guard_v4mapped, 12);
		memcpy(net_r->addr + 12, c.addr, 4);
		net_r->prefix = (uint8_t)(96 + c.prefix);
	} else {
		memcpy(net_r->addr, c.addr, 16);
		net_r->prefix = (uint8_t)c.prefix;
	}
	return 0;
}

static bool
guard_net_equal(const struct guard_net *a, const struct guard_net *b)
{
	return a->prefix == b->prefix && memcmp(a->addr, b->addr, 16) == 0;
}

static uint32_t
guard_net_hash(const struct guard_ban_state *st, const struct guard_net *net)
{
	unsigned char in[17], out[crypto_shorthash_BYTES];
	uint64_t h;

	memcpy(in, net->addr, 16);
	in[16] = net->prefix;
	crypto_shorthash(out, in, sizeof(in), st->key);
	memcpy(&h, out, sizeof(h));
	return (uint32_t)(h ^ (h >> 32));
}

void
guard_network_text(const struct sockaddr *sa, int ipv6_prefix, char *buf, size_t buflen)
{
	struct guard_net net;

	if (buflen == 0)
		return;
	if (!guard_ban_net(sa, ipv6_prefix, &net)) {
		snprintf(buf, buflen, "?");
		return;
	}
	guard_net_text(&net, buf, buflen);
}

/* ---- the ban table ---- */

static void
guard_ban_time_text(int64_t t, char *buf, size_t buflen)
{
	time_t tt = (time_t)t;
	struct tm tm;

	if (gmtime_r(&tt, &tm) == NULL || strftime(buf, buflen, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		snprintf(buf, buflen, "%lld", (long long)t);
}

/* Rebuild the list of prefixes in use for one family, longest first. */
static void
guard_ban_prefixes_rebuild(struct guard_ban_state *st, enum guard_family f)
{
	st->nprefixes[f] = 0;
	for (int p = 128; p >= 0; p--)
		if (st->prefix_nets[f][p] > 0)
			st->prefixes[f][st->nprefixes[f]++] = (uint8_t)p;
}

static void
guard_ban_prefix_count(struct guard_ban_state *st, const struct guard_net *net, int delta)
{
	enum guard_family f = guard_net_is_v4(net) ? GUARD_V4 : GUARD_V6;
	uint32_t *c = &st->prefix_nets[f][net->prefix];
	bool was = *c > 0;

	*c = (uint32_t)((int64_t)*c + delta);
	if (was != (*c > 0))
		guard_ban_prefixes_rebuild(st, f);
}

static struct guard_ban_entry *
guard_ban_find(const struct guard_ban_state *st, const struct guard_net *net, uint32_t h)
{
	size_t mask = st->bans_cap - 1;

	/* at most half full: the probe always ends on an empty slot */
	for (size_t i = h & mask;; i = (i + 1) & mask) {
		struct guard_ban_entry *e = &st->bans[i];

		if (!e->live)
			return NULL;
		if (e->hash == h && guard_net_equal(&e->net, net))
			return e;
	}
}

/* A ban that ran out while counted as in force: count and log its end. */
static void
guard_ban_settle(struct guard_ban_state *st, struct guard_ban_entry *e, time_t now)
{
	char net[GUARD_NETWORK_TEXT_MAX];

	if (!e->active || e->expires > now)
		return;
	e->active = false;
	st->n_unbans++;
	st->generation++;
	guard_net_text(&e->net, net, sizeof(net));
	log_info("event=guard.unban network=%s reason=expired", net);
}

enum guard_ban_keep {
	GUARD_BAN_KEEP_ALL,
	GUARD_BAN_KEEP_UNEXPIRED,   /* drop what ran out (and is in the store) */
	GUARD_BAN_KEEP_SEEN,        /* drop what the store no longer has */
};

/* Move every kept entry into a new table of newcap slots. 0 ok, -1 no memory. */
static int
guard_ban_rehash(struct guard_ban_state *st, size_t newcap, time_t now,
    enum guard_ban_keep keep)
{
	struct guard_ban_entry *old = st->bans, *tab;
	size_t oldcap = st->bans_cap, n = 0;

	if ((tab = calloc(newcap, sizeof(*tab))) == NULL)
		return -1;
	memset(st->prefix_nets, 0, sizeof(st->prefix_nets));
	for (size_t i = 0; i < oldcap; i++) {
		struct guard_ban_entry *e = &old[i];
		size_t j;

		if (!e->live)
			continue;
		if (keep == GUARD_BAN_KEEP_UNEXPIRED) {
			guard_ban_settle(st, e, now);
			if (e->expires <= now && !e->unsaved)
				continue;
		}
		if (keep == GUARD_BAN_KEEP_SEEN && !e->seen && !e->unsaved)
			continue;
		for (j = e->hash & (newcap - 1); tab[j].live; j = (j + 1) & (newcap - 1))
			;
		tab[j] = *e;
		st->prefix_nets[guard_net_is_v4(&e->net) ? GUARD_V4 : GUARD_V6][e->net.prefix]++;
		n++;
	}
	free(old);
	st->bans = tab;
	st->bans_cap = newcap;
	st->bans_n = n;
	guard_ban_prefixes_rebuild(st, GUARD_V4);
	guard_ban_prefixes_rebuild(st, GUARD_V6);
	return 0;
}

/* Add net (not in the table) as an inert entry. NULL: table full or no memory. */
static struct guard_ban_entry *
guard_ban_insert(struct guard_ban_state *st, const struct guard_net *net, uint32_t h,
    time_t now)
{
	struct guard_ban_entry *e;
	size_t i, mask;

	if (st->bans_n >= GUARD_BANS_MAX) {
		/* forget remembered levels (the store keeps them) before refusing */
		if (now < st->purge_not_before ||
		    guard_ban_rehash(st, st->bans_cap, now, GUARD_BAN_KEEP_UNEXPIRED) == -1)
			return NULL;
		if (st->bans_n >= GUARD_BANS_MAX) {
			st->purge_not_before = now + GUARD_BANS_PURGE_INTERVAL;
			return NULL;
		}
	}
	if ((st->bans_n + 1) * 2 > st->bans_cap &&
	    guard_ban_rehash(st, st->bans_cap * 2, now, GUARD_BAN_KEEP_ALL) == -1)
		return NULL;
	mask = st->bans_cap - 1;
	for (i = h & mask; st->bans[i].live; i = (i + 1) & mask)
		;
	e = &st->bans[i];
	memset(e, 0, sizeof(*e));
	e->net = *net;
	e->hash = h;
	e->live = true;
	st->bans_n++;
	guard_ban_prefix_count(st, net, +1);
	return e;
}

/*
 * The entries whose network contains sa: the one in force (longest prefix
 * first), and else one that is only remembered. Allocation-free.
 */
static struct guard_ban_entry *
guard_ban_match(const struct guard_ban_state *st, const struct sockaddr *sa, time_t now,
    struct guard_ban_entry **inactive_r)
{
	enum guard_family f;
	struct guard_net net;
	uint8_t addr[16];

	*inactive_r = NULL;
	if (st->bans_n == 0 || !guard_ban_addr(sa, addr, &f))
		return NULL;
	for (int k = 0; k < st->nprefixes[f]; k++) {
		struct guard_ban_entry *e;

		memcpy(net.addr, addr, 16);
		net.prefix = st->prefixes[f][k];
		guard_net_mask(net.addr, net.prefix);
		if ((e = guard_ban_find(st, &net, guard_net_hash(st, &net))) == NULL)
			continue;
		if (e->expires > now)
			return e;
		if (*inactive_r == NULL)
			*inactive_r = e;
	}
	return NULL;
}

/* Save e to the store; a failure is logged and retried at the next reload. */
static void
guard_ban_save(struct guard_ban_state *st, struct guard_ban_entry *e)
{
	char net[GUARD_NETWORK_TEXT_MAX];
	struct directory_ban row;

	if (st->dir == NULL)
		return;
	guard_net_text(&e->net, net, sizeof(net));
	row = (struct directory_ban){
		.network = net,
		.reason = e->reason,
		.evidence = e->evidence,
		.level = e->level,
		.created = e->created,
		.expires = e->expires,
	};
	if (directory_ban_save(st->dir, &row) == -1) {
		e->unsaved = true;
		log_warnx("event=guard.ban_save_failed network=%s (kept in memory, retried at"
		    " the next reload)", net);
		return;
	}
	e->unsaved = false;
}

/* bantime << level, capped at bantime_max, without overflow. */
static int64_t
guard_ban_duration(const struct guard_ban_state *st, int level)
{
	int64_t d = st->bantime;

	for (int i = 0; i < level && d < st->bantime_max; i++)
		d *= 2;
	return d < st->bantime_max ? d : st->bantime_max;
}

/* Ban net now, escalated by its earlier bans. false: the table refused it. */
static bool
guard_ban_impose(struct guard_ban_state *st, const struct guard_net *net, const char *ip,
    const char *reason, int evidence, time_t now)
{
	char nettext[GUARD_NETWORK_TEXT_MAX], expires[32];
	uint32_t h = guard_net_hash(st, net);
	struct guard_ban_entry *e = guard_ban_find(st, net, h);
	int64_t duration;
	int level;

	guard_net_text(net, nettext, sizeof(nettext));
	if (e == NULL && (e = guard_ban_insert(st, net, h, now)) == NULL) {
		log_warnx("event=guard.ban_failed network=%s ip=%s reason=%s evidence=%d"
		    " error=\"ban table full or out of memory\"", nettext, ip, reason, evidence);
		return false;
	}
	guard_ban_settle(st, e, now);
	level = e->level > 0 ? e->level : 0;
	duration = guard_ban_duration(st, level);
	e->level = level < INT32_MAX ? level + 1 : level;
	e->evidence = evidence;
	e->created = now;
	e->expires = (int64_t)now + duration;
	e->active = true;
	snprintf(e->reason, sizeof(e->reason), "%s", reason);
	st->n_bans++;
	st->generation++;
	guard_ban_time_text(e->expires, expires, sizeof(expires));
	/* level: the earlier bans of this network, the doubling exponent */
	log_info("event=guard.ban network=%s reason=%s evidence=%d level=%d duration=%lld"
	    " expires=%s ip=%s", nettext, reason, evidence, level, (long long)duration,
	    expires, ip);
	{
		char labels[64];

		snprintf(labels, sizeof(labels), "reason=\"%s\"", reason);
		metrics_inc("bulwark_bans_total", labels);
	}
	guard_ban_save(st, e);
	return true;
}

/*
 * Bring the table in line with the store. At start the rows are just
 * loaded; on reload, bans that appear, end or vanish are counted and logged.
 */
static int
guard_ban_sync(struct guard_ban_state *st, time_t now, bool reload)
{
	struct directory_ban *rows = NULL;
	size_t nrows = 0, dropped = 0;

	if (st->dir == NULL)
		return 0;
	st->generation++;   /* rows may have come, gone or moved their expiry */
	for (size_t i = 0; i < st->bans_cap; i++)
		if (st->bans[i].live && st->bans[i].unsaved)
			guard_ban_save(st, &st->bans[i]);
	if (directory_ban_list(st->dir, &rows, &nrows) == -1) {
		log_warnx("event=guard.bans_load_failed error=\"store error\"");
		return -1;
	}
	for (size_t i = 0; i < st->bans_cap; i++) {
		if (st->bans[i].live) {
			guard_ban_settle(st, &st->bans[i], now);
			st->bans[i].seen = false;
		}
	}
	for (size_t i = 0; i < nrows; i++) {
		const struct directory_ban *row = &rows[i];
		char esc[LOG_ESCAPE_MAX], nettext[GUARD_NETWORK_TEXT_MAX], expires[32];
		struct guard_ban_entry *e;
		struct guard_net net;
		bool was_active, now_active = row->expires > (int64_t)now;
		uint32_t h;

		if (guard_net_parse(row->network, &net) == -1) {
			log_warnx("event=guard.ban_row_invalid network=%s", row->network == NULL ?
			    "-" : log_escape(esc, sizeof(esc), row->network, strlen(row->network)));
			continue;
		}
		h = guard_net_hash(st, &net);
		if ((e = guard_ban_find(st, &net, h)) == NULL) {
			if ((e = guard_ban_insert(st, &net, h, now)) == NULL) {
				guard_net_text(&net, nettext, sizeof(nettext));
				if (now_active)
					log_warnx("event=guard.ban_failed network=%s"
					    " error=\"ban table full or out of memory\"", nettext);
				continue;
			}
		} else if (e->unsaved) {
			e->seen = true;   /* memory is newer than the store */
			continue;
		}
		was_active = e->active;
		e->seen = true;
		e->level = row->level > 0 ? row->level : 0;
		e->evidence = row->evidence > 0 ? row->evidence : 0;
		e->created = row->created;
		e->expires = row->expires;
		e->active = now_active;
		snprintf(e->reason, sizeof(e->reason), "%s", row->reason != NULL ? row->reason : "");
		if (!reload || was_active == now_active)
			continue;
		guard_net_text(&net, nettext, sizeof(nettext));
		log_escape(esc, sizeof(esc), e->reason, strlen(e->reason));
		if (now_active) {
			st->n_bans++;
			guard_ban_time_text(e->expires, expires, sizeof(expires));
			log_info("event=guard.ban network=%s reason=%s evidence=%d duration=%lld"
			    " expires=%s source=store", nettext, esc, (int)e->evidence,
			    (long long)(e->expires - (int64_t)now), expires);
			metrics_inc("bulwark_bans_total", "reason=\"store\"");
		} else {
			st->n_unbans++;
			log_info("event=guard.unban network=%s reason=manual", nettext);
		}
	}
	directory_ban_list_free(&rows, nrows);
	if (!reload)
		return 0;
	/* rows gone from the store: lifted by hand (bulwarkctl ban del) */
	for (size_t i = 0; i < st->bans_cap; i++) {
		struct guard_ban_entry *e = &st->bans[i];
		char nettext[GUARD_NETWORK_TEXT_MAX];

		if (!e->live || e->seen || e->unsaved)
			continue;
		if (e->active) {
			guard_net_text(&e->net, nettext, sizeof(nettext));
			st->n_unbans++;
			log_info("event=guard.unban network=%s reason=manual", nettext);
		}
		/* inert even if the rehash below fails */
		e->active = false;
		e->expires = 0;
		e->level = 0;
		dropped++;
	}
	if (dropped > 0)
		(void)guard_ban_rehash(st, st->bans_cap, now, GUARD_BAN_KEEP_SEEN);
	return 0;
}

/* ---- the strike table ---- */

static uint32_t
guard_time32(time_t now)
{
	if (now <= 0)
		return 1;
	if ((uint64_t)now > UINT32_MAX)
		return UINT32_MAX;
	return (uint32_t)now;
}

/* Index slot holding net, or the empty slot where it would go. */
static size_t
guard_strike_pos(const struct guard_ban_state *st, const struct guard_net *net, uint32_t h)
{
	size_t mask = st->index_cap - 1, i;

	for (i = h & mask; st->index[i] != GUARD_NONE; i = (i + 1) & mask) {
		const struct guard_strike_entry *e = &st->strikes[st->index[i]];

		if (e->hash == h && guard_net_equal(&e->net, net))
			break;
	}
	return i;
}

/* Remove index slot i, shifting the probe chain behind it back (no tombstones). */
static void
guard_strike_index_del(struct guard_ban_state *st, size_t i)
{
	size_t mask = st->index_cap - 1, j = i;

	for (;;) {
		size_t k;

		j = (j + 1) & mask;
		if (st->index[j] == GUARD_NONE)
			break;
		k = st->strikes[st->index[j]].hash & mask;
		/* the entry at j may move to i unless its home lies in (i, j] */
		if (i <= j ? (k <= i || k > j) : (k <= i && k > j)) {
			st->index[i] = st->index[j];
			i = j;
		}
	}
	st->index[i] = GUARD_NONE;
}

static void
guard_strike_lru_unlink(struct guard_ban_state *st, uint32_t idx)
{
	struct guard_strike_entry *e = &st->strikes[idx];

	if (e->prev != GUARD_NONE)
		st->strikes[e->prev].next = e->next;
	else
		st->lru_head = e->next;
	if (e->next != GUARD_NONE)
		st->strikes[e->next].prev = e->prev;
	else
		st->lru_tail = e->prev;
	e->prev = e->next = GUARD_NONE;
}

static void
guard_strike_lru_append(struct guard_ban_state *st, uint32_t idx)
{
	struct guard_strike_entry *e = &st->strikes[idx];

	e->prev = st->lru_tail;
	e->next = GUARD_NONE;
	if (st->lru_tail != GUARD_NONE)
		st->strikes[st->lru_tail].next = idx;
	else
		st->lru_head = idx;
	st->lru_tail = idx;
}

/* Make room for more entries (up to strikes_max). 0 ok, -1 no memory. */
static int
guard_strike_grow(struct guard_ban_state *st)
{
	uint32_t newcap = st->strikes_cap == 0 ? 64 : st->strikes_cap * 2;
	size_t icap = st->index_cap == 0 ? 128 : st->index_cap;
	struct guard_strike_entry *strikes;
	uint32_t *times, *index;

	if (newcap > st->strikes_max)
		newcap = st->strikes_max;
	if ((strikes = realloc(st->strikes, (size_t)newcap * sizeof(*strikes))) == NULL)
		return -1;
	st->strikes = strikes;
	if ((times = realloc(st->times, (size_t)newcap * st->ring * sizeof(*times))) == NULL)
		return -1;
	st->times = times;
	while (icap < (size_t)newcap * 2)
		icap *= 2;
	if (icap != st->index_cap) {
		if ((index = malloc(icap * sizeof(*index))) == NULL)
			return -1;
		for (size_t i = 0; i < icap; i++)
			index[i] = GUARD_NONE;
		for (uint32_t k = 0; k < st->strikes_n; k++) {
			size_t i;

			for (i = st->strikes[k].hash & (icap - 1); index[i] != GUARD_NONE;
			    i = (i + 1) & (icap - 1))
				;
			index[i] = k;
		}
		free(st->index);
		st->index = index;
		st->index_cap = icap;
	}
	st->strikes_cap = newcap;
	return 0;
}

/*
 * The strike entry of net, made (and the least recently touched one
 * forgotten when the table is full) if needed, and touched. NULL: no memory.
 */
static struct guard_strike_entry *
guard_strike_get(struct guard_ban_state *st, const struct guard_net *net)
{
	uint32_t h = guard_net_hash(st, net), idx;
	struct guard_strike_entry *e;
	size_t pos;

	if (st->index_cap > 0) {
		pos = guard_strike_pos(st, net, h);
		if ((idx = st->index[pos]) != GUARD_NONE) {
			guard_strike_lru_unlink(st, idx);
			guard_strike_lru_append(st, idx);
			return &st->strikes[idx];
		}
	}
	if (st->strikes_n >= st->strikes_max) {
		idx = st->lru_head;
		guard_strike_index_del(st, guard_strike_pos(st, &st->strikes[idx].net,
		    st->strikes[idx].hash));
		guard_strike_lru_unlink(st, idx);
	} else {
		if (st->strikes_n == st->strikes_cap && guard_strike_grow(st) == -1)
			return NULL;
		idx = st->strikes_n++;
	}
	e = &st->strikes[idx];
	memset(e, 0, sizeof(*e));
	e->net = *net;
	e->hash = h;
	e->prev = e->next = GUARD_NONE;
	st->index[guard_strike_pos(st, net, h)] = idx;
	guard_strike_lru_append(st, idx);
	return e;
}

static uint32_t *
guard_strike_ring(const struct guard_ban_state *st, const struct guard_strike_entry *e)
{
	return st->times + (size_t)(e - st->strikes) * st->ring;
}

static void
guard_strike_push(const struct guard_ban_state *st, struct guard_strike_entry *e, uint32_t t)
{
	uint32_t *ring = guard_strike_ring(st, e);

	if (e->n < st->ring) {
		ring[(e->head + e->n) % st->ring] = t;
		e->n++;
	} else {
		ring[e->head] = t;
		e->head = (e->head + 1) % st->ring;
	}
}

/* Strikes of e within findtime of now. */
static int
guard_strike_count(const struct guard_ban_state *st, const struct guard_strike_entry *e,
    time_t now)
{
	const uint32_t *ring = guard_strike_ring(st, e);
	int n = 0;

	for (uint32_t i = 0; i < e->n; i++)
		if ((int64_t)ring[(e->head + i) % st->ring] + st->findtime > (int64_t)now)
			n++;
	return n;
}

/* ---- the interface ---- */

void
guard_ban_state_free(struct guard_ban_state **stp)
{
	struct guard_ban_state *st = *stp;

	if (st == NULL)
		return;
	free(st->bans);
	free(st->strikes);
	free(st->times);
	free(st->index);
	sodium_memzero(st->key, sizeof(st->key));
	free(st);
	*stp = NULL;
}

static int
guard_clamp(int v, int lo, int hi)
{
	return v < lo ? lo : v > hi ? hi : v;
}

int
guard_bans_start(struct guard *guard, const struct config *cfg, struct directory *dir,
    time_t now)
{
	const struct config_intrusion_prevention *ip = &cfg->intrusion_prevention;
	struct guard_ban_state *st;
	size_t per;

	if (sodium_init() < 0) {
		log_warnx("event=guard.bans_start_failed error=\"libsodium init failed\"");
		return -1;
	}
	if ((st = calloc(1, sizeof(*st))) == NULL ||
	    (st->bans = calloc(GUARD_BANS_INITIAL, sizeof(*st->bans))) == NULL) {
		log_warn("event=guard.bans_start_failed");
		guard_ban_state_free(&st);
		return -1;
	}
	randombytes_buf(st->key, sizeof(st->key));
	st->cfg = cfg;
	st->dir = dir;
	st->bans_cap = GUARD_BANS_INITIAL;
	st->ipv6_prefix = guard_clamp(ip->ipv6_prefix, 1, 128);
	st->findtime = guard_clamp(ip->findtime, 1, INT32_MAX);
	st->maxretry = guard_clamp(ip->maxretry, 1, GUARD_STRIKE_RING_MAX);
	st->maxretry_auth = guard_clamp(ip->maxretry_authenticated, st->maxretry,
	    GUARD_STRIKE_RING_MAX);
	if (ip->maxretry > GUARD_STRIKE_RING_MAX ||
	    ip->maxretry_authenticated > GUARD_STRIKE_RING_MAX)
		log_warnx("event=guard.config maxretry=%d maxretry_authenticated=%d used=%d,%d"
		    " (strikes are counted up to %d per network)", ip->maxretry,
		    ip->maxretry_authenticated, st->maxretry, st->maxretry_auth,
		    GUARD_STRIKE_RING_MAX);
	st->ring = (uint32_t)st->maxretry_auth;
	st->bantime = ip->bantime > 0 ? ip->bantime : 1;
	st->bantime_max = ip->bantime_max > 0 ? ip->bantime_max : st->bantime;
	/* rings are the bulk: fewer networks when each ring is big */
	per = sizeof(struct guard_strike_entry) + st->ring * sizeof(uint32_t) +
	    2 * sizeof(uint32_t);
	st->strikes_max = (uint32_t)(GUARD_STRIKE_BYTES_MAX / per);
	if (st->strikes_max > GUARD_STRIKE_NETWORKS_MAX)
		st->strikes_max = GUARD_STRIKE_NETWORKS_MAX;
	if (st->strikes_max < GUARD_STRIKE_NETWORKS_MIN)
		st->strikes_max = GUARD_STRIKE_NETWORKS_MIN;
	st->lru_head = st->lru_tail = GUARD_NONE;
	st->last_decision = "none";
	st->generation = 1;
	if (guard_ban_sync(st, now, false) == -1) {
		guard_ban_state_free(&st);
		return -1;
	}
	guard_ban_state_free(&guard->ban);
	guard->ban = st;
	{
		struct guard_ban_stats bs;

		guard_ban_stats(guard, now, &bs);
		log_info("event=guard.bans_started enabled=%s maxretry=%d findtime=%d bantime=%lld"
		    " bantime_max=%lld ipv6_prefix=%d maxretry_authenticated=%d active=%zu"
		    " remembered=%zu store=%s", ip->enabled ? "yes" : "no", st->maxretry,
		    st->findtime, (long long)st->bantime, (long long)st->bantime_max,
		    st->ipv6_prefix, st->maxretry_auth, bs.active, st->bans_n,
		    dir != NULL ? "yes" : "no");
	}
	return 0;
}

int
guard_bans_reload(struct guard *guard, time_t now)
{
	if (guard->ban == NULL)
		return 0;
	return guard_ban_sync(guard->ban, now, true);
}

void
guard_bans_expire(struct guard *guard, time_t now)
{
	struct guard_ban_state *st = guard->ban;

	if (st == NULL)
		return;
	for (size_t i = 0; i < st->bans_cap; i++)
		if (st->bans[i].live)
			guard_ban_settle(st, &st->bans[i], now);
}

bool
guard_is_banned(struct guard *guard, const struct sockaddr *sa, time_t now)
{
	struct guard_ban_state *st = guard->ban;
	struct guard_ban_entry *e, *inactive;

	if (st == NULL)
		return false;
	if ((e = guard_ban_match(st, sa, now, &inactive)) != NULL) {
		st->n_refused++;
		return true;
	}
	if (inactive != NULL)
		guard_ban_settle(st, inactive, now);
	return false;
}

static bool
guard_strike_decide(struct guard_ban_state *st, const char *decision, const char *net,
    const char *ip, const char *what, int strikes, int threshold)
{
	st->last_decision = decision;
	if (threshold > 0)
		log_info("event=guard.strike network=%s ip=%s reason=%s strikes=%d threshold=%d"
		    " decision=%s", net, ip, what, strikes, threshold, decision);
	else
		log_info("event=guard.strike network=%s ip=%s reason=%s decision=%s", net, ip,
		    what, decision);
	return false;
}

bool
guard_strike(struct guard *guard, const struct sockaddr *sa, enum guard_strike what,
    time_t now)
{
	struct guard_ban_state *st = guard->ban;
	const struct config_intrusion_prevention *cfg;
	char net[GUARD_NETWORK_TEXT_MAX], ip[INET6_ADDRSTRLEN];
	const char *name = guard_strike_name(what);
	struct guard_ban_entry *inactive;
	struct guard_strike_entry *e;
	struct guard_net key;
	int strikes, threshold;

	if (st == NULL)
		return false;
	cfg = &st->cfg->intrusion_prevention;
	if (!guard_ban_net(sa, st->ipv6_prefix, &key)) {
		st->last_decision = "unknown_family";
		return false;
	}
	guard_net_text(&key, net, sizeof(net));
	sockaddr_format_ip(sa, ip, sizeof(ip));
	if (!cfg->enabled)
		return guard_strike_decide(st, "disabled", net, ip, name, 0, 0);
	if (cidr_list_match(cfg->ignoreip, cfg->nignoreip, sa))
		return guard_strike_decide(st, "ignoreip", net, ip, name, 0, 0);
	/* a session that was open when its network got banned (or a wider ban) */
	if (guard_ban_match(st, sa, now, &inactive) != NULL)
		return guard_strike_decide(st, "already_banned", net, ip, name, 0, 0);
	if ((e = guard_strike_get(st, &key)) == NULL) {
		st->last_decision = "out_of_memory";
		log_warnx("event=guard.strike network=%s ip=%s reason=%s decision=out_of_memory",
		    net, ip, name);
		return false;
	}
	guard_strike_push(st, e, guard_time32(now));
	strikes = guard_strike_count(st, e, now);
	threshold = e->last_auth != 0 && (int64_t)e->last_auth + st->findtime > (int64_t)now ?
	    st->maxretry_auth : st->maxretry;
	if (strikes < threshold)
		return guard_strike_decide(st, "below_threshold", net, ip, name, strikes,
		    threshold);
	if (!guard_ban_impose(st, &key, ip, name, strikes, now))
		return guard_strike_decide(st, "ban_failed", net, ip, name, strikes, threshold);
	(void)guard_strike_decide(st, "banned", net, ip, name, strikes, threshold);
	e->n = e->head = 0;
	return true;
}

void
guard_auth_success(struct guard *guard, const struct sockaddr *sa, time_t now)
{
	struct guard_ban_state *st = guard->ban;
	struct guard_strike_entry *e;
	struct guard_net key;

	if (st == NULL || !guard_ban_net(sa, st->ipv6_prefix, &key))
		return;
	if ((e = guard_strike_get(st, &key)) != NULL)
		e->last_auth = guard_time32(now);
}

void
guard_ban_stats(const struct guard *guard, time_t now, struct guard_ban_stats *st_r)
{
	const struct guard_ban_state *st = guard->ban;
	unsigned long ended = 0;

	memset(st_r, 0, sizeof(*st_r));
	if (st == NULL)
		return;
	for (size_t i = 0; i < st->bans_cap; i++) {
		const struct guard_ban_entry *e = &st->bans[i];

		if (!e->live)
			continue;
		if (e->expires > now)
			st_r->active++;
		else if (e->active)
			ended++;   /* ran out, not settled yet */
	}
	st_r->bans = st->n_bans;
	st_r->unbans = st->n_unbans + ended;
	st_r->refused = st->n_refused;
}

int
guard_ban_get(const struct guard *guard, const struct sockaddr *sa, time_t now,
    struct guard_ban_info *info_r)
{
	const struct guard_ban_state *st = guard->ban;
	struct guard_ban_entry *e, *inactive;

	memset(info_r, 0, sizeof(*info_r));
	if (st == NULL)
		return 0;
	if ((e = guard_ban_match(st, sa, now, &inactive)) == NULL && (e = inactive) == NULL)
		return 0;
	guard_net_text(&e->net, info_r->network, sizeof(info_r->network));
	snprintf(info_r->reason, sizeof(info_r->reason), "%s", e->reason);
	info_r->evidence = e->evidence;
	info_r->level = e->level;
	info_r->created = e->created;
	info_r->expires = e->expires;
	info_r->active = e->expires > now;
	return 1;
}

const char *
guard_ban_last_decision(const struct guard *guard)
{
	return guard->ban != NULL ? guard->ban->last_decision : "not_started";
}

size_t
guard_ban_strike_networks(const struct guard *guard, size_t *max_r)
{
	if (guard->ban == NULL) {
		if (max_r != NULL)
			*max_r = 0;
		return 0;
	}
	if (max_r != NULL)
		*max_r = guard->ban->strikes_max;
	return guard->ban->strikes_n;
}

int
guard_ban_strikes(const struct guard *guard, const struct sockaddr *sa, time_t now)
{
	const struct guard_ban_state *st = guard->ban;
	struct guard_net key;
	uint32_t idx;

	if (st == NULL || st->index_cap == 0 || !guard_ban_net(sa, st->ipv6_prefix, &key))
		return -1;
	idx = st->index[guard_strike_pos(st, &key, guard_net_hash(st, &key))];
	return idx == GUARD_NONE ? -1 : guard_strike_count(st, &st->strikes[idx], now);
}

/* Newest ban first; then the one that lasts longer; then by network, for a stable order. */
struct guard_ban_rank {
	struct guard_net net;
	int64_t created, expires;
};

static int
guard_ban_rank_cmp(const void *a, const void *b)
{
	const struct guard_ban_rank *x = a, *y = b;

	if (x->created != y->created)
		return x->created > y->created ? -1 : 1;
	if (x->expires != y->expires)
		return x->expires > y->expires ? -1 : 1;
	if (x->net.prefix != y->net.prefix)
		return x->net.prefix < y->net.prefix ? -1 : 1;
	return memcmp(x->net.addr, y->net.addr, 16);
}

ssize_t
guard_ban_active_nets(const struct guard *guard, time_t now, struct guard_net **nets_r)
{
	const struct guard_ban_state *st = guard->ban;
	struct guard_ban_rank *rank;
	struct guard_net *nets;
	size_t n = 0;

	*nets_r = NULL;
	if (st == NULL)
		return 0;
	for (size_t i = 0; i < st->bans_cap; i++)
		if (st->bans[i].live && st->bans[i].expires > now)
			n++;
	if (n == 0)
		return 0;
	if ((rank = calloc(n, sizeof(*rank))) == NULL)
		return -1;
	n = 0;
	for (size_t i = 0; i < st->bans_cap; i++) {
		const struct guard_ban_entry *e = &st->bans[i];

		if (e->live && e->expires > now)
			rank[n++] = (struct guard_ban_rank){ .net = e->net, .created = e->created,
			    .expires = e->expires };
	}
	qsort(rank, n, sizeof(*rank), guard_ban_rank_cmp);
	if ((nets = calloc(n, sizeof(*nets))) == NULL) {
		free(rank);
		return -1;
	}
	for (size_t i = 0; i < n; i++)
		nets[i] = rank[i].net;
	free(rank);
	*nets_r = nets;
	return (ssize_t)n;
}

uint64_t
guard_ban_generation(const struct guard *guard)
{
	return guard->ban != NULL ? guard->ban->generation : 0;
}

bool
guard_ban_filter_wanted(const struct guard *guard)
{
	return guard->ban != NULL && guard->ban->cfg->intrusion_prevention.drop_before_accept;
}
