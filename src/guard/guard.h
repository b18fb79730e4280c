/*
 * guard.h: per-client-IP defences applied before a protocol session exists.
 * Now: connection counting (per IP and in total), checked at accept. Bans
 * and strikes (the built-in fail2ban) come with the authentication issue and
 * use the same IP key and table. Loop thread only.
 */
#ifndef BULWARK_GUARD_H
#define BULWARK_GUARD_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

struct guard;

struct guard *guard_new(void);
void guard_free(struct guard **guard);

enum guard_verdict {
	GUARD_ACCEPT = 0,
	GUARD_TOO_MANY_FROM_IP,   /* 421 4.7.0 */
	GUARD_TOO_MANY_TOTAL,     /* 421 4.7.0 */
};

/*
 * A connection from sa arrives: count it if accepted. The caller must call
 * guard_conn_close(sa) exactly once for each accepted connection.
 */
enum guard_verdict guard_conn_open(struct guard *guard, const struct sockaddr *sa,
    int max_per_ip, int max_total);
void guard_conn_close(struct guard *guard, const struct sockaddr *sa);
/* Connections counted now, in total and from sa's IP. */
size_t guard_conn_count(const struct guard *guard, const struct sockaddr *sa);
size_t guard_conn_total(const struct guard *guard);
const char *guard_verdict_reason(enum guard_verdict v);

#endif
