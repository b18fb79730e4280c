/*
 * guard_conn.c: connection counts per client IP in an open-addressing hash
 * table keyed by the 16-byte address (IPv4 as v4-mapped IPv6), so a flood of
 * connections costs one lookup each. Trusts only the kernel's sockaddr.
 */
#include "guard/guard.h"
#include "guard/guard_private.h"

#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static void
guard_key(const struct sockaddr *sa, uint8_t key[16])
{
	memset(key, 0, 16);
	if (sa->sa_family == AF_INET) {
		key[10] = key[11] = 0xff;
		memcpy(key + 12, &((const struct sockaddr_in *)sa)->sin_addr, 4);
	} else if (sa->sa_family == AF_INET6) {
		memcpy(key, &((const struct sockaddr_in6 *)sa)->sin6_addr, 16);
	}
}

static size_t
guard_hash(const uint8_t key[16])
{
	uint64_t h = 1469598103934665603ULL;   /* FNV-1a */

	for (int i = 0; i < 16; i++)
		h = (h ^ key[i]) * 1099511628211ULL;
	return (size_t)h;
}

static struct guard_slot *
guard_find(const struct guard *guard, const uint8_t key[16], bool for_insert)
{
	size_t mask = guard->cap - 1, i = guard_hash(key) & mask;
	struct guard_slot *tomb = NULL;

	for (size_t n = 0; n < guard->cap; n++, i = (i + 1) & mask) {
		struct guard_slot *s = &guard->slots[i];

		if (!s->used)
			return for_insert ? (tomb != NULL ? tomb : s) : NULL;
		if (memcmp(s->ip, key, 16) == 0)
			return s;
		if (s->count == 0 && tomb == NULL)
			tomb = s;
	}
	return for_insert ? tomb : NULL;
}

/* Rehash into a table of newcap slots, dropping tombstones. */
static int
guard_resize(struct guard *guard, size_t newcap)
{
	struct guard_slot *old = guard->slots;
	size_t oldcap = guard->cap;

	guard->slots = calloc(newcap, sizeof(*guard->slots));
	if (guard->slots == NULL) {
		guard->slots = old;
		return -1;
	}
	guard->cap = newcap;
	guard->used = 0;
	for (size_t i = 0; i < oldcap; i++) {
		if (old[i].count > 0) {
			struct guard_slot *s = guard_find(guard, old[i].ip, true);

			*s = old[i];
			guard->used++;
		}
	}
	free(old);
	return 0;
}

struct guard *
guard_new(void)
{
	struct guard *guard = calloc(1, sizeof(*guard));

	if (guard == NULL)
		return NULL;
	guard->cap = 256;
	guard->slots = calloc(guard->cap, sizeof(*guard->slots));
	if (guard->slots == NULL) {
		free(guard);
		return NULL;
	}
	return guard;
}

void
guard_free(struct guard **guardp)
{
	if (*guardp == NULL)
		return;
	guard_ban_state_free(&(*guardp)->ban);
	guard_filter_state_free(&(*guardp)->filter);
	free((*guardp)->slots);
	free(*guardp);
	*guardp = NULL;
}

enum guard_verdict
guard_conn_open(struct guard *guard, const struct sockaddr *sa, int max_per_ip, int max_total)
{
	uint8_t key[16];
	struct guard_slot *s;

	if (max_total > 0 && guard->total >= (size_t)max_total)
		return GUARD_TOO_MANY_TOTAL;
	guard_key(sa, key);
	s = guard_find(guard, key, false);
	if (s != NULL && max_per_ip > 0 && s->count >= (uint32_t)max_per_ip)
		return GUARD_TOO_MANY_FROM_IP;
	if (s == NULL) {
		if ((guard->used + 1) * 4 > guard->cap * 3 &&
		    /* mostly tombstones (live <= total < cap/2): rehash in place */
		    guard_resize(guard, guard->total * 2 >= guard->cap ?
		    guard->cap * 2 : guard->cap) == -1)
			return GUARD_TOO_MANY_TOTAL;   /* out of memory: refuse, stay consistent */
		s = guard_find(guard, key, true);
		if (!s->used)
			guard->used++;
		memcpy(s->ip, key, 16);
		s->used = true;
		s->count = 0;
	}
	s->count++;
	guard->total++;
	return GUARD_ACCEPT;
}

void
guard_conn_close(struct guard *guard, const struct sockaddr *sa)
{
	uint8_t key[16];
	struct guard_slot *s;

	guard_key(sa, key);
	s = guard_find(guard, key, false);
	if (s == NULL || s->count == 0)
		return;
	s->count--;
	guard->total--;
}

size_t
guard_conn_count(const struct guard *guard, const struct sockaddr *sa)
{
	uint8_t key[16];
	const struct guard_slot *s;

	guard_key(sa, key);
	s = guard_find(guard, key, false);
	return s != NULL ? s->count : 0;
}

size_t
guard_conn_total(const struct guard *guard)
{
	return guard->total;
}

const char *
guard_verdict_reason(enum guard_verdict v)
{
	switch (v) {
	case GUARD_ACCEPT:
		return "accept";
	case GUARD_TOO_MANY_FROM_IP:
		return "too_many_connections_from_ip";
	case GUARD_TOO_MANY_TOTAL:
		return "too_many_connections";
	}
	return "unknown";
}
