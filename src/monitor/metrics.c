/*
 * metrics.c: the process's metrics registry and its Prometheus text rendering
 * (exposition format 0.0.4). Trusts its callers for names and labels but
 * checks them anyway: a malformed name or label set is refused (logged once),
 * never rendered, so one bad call cannot break a scrape. One mutex guards it;
 * a series is found by a hash lookup of (name, labels) in an open-addressing
 * table and allocates only the first time it is used.
 */
#include "monitor/metrics.h"

#include <math.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"

#define METRICS_MAX_SERIES 4096     /* a cardinality guard: labels are fixed tokens */
#define METRICS_LABELS_MAX 256      /* bytes of one preformatted label set */
#define METRICS_NAME_MAX 128
#define METRICS_REFUSED_LOGGED 32   /* distinct refusals logged before going quiet */

enum metrics_kind {
	METRICS_UNTYPED = 0,
	METRICS_COUNTER,
	METRICS_GAUGE,
};

static const char *const kind_names[] = {
	[METRICS_UNTYPED] = "untyped",
	[METRICS_COUNTER] = "counter",
	[METRICS_GAUGE] = "gauge",
};

struct metrics_series {
	char *name;                  /* NULL: empty slot; name\0labels\0 in one block */
	const char *labels;          /* "" when none; points into the name block */
	uint64_t hash;
	double value;
	metrics_gauge_fn *fn;        /* a gauge computed at render time */
	void *ctx;
};

struct metrics_desc {
	char *name;
	char *help;
	enum metrics_kind kind;
};

static pthread_mutex_t metrics_lock = PTHREAD_MUTEX_INITIALIZER;
static struct metrics_series *series;   /* cap slots, power of two; no tombstones */
static size_t series_cap, series_count;
static struct metrics_desc *descs;
static size_t ndescs, descs_cap;
static uint64_t refused[METRICS_REFUSED_LOGGED];
static size_t nrefused;
static bool refused_quiet;

static uint64_t
key_hash(const char *name, const char *labels)
{
	uint64_t h = 1469598103934665603ULL;   /* FNV-1a over name \0 labels */

	for (const unsigned char *p = (const unsigned char *)name; *p != '\0'; p++)
		h = (h ^ *p) * 1099511628211ULL;
	h = (h ^ 0xff) * 1099511628211ULL;
	for (const unsigned char *p = (const unsigned char *)labels; *p != '\0'; p++)
		h = (h ^ *p) * 1099511628211ULL;
	return h;
}

/* The slot holding (name, labels), or the empty slot where it would go. */
static struct metrics_series *
series_slot(struct metrics_series *tab, size_t cap, const char *name,
    const char *labels, uint64_t hash)
{
	size_t mask = cap - 1, i = (size_t)hash & mask;

	for (;; i = (i + 1) & mask) {
		struct metrics_series *s = &tab[i];

		if (s->name == NULL)
			return s;
		if (s->hash == hash && strcmp(s->name, name) == 0 &&
		    strcmp(s->labels, labels) == 0)
			return s;
	}
}

static int
series_grow(void)
{
	size_t cap = series_cap == 0 ? 64 : series_cap * 2;
	struct metrics_series *tab = calloc(cap, sizeof(*tab));

	if (tab == NULL)
		return -1;
	for (size_t i = 0; i < series_cap; i++) {
		struct metrics_series *s = &series[i];

		if (s->name != NULL)
			*series_slot(tab, cap, s->name, s->labels, s->hash) = *s;
	}
	free(series);
	series = tab;
	series_cap = cap;
	return 0;
}

/* [a-zA-Z_:][a-zA-Z0-9_:]* */
static bool
name_valid(const char *name)
{
	size_t len = strlen(name);

	if (len == 0 || len > METRICS_NAME_MAX)
		return false;
	for (size_t i = 0; i < len; i++) {
		char c = name[i];
		bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    c == '_' || c == ':' || (i > 0 && c >= '0' && c <= '9');

		if (!ok)
			return false;
	}
	return true;
}

/*
 * A preformatted label set: name="value" pairs joined by ',', names
 * [a-zA-Z_][a-zA-Z0-9_]* not starting with "__" nor repeated, values of
 * printable ASCII where '\\', '"' and newline appear only escaped (\\ \" \n).
 */
static bool
labels_valid(const char *labels)
{
	const char *names[16];
	size_t nnames = 0, lens[16];
	const char *p = labels;

	if (strlen(labels) > METRICS_LABELS_MAX)
		return false;
	while (*p != '\0') {
		const char *start = p;
		size_t len;

		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || *p == '_'))
			return false;
		while ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		    (*p >= '0' && *p <= '9') || *p == '_')
			p++;
		len = (size_t)(p - start);
		if (len >= 2 && start[0] == '_' && start[1] == '_')
			return false;
		for (size_t i = 0; i < nnames; i++)
			if (lens[i] == len && memcmp(names[i], start, len) == 0)
				return false;
		if (nnames == sizeof(names) / sizeof(names[0]))
			return false;
		names[nnames] = start;
		lens[nnames++] = len;
		if (*p++ != '=' || *p++ != '"')
			return false;
		for (;;) {
			unsigned char c = (unsigned char)*p;

			if (c == '"')
				break;
			if (c == '\\') {
				if (p[1] != '\\' && p[1] != '"' && p[1] != 'n')
					return false;
				p += 2;
				continue;
			}
			if (c < 0x20 || c > 0x7e)   /* includes the NUL of an unclosed value */
				return false;
			p++;
		}
		p++;   /* the closing quote */
		if (*p == ',') {
			p++;
			if (*p == '\0')     /* no trailing comma: one spelling per series */
				return false;
		} else if (*p != '\0') {
			return false;
		}
	}
	return true;
}

/* Log a refusal the first time this (name, labels) is refused. Lock held. */
static void
refuse(const char *what, const char *name, const char *labels)
{
	char ename[LOG_ESCAPE_MAX], elabels[LOG_ESCAPE_MAX];
	uint64_t h = key_hash(name, labels);

	for (size_t i = 0; i < nrefused; i++)
		if (refused[i] == h)
			return;
	if (nrefused == METRICS_REFUSED_LOGGED) {
		if (!refused_quiet)
			log_warnx("event=metrics.refused reason=too_many_refusals "
			    "note=\"further refusals are not logged\"");
		refused_quiet = true;
		return;
	}
	refused[nrefused++] = h;
	log_warnx("event=metrics.refused reason=%s name=%s labels=%s", what,
	    log_escape(ename, sizeof(ename), name, strlen(name)),
	    log_escape(elabels, sizeof(elabels), labels, strlen(labels)));
}

static struct metrics_desc *
desc_find(const char *name)
{
	for (size_t i = 0; i < ndescs; i++)
		if (strcmp(descs[i].name, name) == 0)
			return &descs[i];
	return NULL;
}

/*
 * The series (name, labels), created on first use. NULL if refused (bad name
 * or labels, too many series, out of memory). Lock held.
 */
static struct metrics_series *
series_get(const char *name, const char *labels)
{
	struct metrics_series *s;
	uint64_t hash;
	size_t nlen, llen;
	char *block;

	if (name == NULL)
		return NULL;
	if (labels == NULL)
		labels = "";
	hash = key_hash(name, labels);
	if (series_cap != 0) {
		s = series_slot(series, series_cap, name, labels, hash);
		if (s->name != NULL)
			return s;
	}
	if (!name_valid(name)) {
		refuse("bad_name", name, labels);
		return NULL;
	}
	if (!labels_valid(labels)) {
		refuse("bad_labels", name, labels);
		return NULL;
	}
	if (series_count >= METRICS_MAX_SERIES) {
		refuse("too_many_series", name, labels);
		return NULL;
	}
	if ((series_count + 1) * 4 > series_cap * 3 && series_grow() < 0) {
		refuse("out_of_memory", name, labels);
		return NULL;
	}
	nlen = strlen(name);
	llen = strlen(labels);
	if ((block = malloc(nlen + 1 + llen + 1)) == NULL) {
		refuse("out_of_memory", name, labels);
		return NULL;
	}
	memcpy(block, name, nlen + 1);
	memcpy(block + nlen + 1, labels, llen + 1);
	s = series_slot(series, series_cap, name, labels, hash);
	*s = (struct metrics_series){
		.name = block, .labels = block + nlen + 1, .hash = hash,
	};
	series_count++;
	return s;
}

void
metrics_add(const char *name, const char *labels, double delta)
{
	struct metrics_series *s;

	pthread_mutex_lock(&metrics_lock);
	if ((s = series_get(name, labels)) != NULL) {
		const struct metrics_desc *d;

		if (delta < 0 && (d = desc_find(name)) != NULL && d->kind == METRICS_COUNTER)
			refuse("counter_decrease", name, s->labels);
		else
			s->value += delta;
	}
	pthread_mutex_unlock(&metrics_lock);
}

void
metrics_set(const char *name, const char *labels, double value)
{
	struct metrics_series *s;

	pthread_mutex_lock(&metrics_lock);
	if ((s = series_get(name, labels)) != NULL)
		s->value = value;
	pthread_mutex_unlock(&metrics_lock);
}

/* Describe name under the lock; copies the strings. 0 ok, -1 refused. */
static int
describe_locked(const char *name, enum metrics_kind kind, const char *help)
{
	struct metrics_desc *d;
	char *copy;

	if (name == NULL || !name_valid(name)) {
		refuse("bad_name", name != NULL ? name : "(null)", "");
		return -1;
	}
	if (kind == METRICS_COUNTER &&
	    (strlen(name) < 6 || strcmp(name + strlen(name) - 6, "_total") != 0)) {
		refuse("counter_without_total", name, "");
		return -1;
	}
	if ((copy = strdup(help != NULL ? help : "")) == NULL)
		return -1;
	if ((d = desc_find(name)) != NULL) {
		free(d->help);
		d->help = copy;
		d->kind = kind;
		return 0;
	}
	if (ndescs == descs_cap) {
		size_t cap = descs_cap == 0 ? 32 : descs_cap * 2;
		struct metrics_desc *v = realloc(descs, cap * sizeof(*v));

		if (v == NULL)
			goto fail;
		descs = v;
		descs_cap = cap;
	}
	d = &descs[ndescs];
	if ((d->name = strdup(name)) == NULL)
		goto fail;
	d->help = copy;
	d->kind = kind;
	ndescs++;
	return 0;
fail:
	free(copy);
	refuse("out_of_memory", name, "");
	return -1;
}

void
metrics_describe(const char *name, const char *type, const char *help)
{
	enum metrics_kind kind;

	if (type != NULL && strcmp(type, "counter") == 0)
		kind = METRICS_COUNTER;
	else if (type != NULL && strcmp(type, "gauge") == 0)
		kind = METRICS_GAUGE;
	else if (type != NULL && strcmp(type, "untyped") == 0)
		kind = METRICS_UNTYPED;
	else {
		pthread_mutex_lock(&metrics_lock);
		refuse("bad_type", name != NULL ? name : "(null)", type != NULL ? type : "");
		pthread_mutex_unlock(&metrics_lock);
		return;
	}
	pthread_mutex_lock(&metrics_lock);
	describe_locked(name, kind, help);
	pthread_mutex_unlock(&metrics_lock);
}

void
metrics_register_gauge(const char *name, const char *help, metrics_gauge_fn *fn, void *ctx)
{
	struct metrics_series *s;

	pthread_mutex_lock(&metrics_lock);
	if (describe_locked(name, METRICS_GAUGE, help) == 0 &&
	    (s = series_get(name, NULL)) != NULL) {
		s->fn = fn;
		s->ctx = ctx;
	}
	pthread_mutex_unlock(&metrics_lock);
}

double
metrics_get(const char *name, const char *labels)
{
	struct metrics_series *s = NULL;
	metrics_gauge_fn *fn = NULL;
	void *ctx = NULL;
	double v = 0;

	if (labels == NULL)
		labels = "";
	pthread_mutex_lock(&metrics_lock);
	if (name != NULL && series_cap != 0) {
		s = series_slot(series, series_cap, name, labels, key_hash(name, labels));
		if (s->name != NULL) {
			v = s->value;
			fn = s->fn;
			ctx = s->ctx;
		}
	}
	pthread_mutex_unlock(&metrics_lock);
	/* Outside the lock: a callback may itself use the registry. */
	return fn != NULL ? fn(ctx) : v;
}

void
metrics_reset(void)
{
	pthread_mutex_lock(&metrics_lock);
	for (size_t i = 0; i < series_cap; i++)
		free(series[i].name);
	free(series);
	series = NULL;
	series_cap = series_count = 0;
	for (size_t i = 0; i < ndescs; i++) {
		free(descs[i].name);
		free(descs[i].help);
	}
	free(descs);
	descs = NULL;
	ndescs = descs_cap = 0;
	nrefused = 0;
	refused_quiet = false;
	pthread_mutex_unlock(&metrics_lock);
}

/* ---- rendering ---- */

/* One sample or one described name, copied out of the registry. */
struct render_item {
	char *name;
	char *labels;        /* NULL: a description without samples */
	char *help;          /* descriptions only */
	enum metrics_kind kind;
	double value;
	metrics_gauge_fn *fn;
	void *ctx;
};

struct strbuf {
	char *p;
	size_t len, cap;
	bool failed;
};

static void
sb_append(struct strbuf *sb, const char *s, size_t n)
{
	if (sb->failed)
		return;
	if (sb->len + n + 1 > sb->cap) {
		size_t cap = sb->cap == 0 ? 4096 : sb->cap;
		char *p;

		while (sb->len + n + 1 > cap)
			cap *= 2;
		if ((p = realloc(sb->p, cap)) == NULL) {
			sb->failed = true;
			return;
		}
		sb->p = p;
		sb->cap = cap;
	}
	memcpy(sb->p + sb->len, s, n);
	sb->len += n;
	sb->p[sb->len] = '\0';
}

static void
sb_puts(struct strbuf *sb, const char *s)
{
	sb_append(sb, s, strlen(s));
}

/* HELP text: backslash and newline escaped (exposition format 0.0.4). */
static void
sb_help(struct strbuf *sb, const char *s)
{
	for (; *s != '\0'; s++) {
		if (*s == '\\')
			sb_puts(sb, "\\\\");
		else if (*s == '\n')
			sb_puts(sb, "\\n");
		else
			sb_append(sb, s, 1);
	}
}

/*
 * A sample value: integers exactly and without exponent or decimals, other
 * finite values with %.17g (round-trips a double), NaN and +Inf/-Inf as the
 * format spells them.
 */
static void
format_value(double v, char *buf, size_t buflen)
{
	if (isnan(v))
		snprintf(buf, buflen, "NaN");
	else if (isinf(v))
		snprintf(buf, buflen, v > 0 ? "+Inf" : "-Inf");
	else if (v == 0)
		snprintf(buf, buflen, "0");   /* also -0 */
	else if (v > -1e18 && v < 1e18 && v == (double)(long long)v)
		snprintf(buf, buflen, "%lld", (long long)v);
	else
		snprintf(buf, buflen, "%.17g", v);
}

static int
item_cmp(const void *a, const void *b)
{
	const struct render_item *x = a, *y = b;
	int c = strcmp(x->name, y->name);

	if (c != 0)
		return c;
	/* The description sorts first within its name. */
	if (x->labels == NULL || y->labels == NULL)
		return (x->labels != NULL) - (y->labels != NULL);
	return strcmp(x->labels, y->labels);
}

static void
items_free(struct render_item *items, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(items[i].name);
		free(items[i].labels);
		free(items[i].help);
	}
	free(items);
}

/* Copy the registry out under the lock, so callbacks run without it. */
static struct render_item *
snapshot(size_t *n_r)
{
	struct render_item *items;
	size_t n = 0;
	bool failed = false;

	pthread_mutex_lock(&metrics_lock);
	items = calloc(series_count + ndescs + 1, sizeof(*items));
	if (items == NULL) {
		pthread_mutex_unlock(&metrics_lock);
		return NULL;
	}
	for (size_t i = 0; i < ndescs; i++) {
		struct render_item *it = &items[n++];

		it->name = strdup(descs[i].name);
		it->help = strdup(descs[i].help);
		it->kind = descs[i].kind;
		failed |= it->name == NULL || it->help == NULL;
	}
	for (size_t i = 0; i < series_cap; i++) {
		const struct metrics_series *s = &series[i];
		struct render_item *it;

		if (s->name == NULL)
			continue;
		it = &items[n++];
		it->name = strdup(s->name);
		it->labels = strdup(s->labels);
		it->value = s->value;
		it->fn = s->fn;
		it->ctx = s->ctx;
		failed |= it->name == NULL || it->labels == NULL;
	}
	pthread_mutex_unlock(&metrics_lock);
	if (failed) {
		items_free(items, n);
		return NULL;
	}
	*n_r = n;
	return items;
}

char *
metrics_render(size_t *len_r)
{
	struct strbuf sb = { 0 };
	struct render_item *items;
	size_t n = 0;

	if ((items = snapshot(&n)) == NULL) {
		log_warnx("event=metrics.render error=out_of_memory");
		return NULL;
	}
	for (size_t i = 0; i < n; i++)
		if (items[i].fn != NULL)
			items[i].value = items[i].fn(items[i].ctx);
	qsort(items, n, sizeof(*items), item_cmp);
	sb_append(&sb, "", 0);   /* an empty registry is "", not NULL */
	for (size_t i = 0; i < n; i++) {
		const struct render_item *it = &items[i];
		char value[64];

		if (i == 0 || strcmp(items[i - 1].name, it->name) != 0) {
			/* The first item of a name: its description, if any, sorted first. */
			if (it->labels == NULL && it->help[0] != '\0') {
				sb_puts(&sb, "# HELP ");
				sb_puts(&sb, it->name);
				sb_puts(&sb, " ");
				sb_help(&sb, it->help);
				sb_puts(&sb, "\n");
			}
			sb_puts(&sb, "# TYPE ");
			sb_puts(&sb, it->name);
			sb_puts(&sb, " ");
			sb_puts(&sb, kind_names[it->labels == NULL ? it->kind : METRICS_UNTYPED]);
			sb_puts(&sb, "\n");
		}
		if (it->labels == NULL)
			continue;
		sb_puts(&sb, it->name);
		if (it->labels[0] != '\0') {
			sb_puts(&sb, "{");
			sb_puts(&sb, it->labels);
			sb_puts(&sb, "}");
		}
		format_value(it->value, value, sizeof(value));
		sb_puts(&sb, " ");
		sb_puts(&sb, value);
		sb_puts(&sb, "\n");
	}
	items_free(items, n);
	if (sb.failed) {
		free(sb.p);
		log_warnx("event=metrics.render error=out_of_memory");
		return NULL;
	}
	if (len_r != NULL)
		*len_r = sb.len;
	return sb.p;
}

/* ---- the metrics bulwark exposes (docs/metrics.md) ---- */

static const struct {
	const char *name, *type, *help;
	bool unlabelled;   /* one series, shown as 0 before anything happens */
} defaults[] = {
	{ "bulwark_auth_failures_total", "counter",
	  "Failed authentication attempts, by protocol and reason.", false },
	{ "bulwark_auth_success_total", "counter",
	  "Successful authentications, by protocol.", false },
	{ "bulwark_lockouts_total", "counter",
	  "Accounts locked after too many failed logins.", true },
	{ "bulwark_lockouts_active", "gauge",
	  "Accounts locked now.", true },
	{ "bulwark_confirmations_requested_total", "counter",
	  "Confirmation links issued (all time, from the database).", true },
	{ "bulwark_confirmations_completed_total", "counter",
	  "Confirmation links used to confirm an account (all time, from the database).", true },
	{ "bulwark_bans_total", "counter",
	  "Client networks banned, by reason.", false },
	{ "bulwark_unbans_total", "counter",
	  "Bans lifted, by expiry or by hand.", true },
	{ "bulwark_bans_active", "gauge",
	  "Client networks banned now.", true },
	{ "bulwark_connections_refused_total", "counter",
	  "Connections refused at accept, by reason.", false },
	{ "bulwark_ban_filter_networks", "gauge",
	  "Banned networks whose SYNs the kernel drops before accept (not counted in"
	  " bulwark_connections_refused_total).", true },
	{ "bulwark_relay_denied_total", "counter",
	  "Recipients refused because relaying was not allowed.", true },
	{ "bulwark_messages_accepted_total", "counter",
	  "Messages accepted into the queue.", true },
	{ "bulwark_messages_rejected_total", "counter",
	  "Messages rejected, by reason.", false },
	{ "bulwark_queue_messages", "gauge",
	  "Messages in the queue now.", true },
	{ "bulwark_smtp_sessions", "gauge",
	  "SMTP sessions open now.", true },
	{ "bulwark_imap_sessions", "gauge",
	  "IMAP sessions open now.", true },
	{ "bulwark_lockdown", "gauge",
	  "1 while the admin's emergency stop (bulwarkctl lockdown on) holds all outbound mail.", true },
	{ "bulwark_queue_deferred", "gauge",
	  "Messages in the queue waiting for a retry after a failed attempt.", true },
	{ "bulwark_monitor_alerts_total", "counter",
	  "Alerts raised by the queue monitor, by kind (queue, detector, containment).", false },
	{ "bulwark_monitor_detections_total", "counter",
	  "Suspicious sending found by the queue monitor, by detector.", false },
	{ "bulwark_containments_total", "counter",
	  "Accounts contained (mail held, sending suspended), by detector.", false },
	{ "bulwark_accounts_contained", "gauge",
	  "Accounts contained now and not resumed yet.", true },
	{ "bulwark_rate_limited_total", "counter",
	  "Recipients or messages refused with 451 4.7.1 by an account's hourly limit, by limit.", false },
	{ "bulwark_alert_commands_total", "counter",
	  "Runs of queue_monitor.alert_command, by result (ok, failed, timeout, skipped).", false },
};

void
metrics_describe_defaults(void)
{
	for (size_t i = 0; i < sizeof(defaults) / sizeof(defaults[0]); i++) {
		metrics_describe(defaults[i].name, defaults[i].type, defaults[i].help);
		if (defaults[i].unlabelled)
			metrics_add(defaults[i].name, NULL, 0);
	}
}
