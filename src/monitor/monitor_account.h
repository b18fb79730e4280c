/*
 * monitor_account.h: what the queue monitor remembers of each sending
 * account, and the detectors that look at it (docs/containment.md). Pure:
 * no clock, no I/O; the caller passes the time and the config, so every
 * window and threshold is unit-tested (tests/unit/test_monitor_account.c).
 * Memory is bounded: each window keeps at most MONITOR_WINDOW_MAX samples.
 */
#ifndef BULWARK_MONITOR_ACCOUNT_H
#define BULWARK_MONITOR_ACCOUNT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/config.h"

#define MONITOR_WINDOW_MAX 4096   /* samples per window; the oldest go first */
#define MONITOR_SENDERS_MAX 8     /* envelope senders remembered per account */
#define MONITOR_EVIDENCE_MAX 400

/* A sliding window of samples (time, key, count), oldest first. */
struct monitor_sample {
	int64_t t;
	uint64_t key;
	uint32_t n;
};

struct monitor_window {
	struct monitor_sample *v;
	size_t len, cap;
	int seconds;     /* samples at or before now - seconds are gone */
};

void monitor_window_init(struct monitor_window *w, int seconds);
void monitor_window_clear(struct monitor_window *w);
/* Drop what is out of the window at now. */
void monitor_window_prune(struct monitor_window *w, int64_t now);
/* Add a sample (now never goes back: a clock step back is taken as now). -1 no memory. */
int monitor_window_add(struct monitor_window *w, int64_t now, uint64_t key, uint32_t n);
/* Like add, but one sample per key: an existing one moves to now (distinct counting). */
int monitor_window_touch(struct monitor_window *w, int64_t now, uint64_t key);
/* Sum of n over the window; only samples of key unless any_key. */
uint64_t monitor_window_sum(struct monitor_window *w, int64_t now, uint64_t key, bool any_key);
/* Samples in the window (distinct keys, for a touched window). */
size_t monitor_window_count(struct monitor_window *w, int64_t now);

/* FNV-1a of s, lower-cased ASCII, blanks collapsed: the key of a domain or subject. */
uint64_t monitor_key(const char *s);

struct monitor_account {
	struct monitor_account *next;
	char *name;                               /* the authenticated account */
	char *senders[MONITOR_SENDERS_MAX];       /* envelope senders it used (aliases) */
	size_t nsenders;
	struct monitor_window messages;           /* rate limit: messages, 1 h */
	struct monitor_window rcpts;              /* rate limit: remote recipients, 1 h */
	struct monitor_window domains;            /* distinct recipient domains */
	struct monitor_window subjects;           /* recipients per subject key */
	struct monitor_window results;            /* key 0 delivered, 1 deferred or bounced */
	struct monitor_window mismatches;         /* From: not the account's */
	bool contained;                           /* held and suspended by us */
	int64_t contained_at;
	int64_t alerted_at;                       /* last detector alert (containment off) */
};

/* A new account record, windows sized from cfg. NULL when out of memory. */
struct monitor_account *monitor_account_new(const char *name,
    const struct config_queue_monitor *cfg);
void monitor_account_free(struct monitor_account **a);
/* Forget every sample (a resumed account starts afresh). */
void monitor_account_reset(struct monitor_account *a);
/* Remember an envelope sender the account used (the oldest goes when full). */
void monitor_account_add_sender(struct monitor_account *a, const char *sender);
/* Is sender the account itself or one it used? (case-insensitive) */
bool monitor_account_has_sender(const struct monitor_account *a, const char *sender);

enum monitor_rate {
	MONITOR_RATE_OK = 0,
	MONITOR_RATE_MESSAGES,     /* one more message would pass messages_per_hour */
	MONITOR_RATE_RECIPIENTS,   /* more recipients would pass recipients_per_hour */
};

/* "messages" or "recipients" (or "ok"). */
const char *monitor_rate_name(enum monitor_rate r);
/*
 * Would messages more messages and rcpts more remote recipients keep the
 * account within its limits (per hour) at now?
 */
enum monitor_rate monitor_account_rate_check(struct monitor_account *a, int64_t now,
    int messages_limit, int rcpts_limit, uint32_t messages, uint32_t rcpts);
/* Count them (a transaction reached DATA). */
void monitor_account_rate_record(struct monitor_account *a, int64_t now, uint32_t messages,
    uint32_t rcpts);

/* What a detector found: its name and the evidence, for logs and alerts. */
struct monitor_finding {
	const char *detector;     /* "rate_limit", "distinct_domains", ... (static) */
	char evidence[MONITOR_EVIDENCE_MAX];
};

/* One accepted message, as the detectors see it. */
struct monitor_message {
	const char *subject;            /* unfolded; NULL when the message has none */
	const char *from;               /* the From: address that did not match, or NULL */
	const char *const *domains;     /* remote recipient domains, each once */
	size_t ndomains;
	size_t nrcpts;                  /* remote recipients */
};

/*
 * Record an accepted message and run the message detectors (from_mismatch,
 * distinct_domains, same_subject, in that order). 1 one fired (*f filled),
 * 0 none.
 */
int monitor_account_message(struct monitor_account *a, const struct config_queue_monitor *cfg,
    int64_t now, const struct monitor_message *msg, struct monitor_finding *f);
/* Record remote delivery results and run deferral_ratio. 1 fired, 0 not. */
int monitor_account_results(struct monitor_account *a, const struct config_queue_monitor *cfg,
    int64_t now, size_t delivered, size_t deferred, size_t failed, struct monitor_finding *f);

/*
 * monitor_header.c. The unfolded value of the first header field name (case-insensitive) in
 * the header block msg[0..len) (CRLF or LF line ends), control bytes read
 * as blanks, blanks collapsed and trimmed, in out (truncated to outlen - 1).
 * 1 found, 0 not.
 */
int monitor_header_field(const char *msg, size_t len, const char *name, char *out,
    size_t outlen);
/*
 * The addresses (addr-spec) of a From: value: each <...>, or each bare
 * word holding '@' when there are no brackets; comments and quoted display
 * names are skipped. Up to max into out[i] (each outlen bytes). The count.
 */
size_t monitor_header_addresses(const char *value, char out[][320], size_t max);

#endif
