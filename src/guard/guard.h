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
#include <time.h>

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

/* ---- intrusion prevention: fail2ban built in (intrusion_prevention.*) ---- */

struct config;
struct directory;

enum guard_strike {
	GUARD_STRIKE_AUTH_FAILED = 0,
	GUARD_STRIKE_RELAY_DENIED,
	GUARD_STRIKE_UNKNOWN_RECIPIENT,   /* directory harvesting */
	GUARD_STRIKE_PROTOCOL_ERRORS,     /* a session hit smtp.max_errors */
	GUARD_STRIKE_PREGREET,            /* talked before the greeting */
	GUARD_STRIKE_TLS_GARBAGE,         /* a failed TLS handshake */
	GUARD_STRIKE_COUNT
};
const char *guard_strike_name(enum guard_strike s);

/*
 * Turn bans on: thresholds from cfg, bans persisted through dir (loop
 * thread's handle), loaded from it now. cfg and dir must outlive the guard;
 * dir NULL keeps bans in memory only. 0 ok, -1 store error.
 */
int guard_bans_start(struct guard *guard, const struct config *cfg, struct directory *dir,
    time_t now);
/*
 * Reload the ban table from the store (bulwarkctl ban add/del happened):
 * rows gone from the store are lifted (event=guard.unban reason=manual), new
 * ones apply. 0 ok, -1 store error (the table is left as it was).
 */
int guard_bans_reload(struct guard *guard, time_t now);
/*
 * Log and count the bans that ran out since the last call (event=guard.unban
 * reason=expired). Optional: an expired ban never refuses anyone, and the
 * stats count it either way; call it from a periodic timer for timely lines.
 */
void guard_bans_expire(struct guard *guard, time_t now);

/*
 * Is sa's network (a /32, or ipv6_prefix for IPv6) banned now? An in-memory
 * hash lookup: called for every accepted connection before anything else.
 */
bool guard_is_banned(struct guard *guard, const struct sockaddr *sa, time_t now);

/*
 * Count a strike against sa. maxretry strikes within findtime ban it for
 * bantime, doubled for each earlier ban of that network (capped at
 * bantime_max); maxretry_authenticated instead when the IP logged in
 * successfully within findtime (a shared NAT). ignoreip is never banned.
 * Returns true if this strike banned it (logged as event=guard.ban).
 */
bool guard_strike(struct guard *guard, const struct sockaddr *sa, enum guard_strike what,
    time_t now);
/* A successful login from sa (raises its threshold, see guard_strike). */
void guard_auth_success(struct guard *guard, const struct sockaddr *sa, time_t now);

struct guard_ban_stats {
	unsigned long bans, unbans, refused;   /* since start */
	size_t active;
};
void guard_ban_stats(const struct guard *guard, time_t now, struct guard_ban_stats *st_r);

/* ---- the kernel ban filter: banned networks dropped before accept() ---- */

/*
 * Register the listening socket fd with the ban filter: a classic BPF socket
 * filter compiled from the bans in force is attached to it now and again
 * whenever they change (guard_filter_sync), so the kernel drops SYNs from
 * banned networks and they never reach accept(): the client's connect times
 * out, as behind fail2ban's DROP. Every listener (SMTP, IMAP, ...) calls
 * this once after listen(), and guard_filter_detach() before closing fd.
 * Bans the program cannot hold (BPF_MAXINSNS) and bans made since the last
 * sync are still refused at accept by guard_is_banned(). 0 ok (also when
 * there is nothing to attach yet), -1 the kernel refused (logged once; the
 * listener works on, bans apply at accept).
 */
int guard_filter_attach(struct guard *guard, int fd);
/* Forget fd (before it is closed: a reused descriptor must not be filtered). */
void guard_filter_detach(struct guard *guard, int fd);
/*
 * If the bans in force changed since the last call, compile the program
 * again and re-attach it to every registered listener. From the periodic
 * tick (once a second), after guard_bans_reload and guard_bans_expire.
 */
void guard_filter_sync(struct guard *guard, time_t now);

struct guard_filter_stats {
	size_t networks;      /* bans compiled into the program */
	size_t bans;          /* bans in force when it was compiled */
	size_t instructions;  /* its length (0: no program attached) */
	size_t listeners;     /* registered listening sockets */
	size_t attached;      /* ... that hold the current program */
};
void guard_filter_stats(const struct guard *guard, struct guard_filter_stats *st_r);

/*
 * Network key text of sa for bans: "a.b.c.d/32" or "x:y::/64" (prefix per
 * ipv6_prefix). Also used by bulwarkctl ban add to normalise its argument.
 */
void guard_network_text(const struct sockaddr *sa, int ipv6_prefix, char *buf, size_t buflen);

#endif
