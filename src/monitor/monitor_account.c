/*
 * monitor_account.c: per-account sliding windows and the detectors of the
 * queue monitor (docs/containment.md). Pure and bounded: the caller gives
 * the time; what the account sent is trusted only as counts and hashes
 * (subjects and domains are keyed, only the evidence text is kept short).
 */
#include "monitor/monitor_account.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ---- windows ---- */

void
monitor_window_init(struct monitor_window *w, int seconds)
{
	memset(w, 0, sizeof(*w));
	w->seconds = seconds > 0 ? seconds : 1;
}

void
monitor_window_clear(struct monitor_window *w)
{
	free(w->v);
	w->v = NULL;
	w->len = w->cap = 0;
}

void
monitor_window_prune(struct monitor_window *w, int64_t now)
{
	size_t drop = 0;

	while (drop < w->len && w->v[drop].t <= now - w->seconds)
		drop++;
	if (drop == 0)
		return;
	memmove(w->v, w->v + drop, (w->len - drop) * sizeof(*w->v));
	w->len -= drop;
}

int
monitor_window_add(struct monitor_window *w, int64_t now, uint64_t key, uint32_t n)
{
	monitor_window_prune(w, now);
	if (w->len > 0 && now < w->v[w->len - 1].t)
		now = w->v[w->len - 1].t;   /* the clock stepped back: keep the order */
	if (w->len > 0 && w->v[w->len - 1].t == now && w->v[w->len - 1].key == key) {
		w->v[w->len - 1].n += n;    /* same second, same key: one sample */
		return 0;
	}
	if (w->len == MONITOR_WINDOW_MAX) {
		memmove(w->v, w->v + 1, (w->len - 1) * sizeof(*w->v));
		w->len--;
	}
	if (w->len == w->cap) {
		size_t cap = w->cap == 0 ? 16 : w->cap * 2;
		struct monitor_sample *v;

		if (cap > MONITOR_WINDOW_MAX)
			cap = MONITOR_WINDOW_MAX;
		if ((v = reallocarray(w->v, cap, sizeof(*v))) == NULL)
			return -1;
		w->v = v;
		w->cap = cap;
	}
	w->v[w->len++] = (struct monitor_sample){ .t = now, .key = key, .n = n };
	return 0;
}

int
monitor_window_touch(struct monitor_window *w, int64_t now, uint64_t key)
{
	for (size_t i = 0; i < w->len; i++) {
		if (w->v[i].key != key)
			continue;
		memmove(w->v + i, w->v + i + 1, (w->len - i - 1) * sizeof(*w->v));
		w->len--;
		break;
	}
	return monitor_window_add(w, now, key, 1);
}

uint64_t
monitor_window_sum(struct monitor_window *w, int64_t now, uint64_t key, bool any_key)
{
	uint64_t sum = 0;

	monitor_window_prune(w, now);
	for (size_t i = 0; i < w->len; i++)
		if (any_key || w->v[i].key == key)
			sum += w->v[i].n;
	return sum;
}

size_t
monitor_window_count(struct monitor_window *w, int64_t now)
{
	monitor_window_prune(w, now);
	return w->len;
}

uint64_t
monitor_key(const char *s)
{
	uint64_t h = 14695981039346656037ULL;
	bool blank = false;

	while (*s == ' ' || *s == '\t')
		s++;
	for (; *s != '\0'; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == ' ' || c == '\t') {
			blank = true;
			continue;
		}
		if (blank) {
			h = (h ^ ' ') * 1099511628211ULL;
			blank = false;
		}
		h = (h ^ (uint64_t)tolower(c)) * 1099511628211ULL;
	}
	return h;
}

/* ---- accounts ---- */

static void
account_windows_init(struct monitor_account *a, const struct config_queue_monitor *cfg)
{
	monitor_window_init(&a->messages, 3600);
	monitor_window_init(&a->rcpts, 3600);
	monitor_window_init(&a->domains, cfg->detectors.distinct_domains.window_seconds);
	monitor_window_init(&a->subjects, cfg->detectors.same_subject.window_seconds);
	monitor_window_init(&a->results, cfg->detectors.deferral_ratio.window_seconds);
	monitor_window_init(&a->mismatches, cfg->detectors.from_mismatch.window_seconds);
}

struct monitor_account *
monitor_account_new(const char *name, const struct config_queue_monitor *cfg)
{
	struct monitor_account *a = calloc(1, sizeof(*a));

	if (a == NULL)
		return NULL;
	if ((a->name = strdup(name)) == NULL) {
		free(a);
		return NULL;
	}
	account_windows_init(a, cfg);
	return a;
}

void
monitor_account_reset(struct monitor_account *a)
{
	monitor_window_clear(&a->messages);
	monitor_window_clear(&a->rcpts);
	monitor_window_clear(&a->domains);
	monitor_window_clear(&a->subjects);
	monitor_window_clear(&a->results);
	monitor_window_clear(&a->mismatches);
}

void
monitor_account_free(struct monitor_account **ap)
{
	struct monitor_account *a = *ap;

	if (a == NULL)
		return;
	*ap = NULL;
	monitor_account_reset(a);
	for (size_t i = 0; i < a->nsenders; i++)
		free(a->senders[i]);
	free(a->name);
	free(a);
}

bool
monitor_account_has_sender(const struct monitor_account *a, const char *sender)
{
	if (strcasecmp(a->name, sender) == 0)
		return true;
	for (size_t i = 0; i < a->nsenders; i++)
		if (strcasecmp(a->senders[i], sender) == 0)
			return true;
	return false;
}

void
monitor_account_add_sender(struct monitor_account *a, const char *sender)
{
	char *copy;

	if (sender[0] == '\0' || monitor_account_has_sender(a, sender) ||
	    (copy = strdup(sender)) == NULL)
		return;
	if (a->nsenders == MONITOR_SENDERS_MAX) {
		free(a->senders[0]);
		memmove(a->senders, a->senders + 1, (MONITOR_SENDERS_MAX - 1) * sizeof(char *));
		a->nsenders--;
	}
	a->senders[a->nsenders++] = copy;
}

/* ---- rate limits ---- */

const char *
monitor_rate_name(enum monitor_rate r)
{
	switch (r) {
	case MONITOR_RATE_MESSAGES:
		return "messages";
	case MONITOR_RATE_RECIPIENTS:
		return "recipients";
	default:
		return "ok";
	}
}

enum monitor_rate
monitor_account_rate_check(struct monitor_account *a, int64_t now, int messages_limit,
    int rcpts_limit, uint32_t messages, uint32_t rcpts)
{
	if (messages > 0 &&
	    monitor_window_sum(&a->messages, now, 0, true) + messages > (uint64_t)messages_limit)
		return MONITOR_RATE_MESSAGES;
	if (rcpts > 0 &&
	    monitor_window_sum(&a->rcpts, now, 0, true) + rcpts > (uint64_t)rcpts_limit)
		return MONITOR_RATE_RECIPIENTS;
	return MONITOR_RATE_OK;
}

void
monitor_account_rate_record(struct monitor_account *a, int64_t now, uint32_t messages,
    uint32_t rcpts)
{
	/* No memory: the sample is lost, and the limit is a little late. */
	if (messages > 0)
		(void)monitor_window_add(&a->messages, now, 0, messages);
	if (rcpts > 0)
		(void)monitor_window_add(&a->rcpts, now, 0, rcpts);
}

/* ---- detectors ---- */

/*
 * Copy s into out, printable ASCII only, blanks collapsed (evidence ends up
 * in logs and JSON, and reads as the detector compared it).
 */
static void
evidence_text(char *out, size_t outlen, const char *s)
{
	size_t o = 0;

	for (; s != NULL && *s != '\0' && o + 1 < outlen; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == ' ' || c == '\t') {
			if (o > 0 && out[o - 1] != ' ')
				out[o++] = ' ';
			continue;
		}
		out[o++] = c > 0x20 && c < 0x7f && c != '"' && c != '\\' ? (char)c : '?';
	}
	while (o > 0 && out[o - 1] == ' ')
		o--;
	out[o] = '\0';
}

int
monitor_account_message(struct monitor_account *a, const struct config_queue_monitor *cfg,
    int64_t now, const struct monitor_message *msg, struct monitor_finding *f)
{
	const struct config_detector *fm = &cfg->detectors.from_mismatch;
	const struct config_detector *dd = &cfg->detectors.distinct_domains;
	const struct config_detector *ss = &cfg->detectors.same_subject;
	char text[200];

	if (msg->from != NULL)
		(void)monitor_window_add(&a->mismatches, now, 0, 1);
	for (size_t i = 0; i < msg->ndomains; i++)
		(void)monitor_window_touch(&a->domains, now, monitor_key(msg->domains[i]));
	if (msg->nrcpts > 0)
		(void)monitor_window_add(&a->subjects, now,
		    monitor_key(msg->subject != NULL ? msg->subject : ""), (uint32_t)msg->nrcpts);

	if (fm->enabled && msg->from != NULL) {
		uint64_t n = monitor_window_sum(&a->mismatches, now, 0, true);

		if (n >= (uint64_t)fm->threshold) {
			evidence_text(text, sizeof(text), msg->from);
			f->detector = "from_mismatch";
			snprintf(f->evidence, sizeof(f->evidence),
			    "%llu messages in %d s with a From: that is not the account's (last: %s)",
			    (unsigned long long)n, fm->window_seconds, text);
			return 1;
		}
	}
	if (dd->enabled && msg->ndomains > 0) {
		size_t n = monitor_window_count(&a->domains, now);

		if (n > (size_t)dd->threshold) {
			f->detector = "distinct_domains";
			snprintf(f->evidence, sizeof(f->evidence),
			    "%zu distinct recipient domains in %d s (threshold %d)", n,
			    dd->window_seconds, dd->threshold);
			return 1;
		}
	}
	if (ss->enabled && msg->nrcpts > 0) {
		uint64_t n = monitor_window_sum(&a->subjects, now,
		    monitor_key(msg->subject != NULL ? msg->subject : ""), false);

		if (n > (uint64_t)ss->threshold) {
			evidence_text(text, sizeof(text), msg->subject != NULL ? msg->subject : "");
			f->detector = "same_subject";
			snprintf(f->evidence, sizeof(f->evidence),
			    "%llu recipients in %d s for the subject \"%.120s\" (threshold %d)",
			    (unsigned long long)n, ss->window_seconds, text, ss->threshold);
			return 1;
		}
	}
	return 0;
}

int
monitor_account_results(struct monitor_account *a, const struct config_queue_monitor *cfg,
    int64_t now, size_t delivered, size_t deferred, size_t failed, struct monitor_finding *f)
{
	const struct config_detector *dr = &cfg->detectors.deferral_ratio;
	uint64_t good, bad;

	if (delivered > 0)
		(void)monitor_window_add(&a->results, now, 0, (uint32_t)delivered);
	if (deferred + failed > 0)
		(void)monitor_window_add(&a->results, now, 1, (uint32_t)(deferred + failed));
	if (!dr->enabled || deferred + failed == 0)
		return 0;
	good = monitor_window_sum(&a->results, now, 0, false);
	bad = monitor_window_sum(&a->results, now, 1, false);
	if (good + bad < (uint64_t)dr->min_samples || bad * 100 < (uint64_t)dr->threshold * (good + bad))
		return 0;
	f->detector = "deferral_ratio";
	snprintf(f->evidence, sizeof(f->evidence),
	    "%llu of %llu remote recipients deferred or bounced in %d s (%llu%%, threshold %d%%)",
	    (unsigned long long)bad, (unsigned long long)(good + bad), dr->window_seconds,
	    (unsigned long long)(bad * 100 / (good + bad)), dr->threshold);
	return 1;
}
