/*
 * test_metrics.c: tests for src/monitor/metrics.c (the registry and its
 * Prometheus text) and src/http (the web side that serves it, with the
 * confirmation pages). The registry: counters, labels, callback gauges, the
 * exact rendered text of a small registry, refusals of malformed labels
 * (logged once), four threads incrementing at once. The web side: its pure
 * pieces (HTML escaping, form parsing) as tables, then a real server on
 * 127.0.0.1 (and ::1 when the host has it) driven with raw sockets.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <math.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "core/cidr.h"
#include "core/config.h"
#include "directory/directory.h"
#include "http/http_private.h"
#include "http/http_server.h"
#include "monitor/metrics.h"

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define STRONG "Correct-Horse-Battery-9"

/* ---- capturing the log (stderr) ---- */

struct capture {
	int saved;
	char path[64];
};

static void
capture_start(struct capture *cap)
{
	int fd;

	strcpy(cap->path, "/tmp/test_metrics.log.XXXXXX");
	assert_true((fd = mkstemp(cap->path)) >= 0);
	fflush(stderr);
	assert_true((cap->saved = dup(STDERR_FILENO)) >= 0);
	assert_true(dup2(fd, STDERR_FILENO) >= 0);
	close(fd);
}

/* Stop capturing; the captured text, malloc'd. */
static char *
capture_end(struct capture *cap)
{
	FILE *f;
	char *text;
	long len;

	fflush(stderr);
	assert_true(dup2(cap->saved, STDERR_FILENO) >= 0);
	close(cap->saved);
	assert_non_null(f = fopen(cap->path, "r"));
	fseek(f, 0, SEEK_END);
	len = ftell(f);
	rewind(f);
	assert_non_null(text = calloc(1, (size_t)len + 1));
	assert_int_equal(fread(text, 1, (size_t)len, f), (size_t)len);
	fclose(f);
	unlink(cap->path);
	return text;
}

static size_t
count_substr(const char *hay, const char *needle)
{
	size_t n = 0;

	for (const char *p = hay; (p = strstr(p, needle)) != NULL; p += strlen(needle))
		n++;
	return n;
}

static int
reset_registry(void **state)
{
	(void)state;
	metrics_reset();
	return 0;
}

/* ---- the registry ---- */

static void
test_counters(void **state)
{
	(void)state;
	assert_true(metrics_get("t_hits_total", NULL) == 0);
	metrics_inc("t_hits_total", NULL);
	metrics_add("t_hits_total", NULL, 2.5);
	assert_true(metrics_get("t_hits_total", NULL) == 3.5);
	/* NULL and "" are the same unlabelled series. */
	metrics_inc("t_hits_total", "");
	assert_true(metrics_get("t_hits_total", "") == 4.5);
	/* A described counter never goes down. */
	metrics_describe("t_hits_total", "counter", "Hits.");
	metrics_add("t_hits_total", NULL, -1);
	assert_true(metrics_get("t_hits_total", NULL) == 4.5);
	/* A gauge may. */
	metrics_describe("t_open", "gauge", "Open things.");
	metrics_inc("t_open", NULL);
	metrics_inc("t_open", NULL);
	metrics_add("t_open", NULL, -1);
	assert_true(metrics_get("t_open", NULL) == 1);
	metrics_set("t_open", NULL, 42);
	assert_true(metrics_get("t_open", NULL) == 42);
	/* Forgotten by a reset. */
	metrics_reset();
	assert_true(metrics_get("t_open", NULL) == 0);
}

static void
test_labels(void **state)
{
	static const char *const sets[] = {
		"protocol=\"smtp\",reason=\"bad_password\"",
		"protocol=\"smtp\",reason=\"unknown_user\"",
		"protocol=\"imap\",reason=\"bad_password\"",
	};

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(sets); i++)
		metrics_add("t_fail_total", sets[i], (double)(i + 1));
	metrics_inc("t_fail_total", sets[0]);
	assert_true(metrics_get("t_fail_total", sets[0]) == 2);
	assert_true(metrics_get("t_fail_total", sets[1]) == 2);
	assert_true(metrics_get("t_fail_total", sets[2]) == 3);
	assert_true(metrics_get("t_fail_total", NULL) == 0);
	assert_true(metrics_get("t_fail_total", "protocol=\"smtp\"") == 0);
	/* A label set is copied: the caller's buffer may go away. */
	{
		char buf[64];

		snprintf(buf, sizeof(buf), "reason=\"%s\"", "relay");
		metrics_inc("t_refused_total", buf);
		memset(buf, 'x', sizeof(buf) - 1);
		assert_true(metrics_get("t_refused_total", "reason=\"relay\"") == 1);
	}
}

static double
read_double(void *ctx)
{
	return *(double *)ctx;
}

static void
test_gauge_callbacks(void **state)
{
	double a = 7, b = 9;
	char *text;

	(void)state;
	metrics_register_gauge("t_queue", "Queue size.", read_double, &a);
	assert_true(metrics_get("t_queue", NULL) == 7);
	a = 8;   /* computed when read, not when registered */
	assert_true(metrics_get("t_queue", NULL) == 8);
	assert_non_null(text = metrics_render(NULL));
	assert_non_null(strstr(text, "# HELP t_queue Queue size.\n# TYPE t_queue gauge\nt_queue 8\n"));
	free(text);
	/* Registering again replaces the callback. */
	metrics_register_gauge("t_queue", "Queue size.", read_double, &b);
	assert_true(metrics_get("t_queue", NULL) == 9);
	assert_non_null(text = metrics_render(NULL));
	assert_int_equal(count_substr(text, "\nt_queue "), 1);
	assert_non_null(strstr(text, "\nt_queue 9\n"));
	assert_int_equal(count_substr(text, "# TYPE t_queue "), 1);
	free(text);
}

static void
test_render_exact(void **state)
{
	static const char expected[] =
	    "# TYPE t_big untyped\n"
	    "t_big 1e+20\n"
	    "t_big{k=\"inf\"} +Inf\n"
	    "t_big{k=\"minf\"} -Inf\n"
	    "t_big{k=\"nan\"} NaN\n"
	    "t_big{k=\"neg\"} -3\n"
	    "t_big{k=\"quote\\\"d\"} 9007199254740992\n"
	    "t_big{k=\"tiny\"} 0.10000000000000001\n"
	    "t_big{k=\"zero\"} 0\n"
	    "# HELP t_cb From a callback.\n"
	    "# TYPE t_cb gauge\n"
	    "t_cb 7\n"
	    "# HELP t_empty_total Never used.\n"
	    "# TYPE t_empty_total counter\n"
	    "# HELP t_requests_total Requests.\\nSecond line, with a \\\\ backslash.\n"
	    "# TYPE t_requests_total counter\n"
	    "t_requests_total{code=\"200\",method=\"get\"} 3\n"
	    "t_requests_total{code=\"200\",method=\"post\"} 2\n"
	    "t_requests_total{code=\"404\",method=\"get\"} 1\n"
	    "# HELP t_temperature Temperature.\n"
	    "# TYPE t_temperature gauge\n"
	    "t_temperature 21.5\n";
	double seven = 7;
	size_t len = 0;
	char *text;

	(void)state;
	/* Out of order on purpose: rendering sorts by name, then labels. */
	metrics_describe("t_temperature", "gauge", "Temperature.");
	metrics_set("t_temperature", NULL, 21.5);
	metrics_inc("t_requests_total", "code=\"404\",method=\"get\"");
	metrics_add("t_requests_total", "code=\"200\",method=\"post\"", 2);
	for (int i = 0; i < 3; i++)
		metrics_inc("t_requests_total", "code=\"200\",method=\"get\"");
	metrics_describe("t_requests_total", "counter",
	    "Requests.\nSecond line, with a \\ backslash.");
	metrics_describe("t_empty_total", "counter", "Never used.");
	metrics_register_gauge("t_cb", "From a callback.", read_double, &seven);
	metrics_set("t_big", "k=\"tiny\"", 0.1);
	metrics_set("t_big", "k=\"quote\\\"d\"", 9007199254740992.0);
	metrics_set("t_big", "k=\"neg\"", -3);
	metrics_set("t_big", "k=\"nan\"", NAN);
	metrics_set("t_big", "k=\"inf\"", INFINITY);
	metrics_set("t_big", "k=\"minf\"", -INFINITY);
	metrics_set("t_big", "k=\"zero\"", -0.0);
	metrics_set("t_big", NULL, 1e20);
	assert_non_null(text = metrics_render(&len));
	assert_string_equal(text, expected);
	assert_int_equal(len, strlen(expected));
	free(text);

	/* An empty registry renders as an empty text, not a failure. */
	metrics_reset();
	assert_non_null(text = metrics_render(&len));
	assert_string_equal(text, "");
	assert_int_equal(len, 0);
	free(text);
}

struct label_case {
	const char *name;
	const char *labels;
	bool accepted;
};

static const struct label_case label_cases[] = {
	{ .name = "one pair", .labels = "protocol=\"smtp\"", .accepted = true },
	{ .name = "two pairs", .labels = "protocol=\"smtp\",reason=\"bad_password\"",
	  .accepted = true },
	{ .name = "empty value", .labels = "a=\"\"", .accepted = true },
	{ .name = "escaped quote", .labels = "a=\"x\\\"y\"", .accepted = true },
	{ .name = "escaped newline", .labels = "a=\"x\\ny\"", .accepted = true },
	{ .name = "escaped backslash", .labels = "a=\"x\\\\y\"", .accepted = true },
	{ .name = "underscore name", .labels = "_a9=\"x\"", .accepted = true },
	{ .name = "raw quote", .labels = "a=\"x\"y\"", .accepted = false },
	{ .name = "raw newline", .labels = "a=\"x\ny\"", .accepted = false },
	{ .name = "unknown escape", .labels = "a=\"x\\ty\"", .accepted = false },
	{ .name = "trailing backslash", .labels = "a=\"x\\\"", .accepted = false },
	{ .name = "unterminated", .labels = "a=\"x", .accepted = false },
	{ .name = "unquoted", .labels = "a=x", .accepted = false },
	{ .name = "no value", .labels = "a", .accepted = false },
	{ .name = "digit first", .labels = "1a=\"x\"", .accepted = false },
	{ .name = "reserved name", .labels = "__a=\"x\"", .accepted = false },
	{ .name = "dash in name", .labels = "a-b=\"x\"", .accepted = false },
	{ .name = "repeated name", .labels = "a=\"x\",a=\"y\"", .accepted = false },
	{ .name = "trailing comma", .labels = "a=\"x\",", .accepted = false },
	{ .name = "leading comma", .labels = ",a=\"x\"", .accepted = false },
	{ .name = "space after value", .labels = "a=\"x\" ,b=\"y\"", .accepted = false },
	{ .name = "no comma", .labels = "a=\"x\"b=\"y\"", .accepted = false },
	{ .name = "control byte", .labels = "a=\"\x01\"", .accepted = false },
	{ .name = "non-ASCII", .labels = "a=\"\xc3\xa9\"", .accepted = false },
	{ .name = "braces", .labels = "{a=\"x\"}", .accepted = false },
};

static void
test_bad_labels(void **state)
{
	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(label_cases); i++) {
		const struct label_case *tc = &label_cases[i];
		struct capture cap;
		char *log, *text;

		capture_start(&cap);
		for (int k = 0; k < 3; k++)
			metrics_inc("t_labelled_total", tc->labels);
		log = capture_end(&cap);
		assert_non_null(text = metrics_render(NULL));
		if (tc->accepted) {
			if (metrics_get("t_labelled_total", tc->labels) != 3)
				fail_msg("case '%s': not counted", tc->name);
			if (count_substr(log, "event=metrics.refused") != 0)
				fail_msg("case '%s': refused: %s", tc->name, log);
		} else {
			if (metrics_get("t_labelled_total", tc->labels) != 0)
				fail_msg("case '%s': counted", tc->name);
			/* Three refusals, one line: refused and logged once. */
			if (count_substr(log, "event=metrics.refused reason=bad_labels") != 1)
				fail_msg("case '%s': log was: %s", tc->name, log);
			if (strchr(text, '{') != NULL)
				fail_msg("case '%s': rendered: %s", tc->name, text);
		}
		free(log);
		free(text);
		metrics_reset();
	}
}

static void
test_bad_names(void **state)
{
	static const char *const names[] = { "", "9lives", "bad-name", "a b", "é" };
	struct capture cap;
	char *log, *text;

	(void)state;
	capture_start(&cap);
	for (size_t i = 0; i < ARRAY_SIZE(names); i++) {
		metrics_inc(names[i], NULL);
		metrics_set(names[i], NULL, 1);
	}
	metrics_describe("t_counter_without_suffix", "counter", "Bad.");
	metrics_describe("t_odd", "histogram", "Not supported.");
	log = capture_end(&cap);
	assert_int_equal(count_substr(log, "reason=bad_name"), ARRAY_SIZE(names));
	assert_int_equal(count_substr(log, "reason=counter_without_total"), 1);
	assert_int_equal(count_substr(log, "reason=bad_type"), 1);
	assert_non_null(text = metrics_render(NULL));
	assert_string_equal(text, "");
	free(text);
	free(log);
}

#define THREADS 4
#define ROUNDS 50000

static void *
hammer(void *arg)
{
	const char *labels = arg;

	for (int i = 0; i < ROUNDS; i++) {
		metrics_inc("t_shared_total", NULL);
		metrics_inc("t_mine_total", labels);
	}
	return NULL;
}

static void
test_concurrency(void **state)
{
	static const char *const labels[THREADS] = {
		"t=\"0\"", "t=\"1\"", "t=\"2\"", "t=\"3\"",
	};
	pthread_t th[THREADS];

	(void)state;
	metrics_describe("t_shared_total", "counter", "Shared.");
	for (int i = 0; i < THREADS; i++)
		assert_int_equal(pthread_create(&th[i], NULL, hammer, (void *)labels[i]), 0);
	/* Render while they run: the snapshot must be consistent enough to parse. */
	for (int i = 0; i < 20; i++) {
		char *text = metrics_render(NULL);

		assert_non_null(text);
		assert_non_null(strstr(text, "# TYPE t_shared_total counter\n"));
		free(text);
	}
	for (int i = 0; i < THREADS; i++)
		assert_int_equal(pthread_join(th[i], NULL), 0);
	assert_true(metrics_get("t_shared_total", NULL) == THREADS * ROUNDS);
	for (int i = 0; i < THREADS; i++)
		assert_true(metrics_get("t_mine_total", labels[i]) == ROUNDS);
}

/* Many series: the table grows and keeps every value. */
static void
test_many_series(void **state)
{
	char labels[32];

	(void)state;
	for (int i = 0; i < 1000; i++) {
		snprintf(labels, sizeof(labels), "n=\"%d\"", i);
		metrics_add("t_many_total", labels, i);
	}
	for (int i = 0; i < 1000; i++) {
		snprintf(labels, sizeof(labels), "n=\"%d\"", i);
		assert_true(metrics_get("t_many_total", labels) == i);
	}
}

static void
test_defaults(void **state)
{
	static const char *const counters[] = {
		"bulwark_auth_failures_total", "bulwark_auth_success_total",
		"bulwark_lockouts_total", "bulwark_confirmations_requested_total",
		"bulwark_confirmations_completed_total", "bulwark_bans_total",
		"bulwark_unbans_total", "bulwark_connections_refused_total",
		"bulwark_relay_denied_total", "bulwark_messages_accepted_total",
		"bulwark_messages_rejected_total",
	};
	static const char *const gauges[] = {
		"bulwark_lockouts_active", "bulwark_bans_active",
		"bulwark_queue_messages", "bulwark_smtp_sessions",
	};
	char line[128], *text;

	(void)state;
	metrics_describe_defaults();
	metrics_inc("bulwark_auth_failures_total", "protocol=\"smtp\",reason=\"bad_password\"");
	metrics_describe_defaults();   /* twice is harmless */
	assert_non_null(text = metrics_render(NULL));
	for (size_t i = 0; i < ARRAY_SIZE(counters); i++) {
		snprintf(line, sizeof(line), "# TYPE %s counter\n", counters[i]);
		assert_int_equal(count_substr(text, line), 1);
		snprintf(line, sizeof(line), "# HELP %s ", counters[i]);
		assert_int_equal(count_substr(text, line), 1);
	}
	for (size_t i = 0; i < ARRAY_SIZE(gauges); i++) {
		snprintf(line, sizeof(line), "# TYPE %s gauge\n", gauges[i]);
		assert_int_equal(count_substr(text, line), 1);
		snprintf(line, sizeof(line), "\n%s 0\n", gauges[i]);
		assert_int_equal(count_substr(text, line), 1);
	}
	assert_non_null(strstr(text, "\nbulwark_lockouts_total 0\n"));
	assert_non_null(strstr(text,
	    "\nbulwark_auth_failures_total{protocol=\"smtp\",reason=\"bad_password\"} 1\n"));
	free(text);
}

/* ---- the web side's pure pieces ---- */

struct escape_case {
	const char *in, *out;
};

static const struct escape_case escape_cases[] = {
	{ "plain@example.test", "plain@example.test" },
	{ "o'brien&co@example.test", "o&#39;brien&amp;co@example.test" },
	{ "<script>\"x\"</script>", "&lt;script&gt;&quot;x&quot;&lt;/script&gt;" },
	{ "", "" },
};

static void
test_html_escape(void **state)
{
	char buf[128], small[8];
	size_t len;
	char *page;

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(escape_cases); i++) {
		assert_int_equal(http_page_escape(buf, sizeof(buf), escape_cases[i].in),
		    (int)strlen(escape_cases[i].out));
		assert_string_equal(buf, escape_cases[i].out);
	}
	/* Too small: refused whole, never cut in the middle of a reference. */
	assert_int_equal(http_page_escape(small, sizeof(small), "a&b&c"), -1);
	assert_string_equal(small, "");
	assert_int_equal(http_page_escape(small, sizeof(small), "1234567"), 7);
	assert_int_equal(http_page_escape(small, sizeof(small), "12345678"), -1);

	assert_non_null(page = http_page_build("T &amp; t", "<p>b</p>", &len));
	assert_int_equal(len, strlen(page));
	assert_non_null(strstr(page, "<title>T &amp; t</title>"));
	assert_non_null(strstr(page, "<h1>T &amp; t</h1>\n<p>b</p>\n"));
	assert_null(strstr(page, "<script"));
	free(page);
}

struct form_case {
	const char *name;
	const char *body;
	int rc;
	const char *value;   /* rc 1 */
	const char *error;   /* rc -1 */
};

static const struct form_case form_cases[] = {
	{ .name = "alone", .body = "token=abc", .rc = 1, .value = "abc" },
	{ .name = "among others", .body = "a=1&token=abc&b=2", .rc = 1, .value = "abc" },
	{ .name = "escaped", .body = "token=a%2Bb+c%41", .rc = 1, .value = "a+b cA" },
	{ .name = "escaped key", .body = "tok%65n=x", .rc = 1, .value = "x" },
	{ .name = "empty value", .body = "token=", .rc = 1, .value = "" },
	{ .name = "no equals", .body = "token", .rc = 1, .value = "" },
	{ .name = "empty pairs", .body = "&&token=x&", .rc = 1, .value = "x" },
	{ .name = "absent", .body = "a=1&b=2", .rc = 0 },
	{ .name = "empty body", .body = "", .rc = 0 },
	{ .name = "prefix is not the key", .body = "tokens=1&tok=2", .rc = 0 },
	{ .name = "repeated", .body = "token=a&token=b", .rc = -1, .error = "repeated key" },
	{ .name = "bad escape", .body = "token=%zz", .rc = -1, .error = "bad percent-escape" },
	{ .name = "truncated escape", .body = "token=%4", .rc = -1,
	  .error = "truncated percent-escape" },
	{ .name = "bad escape elsewhere", .body = "a=%g1&token=x", .rc = -1,
	  .error = "bad percent-escape" },
	{ .name = "NUL", .body = "token=a%00b", .rc = -1, .error = "NUL byte" },
	{ .name = "too long", .body = "token=0123456789abcdef", .rc = -1,
	  .error = "value too long" },
};

static void
test_form_value(void **state)
{
	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(form_cases); i++) {
		const struct form_case *tc = &form_cases[i];
		const char *error = NULL;
		char value[16];
		int rc;

		rc = http_form_value(tc->body, strlen(tc->body), "token", value,
		    sizeof(value), &error);
		if (rc != tc->rc)
			fail_msg("case '%s': rc %d, want %d (%s)", tc->name, rc, tc->rc,
			    error != NULL ? error : "");
		if (rc == 1)
			assert_string_equal(value, tc->value);
		if (rc == -1) {
			assert_non_null(error);
			assert_string_equal(error, tc->error);
		}
	}
	/* The body is not NUL-terminated: only len bytes count. */
	{
		const char body[] = "token=abcXYZ";
		const char *error = NULL;
		char value[16];

		assert_int_equal(http_form_value(body, 9, "token", value, sizeof(value),
		    &error), 1);
		assert_string_equal(value, "abc");
	}
}

/* ---- the server, over real sockets ---- */

struct http_fixture {
	char root[64];
	char data_dir[96];
	char listen_text[2][64];
	struct config_listen listen[2];
	struct cidr allow;
	struct config cfg;
	struct directory *dir;
	struct http_server *srv;
	unsigned short port;
	bool have_v6;
	struct capture cap;
};

static char domain_test[] = "example.test";
static char *local_domains[] = { domain_test };
static char cfg_path[] = "(test)";

static int
rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st, (void)flag, (void)ftw;
	return remove(path);
}

/* A port free on 127.0.0.1 (and ::1 when present) right now. */
static unsigned short
free_port(bool *have_v6_r)
{
	for (int attempt = 0; attempt < 20; attempt++) {
		struct sockaddr_in sin = { .sin_family = AF_INET };
		struct sockaddr_in6 sin6 = { .sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT };
		socklen_t len = sizeof(sin);
		int fd = socket(AF_INET, SOCK_STREAM, 0), fd6;
		unsigned short port;

		assert_true(fd >= 0);
		sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
		assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
		port = ntohs(sin.sin_port);
		close(fd);
		*have_v6_r = false;
		if ((fd6 = socket(AF_INET6, SOCK_STREAM, 0)) >= 0) {
			sin6.sin6_port = htons(port);
			if (bind(fd6, (struct sockaddr *)&sin6, sizeof(sin6)) == 0)
				*have_v6_r = true;
			else if (errno == EADDRINUSE) {
				close(fd6);
				continue;
			}
			close(fd6);
		}
		return port;
	}
	fail_msg("no free port");
	return 0;
}

static int
http_setup(void **state)
{
	struct http_fixture *f = calloc(1, sizeof(*f));
	const char *why = NULL;
	char *error = NULL;
	size_t n = 0;

	assert_non_null(f);
	metrics_reset();
	metrics_describe_defaults();
	strcpy(f->root, "/tmp/test_metrics.XXXXXX");
	assert_non_null(mkdtemp(f->root));
	snprintf(f->data_dir, sizeof(f->data_dir), "%s/data", f->root);
	f->port = free_port(&f->have_v6);
	snprintf(f->listen_text[n], sizeof(f->listen_text[n]), "127.0.0.1:%u", f->port);
	n++;
	if (f->have_v6) {
		snprintf(f->listen_text[n], sizeof(f->listen_text[n]), "[::1]:%u", f->port);
		n++;
	}
	for (size_t i = 0; i < n; i++) {
		f->listen[i].text = f->listen_text[i];
		if (sockaddr_parse_listen(f->listen_text[i], &f->listen[i].ss,
		    &f->listen[i].sslen, &why) != 0)
			fail_msg("%s: %s", f->listen_text[i], why);
	}
	/* Only 127.0.0.1 may read /metrics: 127.0.0.2 is the stranger. */
	assert_int_equal(cidr_parse("127.0.0.1/32", &f->allow, &why), 0);
	f->cfg = (struct config){
		.path = cfg_path,
		.domains = local_domains,
		.ndomains = 1,
		.data_dir = f->data_dir,
		.security_policy = {
			.require_email_confirmation = true,
			.max_failed_login_attempts = 3,
			.account_lockout_duration_minutes = 60,
			.minimum_password_length = 12,
			.require_password_complexity = true,
			.disable_smtp_auth_for_unconfirmed = true,
		},
		.accounts = { .confirmation_ttl_hours = 24, .known_ip_days = 30 },
		.http = { .metrics_allow = &f->allow, .nmetrics_allow = 1 },
	};
	f->cfg.listen.http.v = f->listen;
	f->cfg.listen.http.n = n;
	if (directory_open(f->data_dir, &f->dir, &error) != 0)
		fail_msg("directory_open: %s", error);
	capture_start(&f->cap);
	if ((f->srv = http_server_new(&f->cfg, &error)) == NULL)
		fail_msg("http_server_new: %s", error);
	if (http_server_start(f->srv, &error) != 0)
		fail_msg("http_server_start: %s", error);
	*state = f;
	return 0;
}

static int
http_teardown(void **state)
{
	struct http_fixture *f = *state;

	char *log;

	http_server_free(&f->srv);
	assert_null(f->srv);
	log = capture_end(&f->cap);
	if (getenv("TEST_METRICS_LOG") != NULL)   /* the server's log, to debug */
		fputs(log, stderr);
	free(log);
	directory_free(&f->dir);
	nftw(f->root, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	free(f);
	metrics_reset();
	return 0;
}

struct reply {
	int status;
	char raw[65536];
	char *headers;   /* into raw: from the status line to the blank line */
	char *body;      /* into raw */
};

/*
 * Send request (a whole HTTP/1.1 request with "Connection: close") to the
 * server from source (NULL: the kernel's choice) and read the reply to EOF.
 */
static void
http_exchange(const struct http_fixture *f, const char *source, bool v6,
    const char *request, struct reply *r)
{
	struct sockaddr_storage ss = { 0 };
	struct timeval tv = { .tv_sec = 5 };
	size_t len = 0, rlen = strlen(request);
	socklen_t sslen;
	char *end;
	int fd;

	memset(r, 0, sizeof(*r));
	if (v6) {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;

		sin6->sin6_family = AF_INET6;
		sin6->sin6_addr = in6addr_loopback;
		sin6->sin6_port = htons(f->port);
		sslen = sizeof(*sin6);
	} else {
		struct sockaddr_in *sin = (struct sockaddr_in *)&ss;

		sin->sin_family = AF_INET;
		sin->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		sin->sin_port = htons(f->port);
		sslen = sizeof(*sin);
	}
	assert_true((fd = socket(ss.ss_family, SOCK_STREAM, 0)) >= 0);
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	if (source != NULL) {
		struct sockaddr_in src = { .sin_family = AF_INET };

		assert_int_equal(inet_pton(AF_INET, source, &src.sin_addr), 1);
		assert_int_equal(bind(fd, (struct sockaddr *)&src, sizeof(src)), 0);
	}
	if (connect(fd, (struct sockaddr *)&ss, sslen) != 0)
		fail_msg("connect: %s", strerror(errno));
	for (size_t off = 0; off < rlen;) {
		ssize_t w = send(fd, request + off, rlen - off, MSG_NOSIGNAL);

		if (w <= 0)
			break;   /* the server may answer early (413) and close */
		off += (size_t)w;
	}
	for (;;) {
		ssize_t got = recv(fd, r->raw + len, sizeof(r->raw) - 1 - len, 0);

		if (got <= 0)
			break;
		len += (size_t)got;
		if (len == sizeof(r->raw) - 1)
			break;
	}
	close(fd);
	r->raw[len] = '\0';
	if (sscanf(r->raw, "HTTP/1.1 %d ", &r->status) != 1)
		fail_msg("no status line in: %s", r->raw);
	assert_non_null(end = strstr(r->raw, "\r\n\r\n"));
	end[2] = '\0';
	r->headers = r->raw;
	r->body = end + 4;
}

static void
http_get(const struct http_fixture *f, const char *target, struct reply *r)
{
	char req[512];

	snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: localhost\r\n"
	    "Connection: close\r\n\r\n", target);
	http_exchange(f, NULL, false, req, r);
}

static void
http_post(const struct http_fixture *f, const char *target, const char *type,
    const char *body, struct reply *r)
{
	char req[8192];

	snprintf(req, sizeof(req), "POST %s HTTP/1.1\r\nHost: localhost\r\n"
	    "Content-Type: %s\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n%s",
	    target, type, strlen(body), body);
	http_exchange(f, NULL, false, req, r);
}

/* Case-insensitive header lookup: "Name: value" exactly. */
static void
assert_header(const struct reply *r, const char *name, const char *value)
{
	char want[256];

	snprintf(want, sizeof(want), "\r\n%s: %s\r\n", name, value);
	if (strcasestr(r->headers, want) == NULL)
		fail_msg("no '%s: %s' in:\n%s", name, value, r->headers);
}

static void
assert_security_headers(const struct reply *r)
{
	assert_header(r, "Content-Security-Policy",
	    "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'");
	assert_header(r, "X-Frame-Options", "DENY");
	assert_header(r, "Referrer-Policy", "no-referrer");
	assert_header(r, "Cache-Control", "no-store");
	assert_header(r, "X-Content-Type-Options", "nosniff");
}

static void
assert_confirmed(struct http_fixture *f, const char *address, bool want)
{
	struct directory_user u;

	assert_int_equal(directory_user_get(f->dir, address, &u), 1);
	assert_int_equal(u.confirmed, want);
	directory_user_clear(&u);
}

/* The plain routes: /, /metrics (and who may read it), 404, 405, 413. */
static void
test_http_routes(void **state)
{
	struct http_fixture *f = *state;
	struct reply *r = malloc(sizeof(*r));
	char big[6000];

	assert_non_null(r);
	http_get(f, "/", r);
	assert_int_equal(r->status, 200);
	assert_string_equal(r->body, "bulwark\n");
	assert_security_headers(r);

	metrics_inc("bulwark_relay_denied_total", NULL);
	http_get(f, "/metrics", r);
	assert_int_equal(r->status, 200);
	assert_header(r, "Content-Type", "text/plain; version=0.0.4; charset=utf-8");
	assert_security_headers(r);
	assert_non_null(strstr(r->body, "# TYPE bulwark_auth_failures_total counter\n"));
	assert_non_null(strstr(r->body, "\nbulwark_relay_denied_total 1\n"));
	/* From the database at each scrape. */
	assert_non_null(strstr(r->body, "\nbulwark_confirmations_requested_total 0\n"));

	/* 127.0.0.2 is loopback too, but not in http.metrics_allow. */
	http_exchange(f, "127.0.0.2", false,
	    "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", r);
	assert_int_equal(r->status, 403);
	assert_null(strstr(r->body, "bulwark_"));
	assert_security_headers(r);
	/* The rest of the site is for everyone. */
	http_exchange(f, "127.0.0.2", false,
	    "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", r);
	assert_int_equal(r->status, 200);

	http_get(f, "/nope", r);
	assert_int_equal(r->status, 404);
	assert_security_headers(r);
	http_get(f, "/metrics/", r);
	assert_int_equal(r->status, 404);

	http_exchange(f, NULL, false,
	    "DELETE /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", r);
	assert_int_equal(r->status, 405);
	assert_header(r, "Allow", "GET, HEAD");
	http_exchange(f, NULL, false,
	    "PUT /confirm HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n", r);
	assert_int_equal(r->status, 405);
	assert_header(r, "Allow", "GET, HEAD, POST");
	http_post(f, "/", "application/x-www-form-urlencoded", "a=1", r);
	assert_int_equal(r->status, 405);

	/* HEAD: the headers of a GET, no body. */
	http_exchange(f, NULL, false,
	    "HEAD / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", r);
	assert_int_equal(r->status, 200);
	assert_string_equal(r->body, "");

	/* A body over 4 KiB is refused whole, announced or chunked. */
	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	memcpy(big, "token=", 6);
	http_post(f, "/confirm", "application/x-www-form-urlencoded", big, r);
	assert_int_equal(r->status, 413);
	{
		/* Chunked: no answer can be queued mid-body; the connection closes. */
		char req[8192];
		int n = snprintf(req, sizeof(req), "POST /confirm HTTP/1.1\r\nHost: x\r\n"
		    "Content-Type: application/x-www-form-urlencoded\r\n"
		    "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
		    "%zx\r\n%s\r\n0\r\n\r\n", strlen(big), big);
		struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons(f->port) };
		struct timeval tv = { .tv_sec = 5 };
		char buf[4096];
		ssize_t got;
		int fd;

		assert_true(n > 0 && (size_t)n < sizeof(req));
		sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		assert_true((fd = socket(AF_INET, SOCK_STREAM, 0)) >= 0);
		setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		assert_int_equal(connect(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
		send(fd, req, (size_t)n, MSG_NOSIGNAL);
		/* Either nothing or an error status; never a 2xx or 4xx page of ours. */
		got = recv(fd, buf, sizeof(buf) - 1, 0);
		if (got > 0) {
			buf[got] = '\0';
			assert_null(strstr(buf, "HTTP/1.1 2"));
		}
		close(fd);
	}

	if (f->have_v6) {
		http_exchange(f, NULL, true,
		    "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", r);
		assert_int_equal(r->status, 200);
		/* ::1 is not 127.0.0.1/32. */
		http_exchange(f, NULL, true,
		    "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", r);
		assert_int_equal(r->status, 403);
	}
	free(r);
}

/* The confirmation link: GET shows, only POST confirms, once. */
static void
test_http_confirm(void **state)
{
	struct http_fixture *f = *state;
	static const char address[] = "o'brien&co@example.test";
	struct reply *r = malloc(sizeof(*r));
	char token[DIRECTORY_TOKEN_LEN + 1], old[DIRECTORY_TOKEN_LEN + 1];
	char target[256], body[256], upper[DIRECTORY_TOKEN_LEN + 1];
	char *error = NULL, *log;
	time_t now = time(NULL);

	assert_non_null(r);
	if (directory_user_add(f->dir, &f->cfg, address, STRONG, NULL, false, &error) != 0)
		fail_msg("user add: %s", error);
	if (directory_token_create(f->dir, address, (int64_t)now, 3600, token, &error) != 0)
		fail_msg("token create: %s", error);
	/* One that expired ten seconds ago. */
	if (directory_token_create(f->dir, address, (int64_t)now - 100, 90, old, &error) != 0)
		fail_msg("token create: %s", error);

	snprintf(target, sizeof(target), "/confirm?token=%s", token);
	http_get(f, target, r);
	assert_int_equal(r->status, 200);
	assert_security_headers(r);
	assert_header(r, "Content-Type", "text/html; charset=utf-8");
	assert_non_null(strstr(r->body, "Confirm the account o&#39;brien&amp;co@example.test"));
	assert_null(strstr(r->body, "o'brien"));
	assert_non_null(strstr(r->body, "<form method=\"post\" action=\"/confirm\">"));
	snprintf(body, sizeof(body), "<input type=\"hidden\" name=\"token\" value=\"%s\">", token);
	assert_non_null(strstr(r->body, body));
	assert_int_equal(count_substr(r->body, "<button"), 1);
	assert_null(strstr(r->body, "<script"));
	/* Looking is not confirming (mail scanners prefetch links). */
	http_get(f, target, r);
	assert_int_equal(r->status, 200);
	assert_confirmed(f, address, false);

	/* Malformed tokens never reach the store. */
	http_get(f, "/confirm?token=zz", r);
	assert_int_equal(r->status, 400);
	assert_security_headers(r);
	http_get(f, "/confirm", r);
	assert_int_equal(r->status, 400);
	for (size_t i = 0; i <= DIRECTORY_TOKEN_LEN; i++)
		upper[i] = (char)(token[i] >= 'a' && token[i] <= 'f' ? token[i] - 32 : token[i]);
	if (strcmp(upper, token) != 0) {
		snprintf(target, sizeof(target), "/confirm?token=%s", upper);
		http_get(f, target, r);
		assert_int_equal(r->status, 400);
	}
	snprintf(target, sizeof(target), "/confirm?token=%s&token=%s", token, token);
	http_get(f, target, r);
	assert_int_equal(r->status, 400);
	snprintf(target, sizeof(target), "/confirm?token=%s0", token);
	http_get(f, target, r);
	assert_int_equal(r->status, 400);
	/* Well-formed but unknown, and expired: gone. */
	http_get(f, "/confirm?token=0000000000000000000000000000000000000000000000000000000000000000", r);
	assert_int_equal(r->status, 410);
	assert_non_null(strstr(r->body, "This link is invalid, already used or expired"));
	snprintf(target, sizeof(target), "/confirm?token=%s", old);
	http_get(f, target, r);
	assert_int_equal(r->status, 410);

	/* POST: the wrong type, a bad body, then the real thing. */
	snprintf(body, sizeof(body), "token=%s", token);
	http_post(f, "/confirm", "text/plain", body, r);
	assert_int_equal(r->status, 415);
	http_post(f, "/confirm", "application/x-www-form-urlencoded", "token=zz", r);
	assert_int_equal(r->status, 400);
	http_post(f, "/confirm", "application/x-www-form-urlencoded", "nothing=here", r);
	assert_int_equal(r->status, 400);
	snprintf(body, sizeof(body), "token=%s", old);
	http_post(f, "/confirm", "application/x-www-form-urlencoded", body, r);
	assert_int_equal(r->status, 410);
	assert_confirmed(f, address, false);

	snprintf(body, sizeof(body), "token=%s", token);
	http_post(f, "/confirm", "application/x-www-form-urlencoded; charset=UTF-8", body, r);
	assert_int_equal(r->status, 200);
	assert_security_headers(r);
	assert_non_null(strstr(r->body, "Account o&#39;brien&amp;co@example.test confirmed"));
	assert_confirmed(f, address, true);
	assert_true(metrics_get("bulwark_confirmations_completed_total", NULL) >= 1);

	/* Single use: a second POST, and the link itself, are gone. */
	http_post(f, "/confirm", "application/x-www-form-urlencoded", body, r);
	assert_int_equal(r->status, 410);
	snprintf(target, sizeof(target), "/confirm?token=%s", token);
	http_get(f, target, r);
	assert_int_equal(r->status, 410);

	/* /metrics reads the database's counts. */
	http_get(f, "/metrics", r);
	assert_int_equal(r->status, 200);
	assert_non_null(strstr(r->body, "\nbulwark_confirmations_requested_total 2\n"));
	assert_non_null(strstr(r->body, "\nbulwark_confirmations_completed_total 1\n"));

	/* The log: one line a request, and never the token. */
	log = capture_end(&f->cap);
	capture_start(&f->cap);
	assert_null(strstr(log, token));
	assert_null(strstr(log, old));
	assert_non_null(strstr(log,
	    "event=http.request client=127.0.0.1 method=GET path=/confirm status=200"));
	assert_non_null(strstr(log,
	    "event=http.request client=127.0.0.1 method=POST path=/confirm status=410"));
	assert_non_null(strstr(log, "event=http.confirm client=127.0.0.1 account="));
	free(log);
	free(r);
}

/* Binding fails cleanly with the address in the message. */
static void
test_http_bind_conflict(void **state)
{
	struct http_fixture *f = *state;
	struct http_server *second;
	char *error = NULL;

	second = http_server_new(&f->cfg, &error);
	assert_null(second);
	assert_non_null(error);
	assert_non_null(strstr(error, f->listen_text[0]));
	assert_non_null(strstr(error, "bind"));
	free(error);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_counters, reset_registry),
		cmocka_unit_test_setup(test_labels, reset_registry),
		cmocka_unit_test_setup(test_gauge_callbacks, reset_registry),
		cmocka_unit_test_setup(test_render_exact, reset_registry),
		cmocka_unit_test_setup(test_bad_labels, reset_registry),
		cmocka_unit_test_setup(test_bad_names, reset_registry),
		cmocka_unit_test_setup(test_concurrency, reset_registry),
		cmocka_unit_test_setup(test_many_series, reset_registry),
		cmocka_unit_test_setup(test_defaults, reset_registry),
		cmocka_unit_test(test_html_escape),
		cmocka_unit_test(test_form_value),
		cmocka_unit_test_setup_teardown(test_http_routes, http_setup, http_teardown),
		cmocka_unit_test_setup_teardown(test_http_confirm, http_setup, http_teardown),
		cmocka_unit_test_setup_teardown(test_http_bind_conflict, http_setup, http_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
