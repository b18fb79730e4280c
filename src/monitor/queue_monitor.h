/*
 * queue_monitor.h: the queue monitor and outbound containment (issue 4,
 * docs/containment.md). Every queue_monitor.interval_seconds it counts the
 * queue and alerts above alert_threshold; it enforces the per-account
 * outbound rate limits on authenticated submission; it runs the named
 * detectors over what accounts send and how their mail fares; and when a
 * detector fires it contains the account: its queued outbound mail is held,
 * its sending suspended, and an alert names account, detector and evidence.
 * An alert is a WARNING log line, a metric, a message to the postmaster and,
 * when configured, alert_command with a JSON summary on its stdin.
 * Loop thread only.
 */
#ifndef BULWARK_QUEUE_MONITOR_H
#define BULWARK_QUEUE_MONITOR_H

#include <stdbool.h>
#include <stddef.h>

struct event_base;
struct config;
struct queue;
struct queue_rcpt;
struct directory;
struct pool;
struct queue_monitor;

struct queue_monitor_deps {
	struct event_base *base;
	const struct config *cfg;
	struct queue *queue;
	struct directory *dir;    /* the loop's handle */
	struct pool *pool;        /* writes the postmaster's alert message */
};

struct queue_monitor *queue_monitor_new(const struct queue_monitor_deps *deps);
/* Start the interval timer and listen to the queue's delivery results. 0, -1. */
int queue_monitor_start(struct queue_monitor *m);
/* Stops the timer; alert commands still running are killed. */
void queue_monitor_free(struct queue_monitor **m);

/* An account's outbound limits for one transaction (per hour). */
struct queue_monitor_limits {
	int messages;
	int recipients;
};

/*
 * MAIL from an authenticated account: is its sending suspended now (the
 * directory, read live: an admin's `user suspend` or a containment applies
 * to sessions already open, `user resume` lifts it), and what are its
 * limits (the account's override, else the config's)? 0 may send, 1
 * suspended, -1 store error (4xx).
 */
int queue_monitor_mail(struct queue_monitor *m, const char *account,
    struct queue_monitor_limits *limits_r);

/*
 * RCPT of a remote recipient by an authenticated account, rcpts remote
 * recipients already accepted in this transaction: 0 accepted; -1 over a
 * limit (*which_r "messages" or "recipients"; reply 451 4.7.1). Going over
 * is the rate_limit detector's signal.
 */
int queue_monitor_rcpt(struct queue_monitor *m, const char *account,
    const struct queue_monitor_limits *limits, size_t rcpts, const char **which_r);
/*
 * DATA/BDAT: check again (other sessions of the account count too) and
 * count the message and its rcpts remote recipients. 0 ok, -1 over (451 4.7.1).
 */
int queue_monitor_data(struct queue_monitor *m, const char *account,
    const struct queue_monitor_limits *limits, size_t rcpts, const char **which_r);

/* A message from an authenticated account was queued (after its 250). */
struct queue_monitor_message {
	const char *account;
	const char *sender;          /* envelope sender ("" for <>) */
	const char *queue_id;
	const char *headers;         /* the start of the message as received (its header) */
	size_t headers_len;
	const struct queue_rcpt *rcpts;
	size_t nrcpts;
};
void queue_monitor_submitted(struct queue_monitor *m, const struct queue_monitor_message *msg);

/* Accounts contained now (for tests and bulwarkctl stats). */
size_t queue_monitor_contained(const struct queue_monitor *m);

#endif
