/*
 * queue_monitor.c: the queue monitor and outbound containment on the loop
 * (docs/containment.md). Counts the queue every interval; keeps each
 * sending account's windows (monitor_account.c), fed by the submission
 * path (RCPT, DATA, the 250) and by the scheduler's delivery results; when
 * a detector fires, contains the account: suspend in the directory, hold
 * its queued remote mail, alert. Trusts the directory and the queue; what
 * users sent is only counted, hashed, and quoted short as evidence.
 */
#include "monitor/queue_monitor.h"

#include <dirent.h>
#include <errno.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "core/config.h"
#include "core/fsutil.h"
#include "core/log.h"
#include "core/pool.h"
#include "directory/directory.h"
#include "monitor/metrics.h"
#include "monitor/monitor_account.h"
#include "monitor/monitor_command.h"
#include "queue/queue.h"

#define MONITOR_ACCOUNTS_MAX 100000   /* idle ones are forgotten at each interval */
#define MONITOR_HEADER_FIELD_MAX 998  /* RFC 5322 2.1.1 */
#define MONITOR_FROM_MAX 8

struct queue_monitor {
	struct queue_monitor_deps deps;
	const struct config_queue_monitor *cfg;
	struct monitor_account *accounts;
	size_t naccounts;
	struct monitor_commands *commands;
	struct event *tick;
	bool queue_alerting;         /* the queue is above alert_threshold */
	time_t queue_alerted_at;
	size_t contained;
};

/* One alert, as every channel sees it. */
struct monitor_alert {
	const char *kind;            /* "queue", "detector", "containment" */
	const char *account;         /* NULL for a queue alert */
	const char *detector;
	const char *evidence;
	bool suspended;
	size_t held;                 /* held by this containment now */
	size_t queued, deferred, held_total;
};

/* ---- accounts ---- */

static struct monitor_account *
account_find(struct queue_monitor *m, const char *name)
{
	for (struct monitor_account *a = m->accounts; a != NULL; a = a->next)
		if (strcasecmp(a->name, name) == 0)
			return a;
	return NULL;
}

static struct monitor_account *
account_get(struct queue_monitor *m, const char *name)
{
	struct monitor_account *a = account_find(m, name);

	if (a != NULL || m->naccounts >= MONITOR_ACCOUNTS_MAX)
		return a;
	if ((a = monitor_account_new(name, m->cfg)) == NULL)
		return NULL;
	a->next = m->accounts;
	m->accounts = a;
	m->naccounts++;
	return a;
}

static struct monitor_account *
account_by_sender(struct queue_monitor *m, const char *sender)
{
	for (struct monitor_account *a = m->accounts; a != NULL; a = a->next)
		if (monitor_account_has_sender(a, sender))
			return a;
	return NULL;
}

/* Forget accounts with nothing in their windows (memory stays bounded). */
static void
accounts_prune(struct queue_monitor *m, time_t now)
{
	struct monitor_account **pp = &m->accounts;

	while (*pp != NULL) {
		struct monitor_account *a = *pp;

		if (!a->contained && monitor_window_count(&a->messages, now) == 0 &&
		    monitor_window_count(&a->rcpts, now) == 0 &&
		    monitor_window_count(&a->domains, now) == 0 &&
		    monitor_window_count(&a->subjects, now) == 0 &&
		    monitor_window_count(&a->results, now) == 0 &&
		    monitor_window_count(&a->mismatches, now) == 0) {
			*pp = a->next;
			m->naccounts--;
			monitor_account_free(&a);
			continue;
		}
		pp = &a->next;
	}
}

/* ---- alerts ---- */

/* s as a JSON string: ASCII as is, controls and non-ASCII escaped. */
static void
json_str(FILE *f, const char *s)
{
	if (s == NULL) {
		fputs("null", f);
		return;
	}
	fputc('"', f);
	for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++) {
		if (*p == '"' || *p == '\\')
			fprintf(f, "\\%c", *p);
		else if (*p < 0x20 || *p >= 0x7f)
			fprintf(f, "\\u%04x", *p);
		else
			fputc(*p, f);
	}
	fputc('"', f);
}

/* The alert as one JSON object (docs/containment.md); malloc'd. */
static char *
alert_json(const struct queue_monitor *m, const struct monitor_alert *al, time_t now,
    size_t *len_r)
{
	char when[32], *buf = NULL;
	struct tm tm;
	FILE *f = open_memstream(&buf, len_r);

	if (f == NULL)
		return NULL;
	gmtime_r(&now, &tm);
	strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
	fputs("{\"type\":\"bulwark.alert\",\"kind\":", f);
	json_str(f, al->kind);
	fprintf(f, ",\"time\":\"%s\",\"host\":", when);
	json_str(f, m->deps.cfg->hostname);
	fputs(",\"account\":", f);
	json_str(f, al->account);
	fputs(",\"detector\":", f);
	json_str(f, al->detector);
	fputs(",\"evidence\":", f);
	json_str(f, al->evidence);
	fprintf(f, ",\"action\":{\"contained\":%s,\"suspended\":%s,\"held\":%zu}",
	    strcmp(al->kind, "containment") == 0 ? "true" : "false",
	    al->suspended ? "true" : "false", al->held);
	fprintf(f, ",\"queue\":{\"messages\":%zu,\"deferred\":%zu,\"held\":%zu,\"threshold\":%d}}\n",
	    al->queued, al->deferred, al->held_total, m->cfg->alert_threshold);
	if (fclose(f) != 0) {
		free(buf);
		return NULL;
	}
	return buf;
}

struct alert_notice {
	const struct config *cfg;
	char **to;
	size_t nto;
	char *subject, *body;
};

static void
alert_notice_free(struct alert_notice *n)
{
	for (size_t i = 0; i < n->nto; i++)
		free(n->to[i]);
	free(n->to);
	free(n->subject);
	free(n->body);
	free(n);
}

/* Pool thread: the postmaster's copy, durably into queue/incoming. */
static void
alert_notice_work(void *arg)
{
	struct alert_notice *n = arg;

	for (size_t i = 0; i < n->nto; i++)
		if (queue_notice(n->cfg, n->to[i], n->subject, n->body, NULL) == -1)
			log_warn("event=monitor.notice_error to=%s", n->to[i]);
}

static void
alert_notice_done(void *arg)
{
	alert_notice_free(arg);
}

/* The postmaster's mailboxes: postmaster@ the first domain, aliases expanded. */
static int
alert_recipients(struct queue_monitor *m, struct alert_notice *n)
{
	const struct config *cfg = m->deps.cfg;
	struct directory_strings t = { 0 };

	if (cfg->ndomains == 0)
		return -1;
	if (m->deps.dir != NULL &&
	    directory_resolve(m->deps.dir, cfg, "postmaster", cfg->domains[0], &t) == 1 && t.n > 0) {
		n->to = t.v;
		n->nto = t.n;
		return 0;
	}
	directory_strings_clear(&t);
	if ((n->to = calloc(1, sizeof(char *))) == NULL ||
	    asprintf(&n->to[0], "postmaster@%s", cfg->domains[0]) == -1)
		return -1;
	n->nto = 1;
	return 0;
}

static void
alert_postmaster(struct queue_monitor *m, const struct monitor_alert *al, const char *json)
{
	struct alert_notice *n = calloc(1, sizeof(*n));
	int r;

	if (n == NULL)
		return;
	n->cfg = m->deps.cfg;
	if (strcmp(al->kind, "queue") == 0)
		r = asprintf(&n->subject, "[bulwark] queue alert: %zu messages queued (threshold %d)",
		    al->queued, m->cfg->alert_threshold);
	else
		r = asprintf(&n->subject, "[bulwark] %s: %s (%s)",
		    strcmp(al->kind, "containment") == 0 ? "account contained" : "suspicious sending",
		    al->account, al->detector);
	if (r == -1)
		n->subject = NULL;
	r = asprintf(&n->body,
	    "bulwark's queue monitor raised an alert on %s.\n\n"
	    "kind:      %s\naccount:   %s\ndetector:  %s\nevidence:  %s\n"
	    "suspended: %s\nheld now:  %zu\n\n"
	    "queue: %zu messages, %zu deferred, %zu held\n\n%s%s\n",
	    m->deps.cfg->hostname, al->kind, al->account != NULL ? al->account : "-",
	    al->detector != NULL ? al->detector : "-", al->evidence != NULL ? al->evidence : "-",
	    al->suspended ? "yes" : "no", al->held, al->queued, al->deferred, al->held_total,
	    strcmp(al->kind, "containment") == 0 ?
	    "Review the held mail (bulwarkctl queue list, queue show ID). Then either\n"
	    "  bulwarkctl user resume ACCOUNT and bulwarkctl queue release --sender ACCOUNT\n"
	    "or delete it: bulwarkctl queue delete --sender ACCOUNT (and change the password).\n\n" : "",
	    json);
	if (r == -1)
		n->body = NULL;
	if (n->subject == NULL || n->body == NULL || alert_recipients(m, n) == -1 ||
	    m->deps.pool == NULL ||
	    pool_submit(m->deps.pool, alert_notice_work, alert_notice_done, n) == -1) {
		log_warnx("event=monitor.notice_error reason=\"cannot queue the postmaster's message\"");
		alert_notice_free(n);
	}
}

/* Messages in queue/hold (for alerts; a directory read, small). */
static size_t
held_count(const struct queue_monitor *m)
{
	char path[4096];
	struct dirent *de;
	size_t n = 0;
	DIR *d;

	if (fs_path(path, sizeof(path), "%s/queue/hold", m->deps.cfg->data_dir) == -1 ||
	    (d = opendir(path)) == NULL)
		return 0;
	while ((de = readdir(d)) != NULL)
		if (strlen(de->d_name) == QUEUE_ID_LEN)
			n++;
	closedir(d);
	return n;
}

/* Raise an alert on every channel: log, metric, postmaster, alert_command. */
static void
alert_raise(struct queue_monitor *m, struct monitor_alert *al)
{
	time_t now = time(NULL);
	char acct[LOG_ESCAPE_MAX], kindlabel[64], *json;
	size_t len = 0;

	al->queued = m->deps.queue != NULL ? queue_count(m->deps.queue) : 0;
	al->deferred = m->deps.queue != NULL ? queue_deferred_count(m->deps.queue) : 0;
	al->held_total = held_count(m);
	log_warnx("event=monitor.alert kind=%s account=%s detector=%s queued=%zu deferred=%zu held=%zu evidence=\"%s\"",
	    al->kind, al->account != NULL ? log_escape(acct, sizeof(acct), al->account,
	    strlen(al->account)) : "-", al->detector != NULL ? al->detector : "-", al->queued,
	    al->deferred, al->held_total, al->evidence != NULL ? al->evidence : "");
	snprintf(kindlabel, sizeof(kindlabel), "kind=\"%s\"", al->kind);
	metrics_inc("bulwark_monitor_alerts_total", kindlabel);
	if ((json = alert_json(m, al, now, &len)) == NULL) {
		log_warnx("event=monitor.alert_error reason=\"out of memory\"");
		return;
	}
	alert_postmaster(m, al, json);
	if (m->cfg->alert_command != NULL)
		(void)monitor_command_run(m->commands, m->cfg->alert_command,
		    m->cfg->alert_command_timeout, al->kind, json, len);
	free(json);
}

/* ---- containment ---- */

static void
contain(struct queue_monitor *m, struct monitor_account *a, const struct monitor_finding *f)
{
	char acct[LOG_ESCAPE_MAX], label[64], *error = NULL;
	const char *senders[MONITOR_SENDERS_MAX + 1];
	struct monitor_alert al = { .kind = "containment", .account = a->name,
	    .detector = f->detector, .evidence = f->evidence };
	time_t now = time(NULL);
	size_t n = 0;

	log_escape(acct, sizeof(acct), a->name, strlen(a->name));
	snprintf(label, sizeof(label), "detector=\"%s\"", f->detector);
	if (!m->cfg->containment) {
		/* Alert only; once per alert_repeat_seconds for an account (a
		 * spam run would otherwise log every message). */
		if (a->alerted_at != 0 && now - a->alerted_at < m->cfg->alert_repeat_seconds)
			return;
		a->alerted_at = now;
		metrics_inc("bulwark_monitor_detections_total", label);
		log_warnx("event=monitor.detected account=%s detector=%s evidence=\"%s\"", acct,
		    f->detector, f->evidence);
		al.kind = "detector";
		alert_raise(m, &al);
		return;
	}
	if (a->contained)
		return;
	metrics_inc("bulwark_monitor_detections_total", label);
	log_warnx("event=monitor.detected account=%s detector=%s evidence=\"%s\"", acct, f->detector,
	    f->evidence);
	a->contained = true;
	a->contained_at = now;
	m->contained++;
	/* XXX a synchronous SQLite write on the loop; rare (once per containment). */
	if (m->deps.dir != NULL &&
	    directory_user_set_flag(m->deps.dir, a->name, "suspended", true, &error) == 0)
		al.suspended = true;
	else
		log_warnx("event=monitor.suspend_error account=%s reason=\"%s\"", acct,
		    error != NULL ? error : "no directory");
	free(error);
	senders[n++] = a->name;
	for (size_t i = 0; i < a->nsenders; i++)
		senders[n++] = a->senders[i];
	if (m->deps.queue != NULL)
		al.held = queue_hold_senders(m->deps.queue, senders, n, "containment");
	metrics_inc("bulwark_containments_total", label);
	log_warnx("event=monitor.containment account=%s detector=%s suspended=%s held=%zu evidence=\"%s\"",
	    acct, f->detector, al.suspended ? "yes" : "no", al.held, f->evidence);
	alert_raise(m, &al);
}

/* The admin resumed a contained account: it starts afresh. */
static void
lift(struct queue_monitor *m, struct monitor_account *a)
{
	char acct[LOG_ESCAPE_MAX];

	a->contained = false;
	m->contained--;
	monitor_account_reset(a);
	log_warnx("event=monitor.lifted account=%s reason=\"resumed by the admin\"",
	    log_escape(acct, sizeof(acct), a->name, strlen(a->name)));
}

/* 1 the account is suspended in the directory, 0 not (or unknown), -1 error. */
static int
account_suspended(struct queue_monitor *m, const char *account, struct directory_user *u_r)
{
	int r;

	if (m->deps.dir == NULL)
		return 0;
	r = directory_user_get(m->deps.dir, account, u_r);
	if (r != 1)
		return r;
	return u_r->suspended ? 1 : 0;
}

/* Is a contained account still suspended? Lift it when the admin resumed it. */
static bool
still_contained(struct queue_monitor *m, struct monitor_account *a)
{
	struct directory_user u = { 0 };
	int r = account_suspended(m, a->name, &u);

	directory_user_clear(&u);
	if (r == 0) {
		lift(m, a);
		return false;
	}
	return true;   /* suspended, or the store failed: stay safe */
}

/* ---- the scheduler's side ---- */

static bool
observer_hold(void *arg, const char *sender)
{
	struct queue_monitor *m = arg;
	struct monitor_account *a;
	struct directory_user u = { 0 };
	const char *at;
	int r;

	if (sender[0] == '\0')
		return false;
	if ((a = account_by_sender(m, sender)) != NULL && a->contained)
		return still_contained(m, a);
	/* Not one of ours in memory (a restart, an admin's suspend): the directory. */
	if ((at = strrchr(sender, '@')) == NULL || !config_is_local_domain(m->deps.cfg, at + 1))
		return false;
	r = account_suspended(m, sender, &u);
	directory_user_clear(&u);
	return r == 1;
}

static void
observer_attempt(void *arg, const char *sender, unsigned flags, size_t delivered,
    size_t deferred, size_t failed)
{
	struct queue_monitor *m = arg;
	struct monitor_account *a;
	struct monitor_finding f;

	(void)flags;
	if (sender[0] == '\0' || (a = account_by_sender(m, sender)) == NULL || a->contained)
		return;
	if (monitor_account_results(a, m->cfg, time(NULL), delivered, deferred, failed, &f) == 1)
		contain(m, a, &f);
}

/* ---- the submission path ---- */

int
queue_monitor_mail(struct queue_monitor *m, const char *account,
    struct queue_monitor_limits *limits_r)
{
	struct directory_user u = { 0 };
	struct monitor_account *a;
	int r;

	limits_r->messages = m->cfg->messages_per_hour;
	limits_r->recipients = m->cfg->recipients_per_hour;
	r = account_suspended(m, account, &u);
	if (r >= 0 && u.address != NULL) {
		if (u.messages_per_hour >= 0)
			limits_r->messages = u.messages_per_hour;
		if (u.recipients_per_hour >= 0)
			limits_r->recipients = u.recipients_per_hour;
	}
	directory_user_clear(&u);
	if (r == -1)
		return -1;
	if (r == 0 && (a = account_find(m, account)) != NULL && a->contained)
		lift(m, a);
	return r == 1 ? 1 : 0;
}

/* Over a limit: count it, and it is the rate_limit detector's signal. */
static int
rate_refused(struct queue_monitor *m, struct monitor_account *a, enum monitor_rate rate,
    const struct queue_monitor_limits *limits, const char **which_r)
{
	char label[64];

	*which_r = monitor_rate_name(rate);
	snprintf(label, sizeof(label), "limit=\"%s\"", *which_r);
	metrics_inc("bulwark_rate_limited_total", label);
	if (m->cfg->detectors.rate_limit.enabled && !a->contained) {
		struct monitor_finding f = { .detector = "rate_limit" };

		if (rate == MONITOR_RATE_MESSAGES)
			snprintf(f.evidence, sizeof(f.evidence),
			    "over %d messages in one hour (%llu sent)", limits->messages,
			    (unsigned long long)monitor_window_sum(&a->messages, time(NULL), 0, true));
		else
			snprintf(f.evidence, sizeof(f.evidence),
			    "over %d remote recipients in one hour (%llu sent)", limits->recipients,
			    (unsigned long long)monitor_window_sum(&a->rcpts, time(NULL), 0, true));
		contain(m, a, &f);
	}
	return -1;
}

int
queue_monitor_rcpt(struct queue_monitor *m, const char *account,
    const struct queue_monitor_limits *limits, size_t rcpts, const char **which_r)
{
	struct monitor_account *a = account_get(m, account);
	enum monitor_rate rate;

	if (a == NULL)
		return 0;   /* no memory: not counted, never refused for it */
	rate = monitor_account_rate_check(a, time(NULL), limits->messages, limits->recipients,
	    1, (uint32_t)rcpts + 1);
	if (rate == MONITOR_RATE_OK)
		return 0;
	return rate_refused(m, a, rate, limits, which_r);
}

int
queue_monitor_data(struct queue_monitor *m, const char *account,
    const struct queue_monitor_limits *limits, size_t rcpts, const char **which_r)
{
	struct monitor_account *a = account_get(m, account);
	time_t now = time(NULL);
	enum monitor_rate rate;

	if (a == NULL || rcpts == 0)
		return 0;
	rate = monitor_account_rate_check(a, now, limits->messages, limits->recipients, 1,
	    (uint32_t)rcpts);
	if (rate != MONITOR_RATE_OK)
		return rate_refused(m, a, rate, limits, which_r);
	monitor_account_rate_record(a, now, 1, (uint32_t)rcpts);
	return 0;
}

/* Does address belong to account (itself, or an alias the directory gives it)? */
static bool
from_allowed(struct queue_monitor *m, const char *account, const char *address)
{
	if (strcasecmp(account, address) == 0)
		return true;
	if (m->deps.dir == NULL)
		return false;
	return directory_sender_allowed(m->deps.dir, m->deps.cfg, account, address) != 0;
}

void
queue_monitor_submitted(struct queue_monitor *m, const struct queue_monitor_message *msg)
{
	struct monitor_account *a = account_get(m, msg->account);
	char subject[MONITOR_HEADER_FIELD_MAX + 1], from[MONITOR_HEADER_FIELD_MAX + 1];
	char addrs[MONITOR_FROM_MAX][320];
	const char **domains = NULL;
	struct monitor_message mm = { 0 };
	struct monitor_finding f;
	size_t naddrs = 0;

	if (a == NULL)
		return;
	if (msg->sender[0] != '\0')
		monitor_account_add_sender(a, msg->sender);
	if (a->contained)
		return;   /* already stopped; the scheduler holds this one */
	for (size_t i = 0; i < msg->nrcpts; i++)
		if (!msg->rcpts[i].local)
			mm.nrcpts++;
	if (mm.nrcpts == 0)
		return;   /* mail between colleagues is not outbound: not watched */
	mm.nrcpts = 0;
	if (monitor_header_field(msg->headers, msg->headers_len, "Subject", subject,
	    sizeof(subject)) == 1)
		mm.subject = subject;
	if (monitor_header_field(msg->headers, msg->headers_len, "From", from, sizeof(from)) == 1)
		naddrs = monitor_header_addresses(from, addrs, MONITOR_FROM_MAX);
	for (size_t i = 0; i < naddrs && mm.from == NULL; i++)
		if (!from_allowed(m, msg->account, addrs[i]))
			mm.from = addrs[i];
	if ((domains = calloc(msg->nrcpts + 1, sizeof(*domains))) != NULL) {
		for (size_t i = 0; i < msg->nrcpts; i++) {
			const char *at = strrchr(msg->rcpts[i].address, '@');
			bool seen = false;

			if (msg->rcpts[i].local || at == NULL)
				continue;
			mm.nrcpts++;
			for (size_t k = 0; k < mm.ndomains && !seen; k++)
				seen = strcasecmp(domains[k], at + 1) == 0;
			if (!seen)
				domains[mm.ndomains++] = at + 1;
		}
		mm.domains = domains;
	}
	if (monitor_account_message(a, m->cfg, time(NULL), &mm, &f) == 1)
		contain(m, a, &f);
	free(domains);
}

size_t
queue_monitor_contained(const struct queue_monitor *m)
{
	return m->contained;
}

/* ---- the interval ---- */

static void
monitor_tick_cb(evutil_socket_t fd, short what, void *arg)
{
	struct queue_monitor *m = arg;
	time_t now = time(NULL);
	size_t queued, deferred;

	(void)fd;
	(void)what;
	queued = m->deps.queue != NULL ? queue_count(m->deps.queue) : 0;
	deferred = m->deps.queue != NULL ? queue_deferred_count(m->deps.queue) : 0;
	metrics_set("bulwark_queue_deferred", NULL, (double)deferred);
	log_info("event=monitor.queue queued=%zu deferred=%zu threshold=%d", queued, deferred,
	    m->cfg->alert_threshold);
	if (queued > (size_t)m->cfg->alert_threshold) {
		if (!m->queue_alerting || now - m->queue_alerted_at >= m->cfg->alert_repeat_seconds) {
			char ev[160];
			struct monitor_alert al = { .kind = "queue", .evidence = ev };

			snprintf(ev, sizeof(ev), "%zu messages in the queue (%zu deferred), threshold %d",
			    queued, deferred, m->cfg->alert_threshold);
			m->queue_alerting = true;
			m->queue_alerted_at = now;
			alert_raise(m, &al);
		}
	} else if (m->queue_alerting) {
		m->queue_alerting = false;
		log_info("event=monitor.queue_ok queued=%zu threshold=%d", queued, m->cfg->alert_threshold);
	}
	for (struct monitor_account *a = m->accounts, *next; a != NULL; a = next) {
		next = a->next;
		if (a->contained)
			(void)still_contained(m, a);
	}
	accounts_prune(m, now);
	metrics_set("bulwark_accounts_contained", NULL, (double)m->contained);
}

struct queue_monitor *
queue_monitor_new(const struct queue_monitor_deps *deps)
{
	struct queue_monitor *m = calloc(1, sizeof(*m));

	if (m == NULL)
		return NULL;
	m->deps = *deps;
	m->cfg = &deps->cfg->queue_monitor;
	if ((m->commands = monitor_commands_new(deps->base)) == NULL) {
		free(m);
		return NULL;
	}
	return m;
}

int
queue_monitor_start(struct queue_monitor *m)
{
	struct timeval tv = { .tv_sec = m->cfg->interval_seconds };
	struct queue_observer obs = { .attempt = observer_attempt, .hold = observer_hold, .arg = m };

	if (m->deps.queue != NULL)
		queue_set_observer(m->deps.queue, &obs);
	m->tick = event_new(m->deps.base, -1, EV_PERSIST, monitor_tick_cb, m);
	if (m->tick == NULL || event_add(m->tick, &tv) == -1)
		return -1;
	log_info("event=monitor.start interval=%d alert_threshold=%d containment=%s alert_command=%s messages_per_hour=%d recipients_per_hour=%d",
	    m->cfg->interval_seconds, m->cfg->alert_threshold, m->cfg->containment ? "on" : "off",
	    m->cfg->alert_command != NULL ? "yes" : "no", m->cfg->messages_per_hour,
	    m->cfg->recipients_per_hour);
	return 0;
}

void
queue_monitor_free(struct queue_monitor **mp)
{
	struct queue_monitor *m = *mp;
	struct queue_observer none = { 0 };

	if (m == NULL)
		return;
	*mp = NULL;
	if (m->deps.queue != NULL)
		queue_set_observer(m->deps.queue, &none);
	if (m->tick != NULL)
		event_free(m->tick);
	monitor_commands_free(&m->commands);
	while (m->accounts != NULL) {
		struct monitor_account *a = m->accounts;

		m->accounts = a->next;
		monitor_account_free(&a);
	}
	free(m);
}
