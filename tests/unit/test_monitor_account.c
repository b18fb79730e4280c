/*
 * test_monitor_account.c: tests for src/monitor/monitor_account.c (the
 * sliding windows, the rate limits, the detectors and their thresholds) and
 * src/monitor/monitor_header.c (From and Subject out of a header block).
 * Time is passed in, so every window edge is exact. Detector cases are
 * tables: a sequence of messages or results, and which detector fires at
 * which step (the reason asserted, not only the verdict).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/config.h"
#include "monitor/monitor_account.h"

#define N_ELEMENTS(a) (sizeof(a) / sizeof((a)[0]))
#define T0 1800000000

/* The default thresholds of config.c, with every detector on. */
static struct config_queue_monitor
defaults(void)
{
	struct config *cfg = NULL;
	char *error = NULL;
	struct config_queue_monitor qm;

	assert_int_equal(config_load_string("test", "", 0, &cfg, &error), 0);
	qm = cfg->queue_monitor;
	qm.alert_command = NULL;
	config_free(&cfg);
	return qm;
}

/* ---- windows ---- */

static void
test_window_sum_and_expiry(void **state)
{
	struct monitor_window w;

	(void)state;
	monitor_window_init(&w, 10);
	assert_int_equal(monitor_window_add(&w, T0, 0, 2), 0);
	assert_int_equal(monitor_window_add(&w, T0, 0, 3), 0);   /* merged: same second */
	assert_int_equal(w.len, 1);
	assert_int_equal(monitor_window_add(&w, T0 + 5, 7, 1), 0);
	assert_int_equal(monitor_window_sum(&w, T0 + 5, 0, true), 6);
	assert_int_equal(monitor_window_sum(&w, T0 + 5, 7, false), 1);
	assert_int_equal(monitor_window_sum(&w, T0 + 5, 0, false), 5);
	/* a sample at T0 is in the window until T0 + 9, gone at T0 + 10 */
	assert_int_equal(monitor_window_sum(&w, T0 + 9, 0, true), 6);
	assert_int_equal(monitor_window_sum(&w, T0 + 10, 0, true), 1);
	assert_int_equal(monitor_window_count(&w, T0 + 15), 0);
	/* the clock steps back: samples stay ordered */
	assert_int_equal(monitor_window_add(&w, T0 + 20, 0, 1), 0);
	assert_int_equal(monitor_window_add(&w, T0 + 18, 1, 1), 0);
	assert_true(w.v[1].t >= w.v[0].t);
	monitor_window_clear(&w);
	assert_null(w.v);
}

static void
test_window_touch_counts_distinct(void **state)
{
	struct monitor_window w;

	(void)state;
	monitor_window_init(&w, 60);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(monitor_window_touch(&w, T0 + i, monitor_key("a.example")), 0);
		assert_int_equal(monitor_window_touch(&w, T0 + i, monitor_key("B.example")), 0);
	}
	assert_int_equal(monitor_window_count(&w, T0 + 3), 2);
	assert_int_equal(monitor_window_touch(&w, T0 + 30, monitor_key("c.example")), 0);
	/* a. and b. were last seen at T0 + 2: gone at T0 + 62 */
	assert_int_equal(monitor_window_count(&w, T0 + 61), 3);
	assert_int_equal(monitor_window_count(&w, T0 + 62), 1);
	monitor_window_clear(&w);
}

static void
test_window_is_bounded(void **state)
{
	struct monitor_window w;

	(void)state;
	monitor_window_init(&w, 86400);
	for (int i = 0; i < MONITOR_WINDOW_MAX + 100; i++)
		assert_int_equal(monitor_window_add(&w, T0 + i, 0, 1), 0);
	assert_int_equal(w.len, MONITOR_WINDOW_MAX);
	assert_int_equal(w.v[0].t, T0 + 100);   /* the oldest went first */
	monitor_window_clear(&w);
}

static void
test_key_normalises(void **state)
{
	(void)state;
	assert_true(monitor_key("You have WON") == monitor_key("  you  HAVE\twon"));
	assert_true(monitor_key("You have WON") != monitor_key("You have WON!"));
	assert_true(monitor_key("ab") != monitor_key("a b"));
	assert_true(monitor_key("") == monitor_key("   "));
}

/* ---- accounts, senders, rate limits ---- */

static void
test_senders(void **state)
{
	struct config_queue_monitor qm = defaults();
	struct monitor_account *a = monitor_account_new("alice@example.test", &qm);
	char s[32];

	(void)state;
	assert_true(monitor_account_has_sender(a, "ALICE@example.test"));
	assert_false(monitor_account_has_sender(a, "sales@example.test"));
	monitor_account_add_sender(a, "sales@example.test");
	monitor_account_add_sender(a, "Sales@example.test");   /* known: once */
	monitor_account_add_sender(a, "");                       /* <>: never */
	assert_int_equal(a->nsenders, 1);
	for (int i = 0; i < MONITOR_SENDERS_MAX + 2; i++) {
		snprintf(s, sizeof(s), "a%d@example.test", i);
		monitor_account_add_sender(a, s);
	}
	assert_int_equal(a->nsenders, MONITOR_SENDERS_MAX);
	assert_false(monitor_account_has_sender(a, "sales@example.test"));   /* the oldest went */
	assert_true(monitor_account_has_sender(a, s));
	monitor_account_free(&a);
	assert_null(a);
}

static void
test_rate_limits(void **state)
{
	struct config_queue_monitor qm = defaults();
	struct monitor_account *a = monitor_account_new("alice@example.test", &qm);

	(void)state;
	/* 3 messages, 10 recipients an hour */
	assert_int_equal(monitor_account_rate_check(a, T0, 3, 10, 1, 4), MONITOR_RATE_OK);
	monitor_account_rate_record(a, T0, 1, 4);
	monitor_account_rate_record(a, T0 + 1, 1, 4);
	assert_int_equal(monitor_account_rate_check(a, T0 + 2, 3, 10, 1, 2), MONITOR_RATE_OK);
	assert_int_equal(monitor_account_rate_check(a, T0 + 2, 3, 10, 1, 3),
	    MONITOR_RATE_RECIPIENTS);
	monitor_account_rate_record(a, T0 + 2, 1, 1);
	assert_int_equal(monitor_account_rate_check(a, T0 + 3, 3, 10, 1, 1), MONITOR_RATE_MESSAGES);
	/* checking a recipient alone does not ask for a message */
	assert_int_equal(monitor_account_rate_check(a, T0 + 3, 3, 10, 0, 1), MONITOR_RATE_OK);
	/* an hour after the first: one message free again */
	assert_int_equal(monitor_account_rate_check(a, T0 + 3600, 3, 10, 1, 1), MONITOR_RATE_OK);
	assert_string_equal(monitor_rate_name(MONITOR_RATE_MESSAGES), "messages");
	assert_string_equal(monitor_rate_name(MONITOR_RATE_RECIPIENTS), "recipients");
	/* a reset (the admin resumed the account) forgets it all */
	monitor_account_reset(a);
	assert_int_equal(monitor_account_rate_check(a, T0 + 4, 3, 10, 1, 10), MONITOR_RATE_OK);
	monitor_account_free(&a);
}

/* ---- detectors: tables ---- */

struct step {
	int dt;                      /* seconds after T0 */
	const char *subject;
	const char *from;            /* a mismatching From, or NULL */
	const char *domains[6];
	size_t nrcpts;
	int results[3];              /* delivered, deferred, failed; used when results_step */
	bool results_step;
};

struct detector_case {
	const char *name;
	void (*tune)(struct config_queue_monitor *qm);
	struct step steps[8];
	int fires_at;                /* index of the step that fires, -1 none */
	const char *detector;
	const char *evidence;        /* a substring */
};

static void tune_mismatch2(struct config_queue_monitor *qm)
{
	qm->detectors.from_mismatch.threshold = 2;
	qm->detectors.from_mismatch.window_seconds = 100;
}
static void tune_domains3(struct config_queue_monitor *qm)
{
	qm->detectors.distinct_domains.threshold = 3;
	qm->detectors.distinct_domains.window_seconds = 100;
}
static void tune_subject5(struct config_queue_monitor *qm)
{
	qm->detectors.same_subject.threshold = 5;
	qm->detectors.same_subject.window_seconds = 100;
}
static void tune_ratio(struct config_queue_monitor *qm)
{
	qm->detectors.deferral_ratio.threshold = 50;
	qm->detectors.deferral_ratio.min_samples = 4;
	qm->detectors.deferral_ratio.window_seconds = 100;
}
static void tune_all_off(struct config_queue_monitor *qm)
{
	tune_mismatch2(qm);
	tune_domains3(qm);
	tune_subject5(qm);
	tune_ratio(qm);
	qm->detectors.from_mismatch.enabled = false;
	qm->detectors.distinct_domains.enabled = false;
	qm->detectors.same_subject.enabled = false;
	qm->detectors.deferral_ratio.enabled = false;
}

static const struct detector_case detector_cases[] = {
	{ .name = "from mismatch at the threshold", .tune = tune_mismatch2,
	  .steps = { { .dt = 0, .subject = "a", .from = "ceo@bank.example", .domains = { "x.example" }, .nrcpts = 1 },
		     { .dt = 1, .subject = "b", .domains = { "x.example" }, .nrcpts = 1 },
		     { .dt = 2, .subject = "c", .from = "it@bank.example", .domains = { "x.example" }, .nrcpts = 1 } },
	  .fires_at = 2, .detector = "from_mismatch", .evidence = "2 messages in 100 s with a From: that is not the account's (last: it@bank.example)" },
	{ .name = "from mismatches spread over more than the window", .tune = tune_mismatch2,
	  .steps = { { .dt = 0, .from = "a@bank.example", .nrcpts = 1, .domains = { "x.example" } },
		     { .dt = 100, .from = "b@bank.example", .nrcpts = 1, .domains = { "x.example" } },
		     { .dt = 200, .from = "c@bank.example", .nrcpts = 1, .domains = { "x.example" } } },
	  .fires_at = -1 },
	{ .name = "distinct domains over the threshold", .tune = tune_domains3,
	  .steps = { { .dt = 0, .subject = "1", .domains = { "a.example", "b.example" }, .nrcpts = 2 },
		     { .dt = 1, .subject = "2", .domains = { "a.example", "c.example" }, .nrcpts = 2 },
		     { .dt = 2, .subject = "3", .domains = { "d.example" }, .nrcpts = 1 } },
	  .fires_at = 2, .detector = "distinct_domains", .evidence = "4 distinct recipient domains in 100 s (threshold 3)" },
	{ .name = "many recipients in one domain are not distinct domains", .tune = tune_domains3,
	  .steps = { { .dt = 0, .subject = "1", .domains = { "a.example" }, .nrcpts = 50 },
		     { .dt = 1, .subject = "2", .domains = { "a.example" }, .nrcpts = 50 } },
	  .fires_at = -1 },
	{ .name = "same subject (normalised) to many recipients", .tune = tune_subject5,
	  .steps = { { .dt = 0, .subject = "You have WON", .domains = { "a.example" }, .nrcpts = 3 },
		     { .dt = 1, .subject = "other", .domains = { "a.example" }, .nrcpts = 5 },
		     { .dt = 2, .subject = "you  have won", .domains = { "a.example" }, .nrcpts = 3 } },
	  .fires_at = 2, .detector = "same_subject", .evidence = "6 recipients in 100 s for the subject \"you have won\" (threshold 5)" },
	{ .name = "same subject, but outside the window", .tune = tune_subject5,
	  .steps = { { .dt = 0, .subject = "x", .domains = { "a.example" }, .nrcpts = 5 },
		     { .dt = 100, .subject = "x", .domains = { "a.example" }, .nrcpts = 5 } },
	  .fires_at = -1 },
	{ .name = "no subject counts as one subject", .tune = tune_subject5,
	  .steps = { { .dt = 0, .domains = { "a.example" }, .nrcpts = 3 },
		     { .dt = 1, .domains = { "b.example" }, .nrcpts = 3 } },
	  .fires_at = 1, .detector = "same_subject" },
	{ .name = "deferral ratio after min_samples", .tune = tune_ratio,
	  .steps = { { .dt = 0, .results_step = true, .results = { 0, 2, 0 } },
		     { .dt = 1, .results_step = true, .results = { 1, 0, 0 } },
		     { .dt = 2, .results_step = true, .results = { 0, 0, 1 } } },
	  .fires_at = 2, .detector = "deferral_ratio", .evidence = "3 of 4 remote recipients deferred or bounced in 100 s (75%, threshold 50%)" },
	{ .name = "deferral ratio under the threshold", .tune = tune_ratio,
	  .steps = { { .dt = 0, .results_step = true, .results = { 3, 0, 0 } },
		     { .dt = 1, .results_step = true, .results = { 0, 2, 0 } },
		     { .dt = 2, .results_step = true, .results = { 2, 0, 0 } } },
	  .fires_at = -1 },
	{ .name = "every detector off", .tune = tune_all_off,
	  .steps = { { .dt = 0, .subject = "s", .from = "x@y.example", .domains = { "a.example", "b.example", "c.example", "d.example", "e.example" }, .nrcpts = 9 },
		     { .dt = 1, .subject = "s", .from = "x@y.example", .domains = { "f.example" }, .nrcpts = 9 },
		     { .dt = 2, .results_step = true, .results = { 0, 9, 9 } } },
	  .fires_at = -1 },
};

static void
test_detectors(void **state)
{
	(void)state;
	for (size_t i = 0; i < N_ELEMENTS(detector_cases); i++) {
		const struct detector_case *c = &detector_cases[i];
		struct config_queue_monitor qm = defaults();
		struct monitor_account *a;
		int fired_at = -1;
		struct monitor_finding f = { 0 };

		c->tune(&qm);
		a = monitor_account_new("alice@example.test", &qm);
		assert_non_null(a);
		for (int k = 0; k < 8 && fired_at < 0; k++) {
			const struct step *s = &c->steps[k];
			int r;

			if (k > 0 && s->dt == 0 && !s->results_step && s->nrcpts == 0)
				break;   /* the end of the steps */
			if (s->results_step) {
				r = monitor_account_results(a, &qm, T0 + s->dt, (size_t)s->results[0],
				    (size_t)s->results[1], (size_t)s->results[2], &f);
			} else {
				struct monitor_message m = { .subject = s->subject, .from = s->from,
				    .domains = s->domains, .nrcpts = s->nrcpts };

				while (m.ndomains < 6 && s->domains[m.ndomains] != NULL)
					m.ndomains++;
				r = monitor_account_message(a, &qm, T0 + s->dt, &m, &f);
			}
			if (r == 1)
				fired_at = k;
		}
		if (fired_at != c->fires_at)
			fail_msg("%s: fired at step %d, expected %d (%s: %s)", c->name, fired_at,
			    c->fires_at, f.detector != NULL ? f.detector : "-", f.evidence);
		if (c->detector != NULL)
			assert_string_equal(f.detector, c->detector);
		if (c->evidence != NULL && strstr(f.evidence, c->evidence) == NULL)
			fail_msg("%s: evidence '%s' lacks '%s'", c->name, f.evidence, c->evidence);
		monitor_account_free(&a);
	}
}

/* ---- headers ---- */

struct field_case {
	const char *block;
	const char *name;
	int found;
	const char *value;
};

static const struct field_case field_cases[] = {
	{ "From: a@b.example\r\nSubject: hello\r\n\r\nbody", "Subject", 1, "hello" },
	{ "FROM: a@b.example\r\nsubject:hello\r\n\r\n", "subject", 1, "hello" },
	{ "Subject: one\r\n two\r\n\tthree\r\nX: y\r\n\r\n", "Subject", 1, "one two three" },
	{ "Subject:   spaced   out   \r\n\r\n", "Subject", 1, "spaced out" },
	{ "Subject: lf only\nFrom: x@y\n\n", "From", 1, "x@y" },
	{ "X: y\r\n\r\nSubject: in the body\r\n", "Subject", 0, "" },
	{ "Subjects: no\r\nSubject-X: no\r\n\r\n", "Subject", 0, "" },
	{ "Subject: cut", "Subject", 1, "cut" },
	{ "Subject:\r\n\r\n", "Subject", 1, "" },
	{ "", "Subject", 0, "" },
	{ "Subject: first\r\nSubject: second\r\n\r\n", "Subject", 1, "first" },
	{ "Subject: a\x01\x7f b\r\n\r\n", "Subject", 1, "a b" },
};

static void
test_header_field(void **state)
{
	char out[64];

	(void)state;
	for (size_t i = 0; i < N_ELEMENTS(field_cases); i++) {
		const struct field_case *c = &field_cases[i];
		int r = monitor_header_field(c->block, strlen(c->block), c->name, out, sizeof(out));

		if (r != c->found || strcmp(out, c->value) != 0)
			fail_msg("case %zu: got %d '%s', expected %d '%s'", i, r, out, c->found, c->value);
	}
	/* a long value is truncated, never overflows */
	{
		char big[300], small[8];

		memset(big, 'x', sizeof(big));
		memcpy(big, "Subject: ", 9);
		assert_int_equal(monitor_header_field(big, sizeof(big), "Subject", small,
		    sizeof(small)), 1);
		assert_string_equal(small, "xxxxxxx");
	}
}

struct addr_case {
	const char *value;
	size_t n;
	const char *a[3];
};

static const struct addr_case addr_cases[] = {
	{ "alice@example.test", 1, { "alice@example.test" } },
	{ "Alice <alice@example.test>", 1, { "alice@example.test" } },
	{ "\"Doe, John\" <j@x.example>, b@y.example", 1, { "j@x.example" } },
	{ "a@x.example, b@y.example", 2, { "a@x.example", "b@y.example" } },
	{ "a@x.example (Alice <not@this.example>)", 1, { "a@x.example" } },
	{ "\"fake@bank.example\" real@x.example", 1, { "real@x.example" } },
	{ "undisclosed-recipients:;", 0, { NULL } },
	{ "<>", 0, { NULL } },
	{ "<broken@x.example", 0, { NULL } },
	{ "b@y.z>)[", 0, { NULL } },
	{ "<a b@x.example>", 0, { NULL } },
	{ "<a@x.example> <b@y.example> <c@z.example> <d@w.example>", 3,
	  { "a@x.example", "b@y.example", "c@z.example" } },
};

static void
test_header_addresses(void **state)
{
	char out[3][320];

	(void)state;
	for (size_t i = 0; i < N_ELEMENTS(addr_cases); i++) {
		const struct addr_case *c = &addr_cases[i];
		size_t n = monitor_header_addresses(c->value, out, 3);

		if (n != c->n)
			fail_msg("case %zu '%s': %zu addresses, expected %zu", i, c->value, n, c->n);
		for (size_t k = 0; k < n; k++)
			assert_string_equal(out[k], c->a[k]);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_window_sum_and_expiry),
		cmocka_unit_test(test_window_touch_counts_distinct),
		cmocka_unit_test(test_window_is_bounded),
		cmocka_unit_test(test_key_normalises),
		cmocka_unit_test(test_senders),
		cmocka_unit_test(test_rate_limits),
		cmocka_unit_test(test_detectors),
		cmocka_unit_test(test_header_field),
		cmocka_unit_test(test_header_addresses),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
