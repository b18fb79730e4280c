/*
 * test_config.c: table tests for core/config.h. Every case is loaded twice,
 * from memory (config_load_string) and from a temporary file (config_load),
 * and both must agree. Errors are asserted with their line number and key;
 * audit findings with their severity and key, not only their count.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/config.h"
#include "core/default_config.h"

#define N_ELEMENTS(a) (sizeof(a) / sizeof((a)[0]))
#define NAME "test.yaml"

/* ---- helpers ---- */

static void
listen_equal(const struct config_listen_list *a, const struct config_listen_list *b)
{
	assert_int_equal(a->n, b->n);
	for (size_t i = 0; i < a->n; i++) {
		assert_string_equal(a->v[i].text, b->v[i].text);
		assert_int_equal(a->v[i].sslen, b->v[i].sslen);
		assert_memory_equal(&a->v[i].ss, &b->v[i].ss, a->v[i].sslen);
	}
}

static void
string_or_null_equal(const char *a, const char *b)
{
	if (a == NULL || b == NULL)
		assert_ptr_equal(a, b);
	else
		assert_string_equal(a, b);
}

/* Every field but path. */
static void
config_equal(const struct config *a, const struct config *b)
{
	assert_string_equal(a->hostname, b->hostname);
	assert_int_equal(a->ndomains, b->ndomains);
	for (size_t i = 0; i < a->ndomains; i++)
		assert_string_equal(a->domains[i], b->domains[i]);
	assert_string_equal(a->data_dir, b->data_dir);
	string_or_null_equal(a->user, b->user);
	assert_string_equal(a->log_level, b->log_level);
	listen_equal(&a->listen.smtp, &b->listen.smtp);
	listen_equal(&a->listen.submission, &b->listen.submission);
	listen_equal(&a->listen.submissions, &b->listen.submissions);
	listen_equal(&a->listen.imap, &b->listen.imap);
	listen_equal(&a->listen.imaps, &b->listen.imaps);
	listen_equal(&a->listen.http, &b->listen.http);
	string_or_null_equal(a->tls_cert, b->tls_cert);
	string_or_null_equal(a->tls_key, b->tls_key);
	assert_int_equal(a->nmynetworks, b->nmynetworks);
	for (size_t i = 0; i < a->nmynetworks; i++)
		assert_memory_equal(&a->mynetworks[i], &b->mynetworks[i],
		    sizeof(struct cidr));
	assert_int_equal(a->allow_nonlocal_mynetworks, b->allow_nonlocal_mynetworks);
	string_or_null_equal(a->outbound.smarthost, b->outbound.smarthost);
	assert_int_equal(a->outbound.ndns_servers, b->outbound.ndns_servers);
	for (size_t i = 0; i < a->outbound.ndns_servers; i++)
		assert_string_equal(a->outbound.dns_servers[i],
		    b->outbound.dns_servers[i]);
	assert_int_equal(a->outbound.max_connections, b->outbound.max_connections);
	assert_int_equal(a->outbound.max_per_destination, b->outbound.max_per_destination);
	assert_int_equal(a->outbound.max_messages_per_connection,
	    b->outbound.max_messages_per_connection);
	assert_int_equal(a->outbound.connection_idle_seconds, b->outbound.connection_idle_seconds);
	assert_int_equal(a->outbound.retry_base, b->outbound.retry_base);
	assert_int_equal(a->outbound.retry_max, b->outbound.retry_max);
	assert_int_equal(a->outbound.max_queue_lifetime, b->outbound.max_queue_lifetime);
	assert_memory_equal(&a->security_policy, &b->security_policy,
	    sizeof(a->security_policy));
	assert_int_equal(a->intrusion_prevention.enabled, b->intrusion_prevention.enabled);
	assert_int_equal(a->intrusion_prevention.maxretry, b->intrusion_prevention.maxretry);
	assert_int_equal(a->intrusion_prevention.findtime, b->intrusion_prevention.findtime);
	assert_int_equal(a->intrusion_prevention.bantime, b->intrusion_prevention.bantime);
	assert_int_equal(a->intrusion_prevention.bantime_max, b->intrusion_prevention.bantime_max);
	assert_int_equal(a->intrusion_prevention.ipv6_prefix, b->intrusion_prevention.ipv6_prefix);
	assert_int_equal(a->intrusion_prevention.maxretry_authenticated,
	    b->intrusion_prevention.maxretry_authenticated);
	assert_int_equal(a->intrusion_prevention.drop_before_accept,
	    b->intrusion_prevention.drop_before_accept);
	assert_int_equal(a->intrusion_prevention.nignoreip, b->intrusion_prevention.nignoreip);
	for (size_t i = 0; i < a->intrusion_prevention.nignoreip; i++)
		assert_memory_equal(&a->intrusion_prevention.ignoreip[i],
		    &b->intrusion_prevention.ignoreip[i], sizeof(struct cidr));
	assert_memory_equal(&a->accounts, &b->accounts, sizeof(a->accounts));
	string_or_null_equal(a->http.public_url, b->http.public_url);
	assert_int_equal(a->http.nmetrics_allow, b->http.nmetrics_allow);
	{
		struct config_queue_monitor qa = a->queue_monitor, qb = b->queue_monitor;

		string_or_null_equal(qa.alert_command, qb.alert_command);
		qa.alert_command = qb.alert_command = NULL;
		assert_memory_equal(&qa, &qb, sizeof(qa));
	}
	assert_memory_equal(&a->smtp, &b->smtp, sizeof(a->smtp));
	assert_memory_equal(&a->imap, &b->imap, sizeof(a->imap));
}

/* Write len bytes to a fresh temporary file; returns its malloc'd path. */
static char *
temp_file(const char *text, size_t len)
{
	const char *dir = getenv("TMPDIR") != NULL ? getenv("TMPDIR") : "/tmp";
	char *path;
	int fd;

	assert_true(asprintf(&path, "%s/bulwark-test-config-XXXXXX", dir) > 0);
	fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, len), (ssize_t)len);
	assert_int_equal(close(fd), 0);
	return path;
}

/*
 * Load text (len bytes) from memory as NAME and from a temporary file;
 * both must give the same result. Returns the memory result.
 */
static int
load_both_len(const char *text, size_t len, struct config **cfg_r, char **error_r)
{
	struct config *fcfg = NULL;
	char *ferr = NULL, *path = temp_file(text, len);
	int r = config_load_string(NAME, text, len, cfg_r, error_r);
	int fr = config_load(path, &fcfg, &ferr);

	assert_int_equal(r, fr);
	if (r == 0) {
		assert_null(*error_r);
		assert_null(ferr);
		assert_string_equal((*cfg_r)->path, NAME);
		assert_string_equal(fcfg->path, path);
		config_equal(*cfg_r, fcfg);
	} else {
		assert_null(*cfg_r);
		assert_null(fcfg);
		assert_non_null(*error_r);
		assert_non_null(ferr);
		/* Same message, the file's path in place of NAME. */
		assert_int_equal(strncmp(ferr, path, strlen(path)), 0);
		assert_int_equal(strncmp(*error_r, NAME, strlen(NAME)), 0);
		assert_string_equal(ferr + strlen(path), *error_r + strlen(NAME));
	}
	config_free(&fcfg);
	free(ferr);
	unlink(path);
	free(path);
	return r;
}

static int
load_both(const char *text, struct config **cfg_r, char **error_r)
{
	return load_both_len(text, strlen(text), cfg_r, error_r);
}

/* The load must fail with NAME followed by expect (":LINE: key ..."). */
static void
expect_error_len(const char *text, size_t len, const char *expect)
{
	struct config *cfg = NULL;
	char *error = NULL;

	if (load_both_len(text, len, &cfg, &error) == 0) {
		config_free(&cfg);
		fail_msg("loaded, expected '%s%s':\n%s", NAME, expect, text);
	}
	if (strncmp(error, NAME, strlen(NAME)) != 0 ||
	    strncmp(error + strlen(NAME), expect, strlen(expect)) != 0)
		fail_msg("got '%s', expected '%s%s...' for:\n%s", error, NAME,
		    expect, text);
	free(error);
}

static void
expect_error(const char *text, const char *expect)
{
	expect_error_len(text, strlen(text), expect);
}

/* The load must succeed; the caller frees. */
static struct config *
expect_load(const char *text)
{
	struct config *cfg = NULL;
	char *error = NULL;

	if (load_both(text, &cfg, &error) != 0)
		fail_msg("failed: %s\nfor:\n%s", error, text);
	return cfg;
}

static void
assert_listen(const struct config_listen_list *l, size_t n, const char *first)
{
	assert_int_equal(l->n, n);
	if (n > 0)
		assert_string_equal(l->v[0].text, first);
}

static unsigned
listen_port(const struct config_listen *l)
{
	if (l->ss.ss_family == AF_INET)
		return ntohs(((const struct sockaddr_in *)&l->ss)->sin_port);
	return ntohs(((const struct sockaddr_in6 *)&l->ss)->sin6_port);
}

static void
assert_cidr(const struct cidr *c, const char *text)
{
	char buf[64];

	cidr_format(c, buf, sizeof(buf));
	assert_string_equal(buf, text);
}

/* ---- defaults ---- */

static void
assert_defaults(const struct config *cfg)
{
	assert_string_equal(cfg->hostname, "mail.example.test");
	assert_int_equal(cfg->ndomains, 1);
	assert_string_equal(cfg->domains[0], "example.test");
	assert_string_equal(cfg->data_dir, "var");
	assert_null(cfg->user);
	assert_string_equal(cfg->log_level, "info");
	assert_listen(&cfg->listen.smtp, 1, "127.0.0.1:2525");
	assert_listen(&cfg->listen.submission, 1, "127.0.0.1:5870");
	assert_listen(&cfg->listen.submissions, 1, "127.0.0.1:4650");
	assert_listen(&cfg->listen.imap, 1, "127.0.0.1:1430");
	assert_listen(&cfg->listen.imaps, 1, "127.0.0.1:9930");
	assert_listen(&cfg->listen.http, 1, "127.0.0.1:8080");
	assert_int_equal(listen_port(&cfg->listen.smtp.v[0]), 2525);
	assert_null(cfg->tls_cert);
	assert_null(cfg->tls_key);
	assert_int_equal(cfg->nmynetworks, 2);
	assert_cidr(&cfg->mynetworks[0], "127.0.0.0/8");
	assert_cidr(&cfg->mynetworks[1], "::1/128");
	assert_false(cfg->allow_nonlocal_mynetworks);
	assert_null(cfg->outbound.smarthost);
	assert_int_equal(cfg->outbound.ndns_servers, 0);
	assert_int_equal(cfg->outbound.max_connections, 100);
	assert_int_equal(cfg->outbound.max_per_destination, 20);
	assert_int_equal(cfg->outbound.max_messages_per_connection, 100);
	assert_int_equal(cfg->outbound.connection_idle_seconds, 5);
	assert_int_equal(cfg->outbound.retry_base, 300);
	assert_int_equal(cfg->outbound.retry_max, 14400);
	assert_int_equal(cfg->outbound.max_queue_lifetime, 432000);
	assert_int_equal(cfg->smtp.max_line_length, 1000);
	assert_int_equal(cfg->smtp.max_message_size, 26214400);
	assert_int_equal(cfg->smtp.max_recipients, 100);
	assert_int_equal(cfg->smtp.max_errors, 10);
	assert_int_equal(cfg->smtp.idle_timeout, 300);
	assert_int_equal(cfg->smtp.data_timeout, 600);
	assert_int_equal(cfg->smtp.max_connections_per_ip, 20);
	assert_int_equal(cfg->smtp.max_connections, 1000);
	assert_int_equal(cfg->smtp.greet_pause_ms, 1000);
	assert_int_equal(cfg->smtp.bare_lf, CONFIG_BARE_LF_NORMALIZE);
	assert_int_equal(cfg->smtp.shutdown_timeout, 10);
	assert_int_equal(cfg->imap.max_line_length, 65536);
	assert_int_equal(cfg->imap.max_literal_size, 1048576);
	assert_int_equal(cfg->imap.max_message_size, 67108864);
	assert_int_equal(cfg->imap.max_errors, 10);
	assert_int_equal(cfg->imap.idle_timeout, 1800);
	assert_int_equal(cfg->imap.login_timeout, 60);
	assert_int_equal(cfg->imap.max_connections_per_ip, 50);
	assert_int_equal(cfg->imap.max_connections, 5000);
	assert_int_equal(cfg->imap.max_sessions_per_account, 50);
	assert_true(cfg->security_policy.require_email_confirmation);
	assert_int_equal(cfg->security_policy.max_failed_login_attempts, 3);
	assert_int_equal(cfg->security_policy.account_lockout_duration_minutes, 60);
	assert_int_equal(cfg->security_policy.minimum_password_length, 12);
	assert_true(cfg->security_policy.require_password_complexity);
	assert_true(cfg->security_policy.disable_smtp_auth_for_unconfirmed);
	assert_true(cfg->intrusion_prevention.enabled);
	assert_int_equal(cfg->intrusion_prevention.maxretry, 5);
	assert_int_equal(cfg->intrusion_prevention.findtime, 300);
	assert_int_equal(cfg->intrusion_prevention.bantime, 3600);
	assert_int_equal(cfg->queue_monitor.interval_seconds, 30);
	assert_int_equal(cfg->queue_monitor.alert_threshold, 5);
}

static const char *const empty_inputs[] = {
	"",
	"\n\n",
	"# only a comment\n",
	"---\n",
	"---\n...\n",
	"{}\n",
	"\xef\xbb\xbf# a BOM, then a comment\n",
	"smtp: {}\nsecurity_policy: {}\ntls: {}\noutbound: {}\n",
};

static void
test_defaults(void **state)
{
	for (size_t i = 0; i < N_ELEMENTS(empty_inputs); i++) {
		struct config *cfg = expect_load(empty_inputs[i]);

		assert_defaults(cfg);
		config_free(&cfg);
		assert_null(cfg);
	}
}

/* A path next to this source file: tests/unit/ -> the source root. */
static char *
source_path(const char *rel)
{
	const char *me = __FILE__, *tail = "tests/unit/test_config.c";
	size_t mlen = strlen(me), tlen = strlen(tail);
	char *path;

	if (mlen >= tlen && strcmp(me + mlen - tlen, tail) == 0)
		assert_true(asprintf(&path, "%.*s%s", (int)(mlen - tlen), me, rel) > 0);
	else
		assert_true(asprintf(&path, "../../%s", rel) > 0);
	return path;
}

/* The embedded default and etc/bulwark.yaml are exactly the built-in values. */
static void
test_defaults_match_embedded(void **state)
{
	struct config *empty = expect_load(""), *embedded = NULL, *file = NULL;
	char *error = NULL, *path = source_path("etc/bulwark.yaml");

	assert_int_equal(config_load_string("default", bulwark_default_config_yaml,
	    bulwark_default_config_len, &embedded, &error), 0);
	config_equal(empty, embedded);
	if (config_load(path, &file, &error) != 0)
		fail_msg("%s", error);
	config_equal(empty, file);
	assert_int_equal(config_audit(file, NULL, NULL), 0);
	config_free(&empty);
	config_free(&embedded);
	config_free(&file);
	free(path);
}

/* ---- a full valid config, every key away from its default ---- */

static const char full_yaml[] =
	"# every key\n"
	"hostname: MX1.Example.ORG\n"
	"domains: [Example.ORG, example.net, xn--bcher-kva.example]\n"
	"data_dir: /srv/bulwark data\n"
	"user: bulwark\n"
	"log_level: debug\n"
	"listen:\n"
	"  smtp: [0.0.0.0:25, \"[::]:25\"]\n"
	"  submission: ['*:587']\n"
	"  submissions: [\"[::1]:465\"]\n"
	"  imap: []\n"
	"  imaps: [192.0.2.1:993]\n"
	"  http:\n"
	"    - 127.0.0.1:8443\n"
	"tls:\n"
	"  cert: /etc/ssl/cert.pem\n"
	"  key: '/etc/ssl/key.pem'\n"
	"mynetworks:\n"
	"  - 127.0.0.0/8\n"
	"  - ::1/128\n"
	"  - 192.0.2.0/24\n"
	"allow_nonlocal_mynetworks: Yes\n"
	"outbound:\n"
	"  smarthost: relay.example.net:587\n"
	"  dns_servers: [192.0.2.53:53, \"[2001:db8::53]:5353\"]\n"
	"  max_connections: 7\n"
	"  max_per_destination: 3\n"
	"  max_messages_per_connection: 9\n"
	"  connection_idle_seconds: 0\n"
	"  retry_base: 60\n"
	"  retry_max: 3600\n"
	"  max_queue_lifetime: 86400\n"
	"smtp:\n"
	"  max_line_length: 2048\n"
	"  max_message_size: 52428800\n"
	"  max_recipients: 500\n"
	"  max_errors: 5\n"
	"  idle_timeout: 120\n"
	"  data_timeout: 900\n"
	"  max_connections_per_ip: 10\n"
	"  max_connections: 200\n"
	"  greet_pause_ms: 0\n"
	"  bare_lf: reject\n"
	"  shutdown_timeout: 30\n"
	"security_policy:\n"
	"  require_email_confirmation: TRUE\n"
	"  max_failed_login_attempts: 2\n"
	"  account_lockout_duration_minutes: 120\n"
	"  minimum_password_length: 16\n"
	"  require_password_complexity: yes\n"
	"  disable_smtp_auth_for_unconfirmed: true\n"
	"intrusion_prevention:\n"
	"  enabled: true\n"
	"  maxretry: 3\n"
	"  findtime: 600\n"
	"  bantime: 86400\n"
	"queue_monitor:\n"
	"  interval_seconds: 10\n"
	"  alert_threshold: 50\n";

static void
assert_full_listen(const struct config *cfg)
{
	assert_listen(&cfg->listen.smtp, 2, "0.0.0.0:25");
	assert_string_equal(cfg->listen.smtp.v[1].text, "[::]:25");
	assert_int_equal(cfg->listen.smtp.v[1].ss.ss_family, AF_INET6);
	assert_int_equal(listen_port(&cfg->listen.smtp.v[1]), 25);
	assert_listen(&cfg->listen.submission, 1, "*:587");
	assert_int_equal(cfg->listen.submission.v[0].ss.ss_family, AF_INET);
	assert_listen(&cfg->listen.submissions, 1, "[::1]:465");
	assert_listen(&cfg->listen.imap, 0, NULL);
	assert_listen(&cfg->listen.imaps, 1, "192.0.2.1:993");
	assert_listen(&cfg->listen.http, 1, "127.0.0.1:8443");
	assert_int_equal(listen_port(&cfg->listen.http.v[0]), 8443);
}

static void
test_full(void **state)
{
	struct config *cfg = expect_load(full_yaml);

	assert_string_equal(cfg->hostname, "MX1.Example.ORG");
	assert_int_equal(cfg->ndomains, 3);
	assert_string_equal(cfg->domains[0], "example.org");
	assert_string_equal(cfg->domains[1], "example.net");
	assert_string_equal(cfg->domains[2], "xn--bcher-kva.example");
	assert_string_equal(cfg->data_dir, "/srv/bulwark data");
	assert_string_equal(cfg->user, "bulwark");
	assert_string_equal(cfg->log_level, "debug");
	assert_full_listen(cfg);
	assert_string_equal(cfg->tls_cert, "/etc/ssl/cert.pem");
	assert_string_equal(cfg->tls_key, "/etc/ssl/key.pem");
	assert_int_equal(cfg->nmynetworks, 3);
	assert_cidr(&cfg->mynetworks[1], "::1/128");
	assert_cidr(&cfg->mynetworks[2], "192.0.2.0/24");
	assert_true(cfg->allow_nonlocal_mynetworks);
	assert_string_equal(cfg->outbound.smarthost, "relay.example.net:587");
	assert_int_equal(cfg->outbound.ndns_servers, 2);
	assert_string_equal(cfg->outbound.dns_servers[1], "[2001:db8::53]:5353");
	assert_int_equal(cfg->outbound.max_connections, 7);
	assert_int_equal(cfg->outbound.max_per_destination, 3);
	assert_int_equal(cfg->outbound.max_messages_per_connection, 9);
	assert_int_equal(cfg->outbound.connection_idle_seconds, 0);
	assert_int_equal(cfg->outbound.retry_base, 60);
	assert_int_equal(cfg->outbound.retry_max, 3600);
	assert_int_equal(cfg->outbound.max_queue_lifetime, 86400);
	assert_int_equal(cfg->smtp.max_line_length, 2048);
	assert_int_equal(cfg->smtp.max_message_size, 52428800);
	assert_int_equal(cfg->smtp.max_recipients, 500);
	assert_int_equal(cfg->smtp.max_errors, 5);
	assert_int_equal(cfg->smtp.idle_timeout, 120);
	assert_int_equal(cfg->smtp.data_timeout, 900);
	assert_int_equal(cfg->smtp.max_connections_per_ip, 10);
	assert_int_equal(cfg->smtp.max_connections, 200);
	assert_int_equal(cfg->smtp.greet_pause_ms, 0);
	assert_int_equal(cfg->smtp.bare_lf, CONFIG_BARE_LF_REJECT);
	assert_int_equal(cfg->smtp.shutdown_timeout, 30);
	assert_int_equal(cfg->security_policy.max_failed_login_attempts, 2);
	assert_int_equal(cfg->security_policy.account_lockout_duration_minutes, 120);
	assert_int_equal(cfg->security_policy.minimum_password_length, 16);
	assert_int_equal(cfg->intrusion_prevention.maxretry, 3);
	assert_int_equal(cfg->intrusion_prevention.findtime, 600);
	assert_int_equal(cfg->intrusion_prevention.bantime, 86400);
	assert_int_equal(cfg->queue_monitor.interval_seconds, 10);
	assert_int_equal(cfg->queue_monitor.alert_threshold, 50);
	assert_true(config_is_local_domain(cfg, "EXAMPLE.org"));
	config_free(&cfg);
}

/* ---- values that load, and what they become ---- */

static void
test_listen_partial(void **state)
{
	/* A listen: section turns off every kind it does not name. */
	struct config *cfg = expect_load("listen:\n  smtp: ['*:25']\n");

	assert_listen(&cfg->listen.smtp, 1, "*:25");
	assert_listen(&cfg->listen.submission, 0, NULL);
	assert_listen(&cfg->listen.submissions, 0, NULL);
	assert_listen(&cfg->listen.imap, 0, NULL);
	assert_listen(&cfg->listen.imaps, 0, NULL);
	assert_listen(&cfg->listen.http, 0, NULL);
	config_free(&cfg);

	cfg = expect_load("listen: {}\n");
	assert_listen(&cfg->listen.smtp, 0, NULL);
	assert_listen(&cfg->listen.http, 0, NULL);
	config_free(&cfg);

	/* The same port on two families, or two addresses, is fine. */
	cfg = expect_load("listen:\n  smtp: [0.0.0.0:25, '[::]:25']\n"
	    "  submission: [127.0.0.1:587, 192.0.2.1:587]\n");
	assert_listen(&cfg->listen.smtp, 2, "0.0.0.0:25");
	assert_listen(&cfg->listen.submission, 2, "127.0.0.1:587");
	config_free(&cfg);
}

struct value_case {
	const char *yaml;
	void (*check)(const struct config *cfg);
};

static void
check_nulls(const struct config *cfg)
{
	assert_null(cfg->user);
	assert_null(cfg->tls_cert);
	assert_null(cfg->tls_key);
	assert_null(cfg->outbound.smarthost);
}

static void
check_empty_lists(const struct config *cfg)
{
	assert_int_equal(cfg->ndomains, 0);
	assert_int_equal(cfg->nmynetworks, 0);
	assert_int_equal(cfg->outbound.ndns_servers, 0);
}

static void
check_bools_false(const struct config *cfg)
{
	assert_false(cfg->security_policy.require_email_confirmation);
	assert_false(cfg->security_policy.require_password_complexity);
	assert_false(cfg->security_policy.disable_smtp_auth_for_unconfirmed);
	assert_false(cfg->intrusion_prevention.enabled);
}

static void
check_relative_dir(const struct config *cfg)
{
	assert_string_equal(cfg->data_dir, "./spool/../var");
}

static void
check_limits_low(const struct config *cfg)
{
	assert_int_equal(cfg->smtp.max_line_length, 512);
	assert_int_equal(cfg->smtp.max_message_size, 1024);
	assert_int_equal(cfg->smtp.greet_pause_ms, 0);
	assert_int_equal(cfg->smtp.shutdown_timeout, 0);
	assert_int_equal(cfg->security_policy.max_failed_login_attempts, 0);
}

static void
check_limits_high(const struct config *cfg)
{
	assert_int_equal(cfg->smtp.max_line_length, 65536);
	assert_int_equal(cfg->smtp.max_message_size, 2147483647);
	assert_int_equal(cfg->smtp.greet_pause_ms, 60000);
}

static void
check_smarthost_v6(const struct config *cfg)
{
	assert_string_equal(cfg->outbound.smarthost, "[2001:db8::25]:25");
}

static void
check_smarthost_v4(const struct config *cfg)
{
	assert_string_equal(cfg->outbound.smarthost, "192.0.2.25:2525");
}

static void
check_incident_networks(const struct config *cfg)
{
	assert_int_equal(cfg->nmynetworks, 3);
	assert_cidr(&cfg->mynetworks[1], "::ffff:127.0.0.0/104");
}

static void
check_anchor_ignored(const struct config *cfg)
{
	assert_int_equal(cfg->smtp.max_errors, 7);
}

static const struct value_case value_cases[] = {
	{ .yaml = "user: null\ntls: {cert: ~, key: }\noutbound: {smarthost: Null}\n",
	  .check = check_nulls },
	{ .yaml = "domains: []\nmynetworks: []\noutbound: {dns_servers: []}\n",
	  .check = check_empty_lists },
	{ .yaml = "security_policy:\n  require_email_confirmation: false\n"
	  "  require_password_complexity: NO\n"
	  "  disable_smtp_auth_for_unconfirmed: False\n"
	  "intrusion_prevention: {enabled: no}\n", .check = check_bools_false },
	{ .yaml = "data_dir: ./spool/../var\n", .check = check_relative_dir },
	{ .yaml = "smtp: {max_line_length: 512, max_message_size: 1024,"
	  " greet_pause_ms: 0, shutdown_timeout: 0}\n"
	  "security_policy: {max_failed_login_attempts: 0}\n",
	  .check = check_limits_low },
	{ .yaml = "smtp: {max_line_length: 65536, max_message_size: 2147483647,"
	  " greet_pause_ms: 60000}\n", .check = check_limits_high },
	{ .yaml = "outbound:\n  smarthost: \"[2001:db8::25]:25\"\n",
	  .check = check_smarthost_v6 },
	{ .yaml = "outbound:\n  smarthost: 192.0.2.25:2525\n",
	  .check = check_smarthost_v4 },
	{ .yaml = "mynetworks: [127.0.0.0/8, '::ffff:127.0.0.0/104', '::1']\n",
	  .check = check_incident_networks },
	{ .yaml = "smtp: &s {max_errors: 7}\n", .check = check_anchor_ignored },
};

static void
test_values(void **state)
{
	for (size_t i = 0; i < N_ELEMENTS(value_cases); i++) {
		struct config *cfg = expect_load(value_cases[i].yaml);

		value_cases[i].check(cfg);
		config_free(&cfg);
	}
}

/* ---- errors, each with its line and key ---- */

struct error_case {
	const char *yaml;
	const char *error;   /* what follows NAME in the message */
};

static const struct error_case error_cases[] = {
	/* unknown keys, at every depth, and case matters */
	{ .yaml = "foo: 1\n", .error = ":1: unknown key 'foo'" },
	{ .yaml = "# c\nHostname: mail.example.org\n",
	  .error = ":2: unknown key 'Hostname'" },
	{ .yaml = "smtp:\n  max_errors: 5\n  foo: 1\n",
	  .error = ":3: unknown key 'smtp.foo'" },
	{ .yaml = "listen:\n  pop3: ['127.0.0.1:110']\n",
	  .error = ":2: unknown key 'listen.pop3'" },
	{ .yaml = "tls: {cert: a, keyy: b}\n", .error = ":1: unknown key 'tls.keyy'" },
	{ .yaml = "security_policy:\n\n  minimum_password_lenght: 12\n",
	  .error = ":3: unknown key 'security_policy.minimum_password_lenght'" },
	{ .yaml = "intrusion_prevention:\n  ignore_ip: [10.0.0.0/8]\n",
	  .error = ":2: unknown key 'intrusion_prevention.ignore_ip'" },
	{ .yaml = "queue_monitor:\n  interval: 5\n",
	  .error = ":2: unknown key 'queue_monitor.interval'" },
	{ .yaml = "outbound:\n  relayhost: x.example:25\n",
	  .error = ":2: unknown key 'outbound.relayhost'" },
	{ .yaml = "\"smtp.max_errors\": 5\n", .error = ":1: unknown key 'smtp.max_errors'" },
	{ .yaml = "a: &a [x]\nb: *a\n", .error = ":1: unknown key 'a'" },
	{ .yaml = "<<: {hostname: a.b}\n", .error = ":1: unknown key '<<'" },
	{ .yaml = "\"x\\ty\": 1\n", .error = ":1: unknown key 'x\\x09y'" },
	/* duplicates */
	{ .yaml = "hostname: a.example\nhostname: b.example\n",
	  .error = ":2: duplicate key 'hostname' (first on line 1)" },
	{ .yaml = "smtp:\n  max_errors: 5\n  max_recipients: 5\n  max_errors: 6\n",
	  .error = ":4: duplicate key 'smtp.max_errors' (first on line 2)" },
	{ .yaml = "smtp: {}\nsmtp: {}\n", .error = ":2: duplicate key 'smtp'" },
	/* structure */
	{ .yaml = "- a\n- b\n", .error = ":1: the top level must be a mapping" },
	{ .yaml = "just words\n", .error = ":1: the top level must be a mapping" },
	{ .yaml = "~\n", .error = ":1: the top level must be a mapping" },
	{ .yaml = "hostname: a.example\n---\nhostname: b.example\n",
	  .error = ":2: a second YAML document ('---')" },
	{ .yaml = "--- {}\n--- {}\n", .error = ":2: a second YAML document" },
	{ .yaml = "? [a]\n: b\n",
	  .error = ":1: a key must be a plain name, not a list or mapping" },
	{ .yaml = "smtp:\n  ? {a: b}\n  : c\n",
	  .error = ":2: smtp: a key must be a plain name" },
	{ .yaml = "*a : 1\n", .error = ":1: YAML" },
	{ .yaml = "hostname: !!str a.example\n",
	  .error = ":1: key 'hostname': YAML tags (!!type) are not supported" },
	{ .yaml = "smtp: !foo {}\n", .error = ":1: key 'smtp': YAML tags" },
	{ .yaml = "domains: [!!str a.example]\n", .error = ":1: key 'domains': YAML tags" },
	{ .yaml = "!!map {}\n", .error = ":1: YAML tags" },
	/* aliases: refused, with a clean message */
	{ .yaml = "smtp:\n  max_errors: &x 5\n  max_recipients: *x\n",
	  .error = ":3: key 'smtp.max_recipients': YAML aliases (*name) are not"
	  " supported" },
	{ .yaml = "domains: [&d a.example, *d]\n", .error = ":1: key 'domains': YAML aliases" },
	{ .yaml = "x: &x {}\n", .error = ":1: unknown key 'x'" },
	{ .yaml = "smtp: &s {}\nsecurity_policy: *s\n",
	  .error = ":2: key 'security_policy': YAML aliases" },
	{ .yaml = "--- &r {}\n", .error = "" },   /* an anchor alone loads */
	/* syntax */
	{ .yaml = "hostname: [a\n", .error = ":1: key 'hostname': expected a string" },
	{ .yaml = "domains: [a.example\n", .error = ":2: YAML syntax error:" },
	{ .yaml = "\thostname: x\n", .error = ":1: YAML syntax error:" },
	{ .yaml = "hostname: a.b: c\n", .error = ":1: YAML syntax error:" },
	{ .yaml = "smtp:\n  max_errors: 5\n bad: 1\n", .error = ":3: YAML syntax error:" },
	{ .yaml = "mynetworks: [::1/128]\n", .error = ":1: YAML syntax error:" },
	{ .yaml = "listen:\n  smtp: [*:25]\n", .error = ":2: YAML syntax error:" },
	{ .yaml = "# ok\nhostname: \"\\q\"\n", .error = ":2: YAML syntax error:" },
	{ .yaml = "# ok\n# ok\nhostname: \xff\n", .error = ":3: not valid YAML text:" },
	{ .yaml = "hostname: \xc3\x28\n", .error = ":1: not valid YAML text:" },
	{ .yaml = "hostname: \"a\x01\"\n", .error = ":1: not valid YAML text:" },
	/* strings */
	{ .yaml = "hostname: \"a\\0b\"\n", .error = ":1: key 'hostname': contains a NUL byte" },
	{ .yaml = "hostname: mail\n",
	  .error = ":1: key 'hostname': 'mail' is not a fully qualified domain name" },
	{ .yaml = "hostname: mail.example.test.\n",
	  .error = ":1: key 'hostname': 'mail.example.test.' has a trailing dot" },
	{ .yaml = "hostname: -mail.example.test\n",
	  .error = ":1: key 'hostname': '-mail.example.test' is not a valid host name" },
	{ .yaml = "hostname: mail_1.example.test\n",
	  .error = ":1: key 'hostname': 'mail_1.example.test' is not a valid host name" },
	{ .yaml = "hostname: 192.0.2.1\n",
	  .error = ":1: key 'hostname': '192.0.2.1' is not a valid host name" },
	{ .yaml = "hostname: a..example\n", .error = ":1: key 'hostname': 'a..example' is not" },
	{ .yaml = "hostname: \"m\xc3\xa4il.example\"\n",
	  .error = ":1: key 'hostname': 'm\\xc3\\xa4il.example' is not a valid host name" },
	{ .yaml = "hostname: ''\n", .error = ":1: key 'hostname': expected a string, not an empty" },
	{ .yaml = "hostname:\n", .error = ":1: key 'hostname': expected a string, not null" },
	{ .yaml = "data_dir: ~\n", .error = ":1: key 'data_dir': expected a string, not null" },
	{ .yaml = "data_dir: \"\"\n", .error = ":1: key 'data_dir': expected a string, not an empty" },
	{ .yaml = "tls: {cert: ''}\n",
	  .error = ":1: key 'tls.cert': expected a string, not an empty string (write null" },
	{ .yaml = "user: 'bulwark mail'\n", .error = ":1: key 'user': 'bulwark\\x20mail' is not a valid user name" },
	{ .yaml = "user: -bulwark\n", .error = ":1: key 'user': '-bulwark' is not a valid" },
	{ .yaml = "user: abcdefghijklmnopqrstuvwxyzabcdefg\n", .error = ":1: key 'user': 'abc" },
	{ .yaml = "log_level: verbose\n",
	  .error = ":1: key 'log_level': expected one of debug, info, warning, error" },
	{ .yaml = "log_level: DEBUG\n", .error = ":1: key 'log_level': expected one of" },
	{ .yaml = "log_level: ~\n",
	  .error = ":1: key 'log_level': expected one of debug, info, warning, error, not null" },
	/* domains */
	{ .yaml = "domains: [example.test.]\n",
	  .error = ":1: key 'domains': 'example.test.' has a trailing dot" },
	{ .yaml = "domains:\n  - good.example\n  - bad_one.example\n",
	  .error = ":3: key 'domains': 'bad_one.example' is not a valid host name" },
	{ .yaml = "domains: [a.example, A.Example]\n",
	  .error = ":1: key 'domains': 'A.Example' is listed twice" },
	{ .yaml = "domains: [\"\"]\n",
	  .error = ":1: key 'domains': expected a string, not an empty string" },
	{ .yaml = "domains: [~]\n", .error = ":1: key 'domains': expected a string, not null" },
	{ .yaml = "mynetworks: [127.0.0.1, '']\n",
	  .error = ":1: key 'mynetworks': expected a string, not an empty string" },
	{ .yaml = "listen:\n  smtp: [null]\n",
	  .error = ":2: key 'listen.smtp': expected a string, not null" },
	{ .yaml = "domains: example.test\n", .error = ":1: key 'domains': expected a list (write [] for none)" },
	/* networks */
	{ .yaml = "mynetworks: [127.0.0.0/8, 10.0.0.1/8]\n",
	  .error = ":1: key 'mynetworks': bad network '10.0.0.1/8': host bits set" },
	{ .yaml = "mynetworks:\n  - 127.0.0.0/8\n  - 10.0.0.0/33\n",
	  .error = ":3: key 'mynetworks': bad network '10.0.0.0/33': bad prefix length" },
	{ .yaml = "mynetworks: [localhost]\n",
	  .error = ":1: key 'mynetworks': bad network 'localhost': not an IP address" },
	{ .yaml = "mynetworks: ['::1/64']\n",
	  .error = ":1: key 'mynetworks': bad network '::1/64': host bits set" },
	{ .yaml = "mynetworks: 127.0.0.0/8\n", .error = ":1: key 'mynetworks': expected a list" },
	{ .yaml = "mynetworks: [[127.0.0.0/8]]\n",
	  .error = ":1: key 'mynetworks': expected a list of strings, not a nested" },
	/* listen */
	{ .yaml = "listen:\n  smtp: [localhost:25]\n",
	  .error = ":2: key 'listen.smtp': bad address 'localhost:25': not an IPv4 address" },
	{ .yaml = "listen:\n  imap: ['[::1]:0']\n",
	  .error = ":2: key 'listen.imap': bad address '[::1]:0': bad port" },
	{ .yaml = "listen:\n  http: ['::1:80']\n",
	  .error = ":2: key 'listen.http': bad address '::1:80': an IPv6 address needs brackets" },
	{ .yaml = "listen:\n  smtp: [127.0.0.1:25]\n  submission: [127.0.0.1:25]\n",
	  .error = ":3: key 'listen.submission': address '127.0.0.1:25' is already used by"
	  " listen.smtp" },
	{ .yaml = "listen:\n  smtp: ['*:25', 0.0.0.0:25]\n",
	  .error = ":2: key 'listen.smtp': address '0.0.0.0:25' is already used by listen.smtp" },
	{ .yaml = "listen:\n  smtp: 127.0.0.1:25\n", .error = ":2: key 'listen.smtp': expected a list" },
	{ .yaml = "listen:\n", .error = ":1: key 'listen': expected a mapping" },
	/* outbound */
	{ .yaml = "outbound:\n  smarthost: relay.example.net\n",
	  .error = ":2: key 'outbound.smarthost': bad smarthost 'relay.example.net': expected HOST:PORT" },
	{ .yaml = "outbound:\n  smarthost: relay.example.net:0\n",
	  .error = ":2: key 'outbound.smarthost': bad smarthost" },
	{ .yaml = "outbound:\n  smarthost: 2001:db8::1:25\n",
	  .error = ":2: key 'outbound.smarthost': bad smarthost '2001:db8::1:25': an IPv6" },
	{ .yaml = "outbound:\n  smarthost: '[relay.example]:25'\n",
	  .error = ":2: key 'outbound.smarthost': bad smarthost '[relay.example]:25': not an IPv6" },
	{ .yaml = "outbound:\n  smarthost: bad_host.example:25\n",
	  .error = ":2: key 'outbound.smarthost': bad smarthost 'bad_host.example:25': the host" },
	{ .yaml = "outbound:\n  dns_servers: [192.0.2.53]\n",
	  .error = ":2: key 'outbound.dns_servers': bad resolver '192.0.2.53': expected ADDRESS:PORT" },
	{ .yaml = "outbound:\n  dns_servers: ['*:53']\n",
	  .error = ":2: key 'outbound.dns_servers': bad resolver '*:53': a resolver needs" },
	{ .yaml = "outbound:\n  dns_servers: [ns.example:53]\n",
	  .error = ":2: key 'outbound.dns_servers': bad resolver 'ns.example:53': not an IPv4" },
	/* integers */
	{ .yaml = "smtp:\n  max_line_length: 511\n",
	  .error = ":2: key 'smtp.max_line_length': 511 is out of range 512..65536" },
	{ .yaml = "smtp:\n  max_line_length: 65537\n",
	  .error = ":2: key 'smtp.max_line_length': 65537 is out of range 512..65536" },
	{ .yaml = "smtp:\n  max_errors: 0\n",
	  .error = ":2: key 'smtp.max_errors': 0 is out of range 1..1000" },
	{ .yaml = "smtp:\n  max_errors: -1\n",
	  .error = ":2: key 'smtp.max_errors': -1 is out of range 1..1000" },
	{ .yaml = "smtp:\n  max_message_size: 99999999999999999999\n",
	  .error = ":2: key 'smtp.max_message_size': expected an integer" },
	{ .yaml = "smtp:\n  max_message_size: 999999999999999999\n",
	  .error = ":2: key 'smtp.max_message_size': 999999999999999999 is out of range" },
	{ .yaml = "smtp:\n  max_message_size: -999999999999999999\n",
	  .error = ":2: key 'smtp.max_message_size': -999999999999999999 is out of range" },
	{ .yaml = "smtp:\n  max_errors: 5  # five\n  idle_timeout: 1e3\n",
	  .error = ":3: key 'smtp.idle_timeout': expected an integer" },
	{ .yaml = "smtp:\n  max_errors: '-'\n", .error = ":2: key 'smtp.max_errors': expected an integer" },
	{ .yaml = "smtp:\n  bare_lf: strip\n",
	  .error = ":2: key 'smtp.bare_lf': expected normalize or reject" },
	{ .yaml = "smtp:\n  bare_lf: Reject\n",
	  .error = ":2: key 'smtp.bare_lf': expected normalize or reject" },
	{ .yaml = "smtp:\n  bare_lf: [reject]\n",
	  .error = ":2: key 'smtp.bare_lf': expected normalize or reject" },
	{ .yaml = "security_policy:\n  minimum_password_length: 0\n",
	  .error = ":2: key 'security_policy.minimum_password_length': 0 is out of range 1..1024" },
	{ .yaml = "intrusion_prevention:\n  bantime: -1\n",
	  .error = ":2: key 'intrusion_prevention.bantime': -1 is out of range" },
	/* booleans */
	{ .yaml = "allow_nonlocal_mynetworks: on\n",
	  .error = ":1: key 'allow_nonlocal_mynetworks': expected a boolean (true/false/yes/no)" },
	{ .yaml = "allow_nonlocal_mynetworks: 'true'\n",
	  .error = ":1: key 'allow_nonlocal_mynetworks': expected a boolean" },
};

/* queue_monitor: the detectors' nested keys, the command's checks. */
static void
test_queue_monitor_keys(void **state)
{
	struct config *cfg = expect_load(
	    "queue_monitor:\n"
	    "  alert_command: /usr/bin/curl -sS --data-binary @- https://hook.example/x\n"
	    "  alert_command_timeout: 5\n"
	    "  containment: false\n"
	    "  messages_per_hour: 7\n"
	    "  recipients_per_hour: 70\n"
	    "  detectors:\n"
	    "    rate_limit: {enabled: false}\n"
	    "    distinct_domains: {threshold: 9, window_seconds: 60}\n"
	    "    deferral_ratio: {enabled: yes, threshold: 100, min_samples: 1}\n"
	    "    from_mismatch:\n"
	    "      enabled: no\n"
	    "    same_subject: {threshold: 1000000, window_seconds: 86400}\n");
	const struct config_queue_monitor *qm = &cfg->queue_monitor;

	(void)state;
	assert_string_equal(qm->alert_command, "/usr/bin/curl -sS --data-binary @- https://hook.example/x");
	assert_int_equal(qm->alert_command_timeout, 5);
	assert_int_equal(qm->alert_repeat_seconds, 3600);
	assert_false(qm->containment);
	assert_int_equal(qm->messages_per_hour, 7);
	assert_int_equal(qm->recipients_per_hour, 70);
	assert_false(qm->detectors.rate_limit.enabled);
	assert_true(qm->detectors.distinct_domains.enabled);
	assert_int_equal(qm->detectors.distinct_domains.threshold, 9);
	assert_int_equal(qm->detectors.distinct_domains.window_seconds, 60);
	assert_int_equal(qm->detectors.deferral_ratio.threshold, 100);
	assert_int_equal(qm->detectors.deferral_ratio.min_samples, 1);
	assert_int_equal(qm->detectors.deferral_ratio.window_seconds, 3600);
	assert_false(qm->detectors.from_mismatch.enabled);
	assert_int_equal(qm->detectors.from_mismatch.threshold, 3);
	assert_int_equal(qm->detectors.same_subject.threshold, 1000000);
	config_free(&cfg);

	cfg = expect_load("");
	qm = &cfg->queue_monitor;
	assert_null(qm->alert_command);
	assert_true(qm->containment);
	assert_int_equal(qm->messages_per_hour, 100);
	assert_int_equal(qm->recipients_per_hour, 500);
	assert_true(qm->detectors.same_subject.enabled);
	assert_int_equal(qm->detectors.deferral_ratio.threshold, 60);
	config_free(&cfg);

	expect_error("queue_monitor:\n  alert_command: curl -d @- https://x\n",
	    ":2: key 'queue_monitor.alert_command': expected an absolute program path");
	expect_error("queue_monitor:\n  alert_command: \"/bin/x\\ty\"\n",
	    ":2: key 'queue_monitor.alert_command': contains a control character");
	expect_error("queue_monitor:\n  detectors:\n    bogus: {enabled: true}\n",
	    ":3: unknown key 'queue_monitor.detectors.bogus'");
	expect_error("queue_monitor:\n  detectors:\n    rate_limit: {threshold: 3}\n",
	    ":3: unknown key 'queue_monitor.detectors.rate_limit.threshold'");
	expect_error("queue_monitor:\n  detectors:\n    deferral_ratio: {threshold: 101}\n",
	    ":3: key 'queue_monitor.detectors.deferral_ratio.threshold': 101 is out of range 1..100");
	expect_error("queue_monitor:\n  detectors:\n    same_subject: {min_samples: 3}\n",
	    ":3: unknown key 'queue_monitor.detectors.same_subject.min_samples'");
}

static void
test_errors(void **state)
{
	for (size_t i = 0; i < N_ELEMENTS(error_cases); i++) {
		const struct error_case *c = &error_cases[i];

		if (*c->error == '\0') {
			struct config *cfg = expect_load(c->yaml);

			config_free(&cfg);
			continue;
		}
		expect_error(c->yaml, c->error);
	}
}

/* ---- every key, every wrong type ---- */

enum kind { K_INT, K_BOOL, K_STRING, K_NULLABLE, K_LIST, K_SECTION, K_ENUM };

struct key_case {
	const char *section;   /* NULL at the top level */
	const char *key;
	enum kind kind;
	long long min, max;    /* K_INT */
	const char *expected;  /* K_ENUM */
};

static const struct key_case key_cases[] = {
	{ .key = "hostname", .kind = K_STRING },
	{ .key = "domains", .kind = K_LIST },
	{ .key = "data_dir", .kind = K_STRING },
	{ .key = "user", .kind = K_NULLABLE },
	{ .key = "log_level", .kind = K_ENUM,
	  .expected = "expected one of debug, info, warning, error" },
	{ .key = "listen", .kind = K_SECTION },
	{ .key = "tls", .kind = K_SECTION },
	{ .key = "mynetworks", .kind = K_LIST },
	{ .key = "allow_nonlocal_mynetworks", .kind = K_BOOL },
	{ .key = "outbound", .kind = K_SECTION },
	{ .key = "smtp", .kind = K_SECTION },
	{ .key = "security_policy", .kind = K_SECTION },
	{ .key = "intrusion_prevention", .kind = K_SECTION },
	{ .key = "queue_monitor", .kind = K_SECTION },
	{ .section = "listen", .key = "smtp", .kind = K_LIST },
	{ .section = "listen", .key = "submission", .kind = K_LIST },
	{ .section = "listen", .key = "submissions", .kind = K_LIST },
	{ .section = "listen", .key = "imap", .kind = K_LIST },
	{ .section = "listen", .key = "imaps", .kind = K_LIST },
	{ .section = "listen", .key = "http", .kind = K_LIST },
	{ .section = "tls", .key = "cert", .kind = K_NULLABLE },
	{ .section = "tls", .key = "key", .kind = K_NULLABLE },
	{ .section = "outbound", .key = "smarthost", .kind = K_NULLABLE },
	{ .section = "outbound", .key = "dns_servers", .kind = K_LIST },
	{ .section = "smtp", .key = "max_line_length", .kind = K_INT, .min = 512, .max = 65536 },
	{ .section = "smtp", .key = "max_message_size", .kind = K_INT, .min = 1024,
	  .max = 2147483647 },
	{ .section = "smtp", .key = "max_recipients", .kind = K_INT, .min = 1, .max = 100000 },
	{ .section = "smtp", .key = "max_errors", .kind = K_INT, .min = 1, .max = 1000 },
	{ .section = "smtp", .key = "idle_timeout", .kind = K_INT, .min = 1, .max = 86400 },
	{ .section = "smtp", .key = "data_timeout", .kind = K_INT, .min = 1, .max = 86400 },
	{ .section = "smtp", .key = "max_connections_per_ip", .kind = K_INT, .min = 1,
	  .max = 1000000 },
	{ .section = "smtp", .key = "max_connections", .kind = K_INT, .min = 1, .max = 1000000 },
	{ .section = "smtp", .key = "greet_pause_ms", .kind = K_INT, .min = 0, .max = 60000 },
	{ .section = "smtp", .key = "bare_lf", .kind = K_ENUM,
	  .expected = "expected normalize or reject" },
	{ .section = "smtp", .key = "shutdown_timeout", .kind = K_INT, .min = 0, .max = 3600 },
	{ .section = "security_policy", .key = "require_email_confirmation", .kind = K_BOOL },
	{ .section = "security_policy", .key = "max_failed_login_attempts", .kind = K_INT,
	  .min = 0, .max = 1000 },
	{ .section = "security_policy", .key = "account_lockout_duration_minutes",
	  .kind = K_INT, .min = 0, .max = 525600 },
	{ .section = "security_policy", .key = "minimum_password_length", .kind = K_INT,
	  .min = 1, .max = 1024 },
	{ .section = "security_policy", .key = "require_password_complexity", .kind = K_BOOL },
	{ .section = "security_policy", .key = "disable_smtp_auth_for_unconfirmed",
	  .kind = K_BOOL },
	{ .section = "intrusion_prevention", .key = "enabled", .kind = K_BOOL },
	{ .section = "intrusion_prevention", .key = "maxretry", .kind = K_INT, .min = 1,
	  .max = 1000 },
	{ .section = "intrusion_prevention", .key = "findtime", .kind = K_INT, .min = 1,
	  .max = 31536000 },
	{ .section = "intrusion_prevention", .key = "bantime", .kind = K_INT, .min = 1,
	  .max = 31536000 },
	{ .section = "queue_monitor", .key = "interval_seconds", .kind = K_INT, .min = 1,
	  .max = 86400 },
	{ .section = "queue_monitor", .key = "alert_threshold", .kind = K_INT, .min = 1,
	  .max = 1000000 },
	{ .section = "queue_monitor", .key = "alert_command", .kind = K_NULLABLE },
	{ .section = "queue_monitor", .key = "alert_command_timeout", .kind = K_INT, .min = 1,
	  .max = 3600 },
	{ .section = "queue_monitor", .key = "alert_repeat_seconds", .kind = K_INT, .min = 1,
	  .max = 604800 },
	{ .section = "queue_monitor", .key = "containment", .kind = K_BOOL },
	{ .section = "queue_monitor", .key = "messages_per_hour", .kind = K_INT, .min = 1,
	  .max = 10000000 },
	{ .section = "queue_monitor", .key = "recipients_per_hour", .kind = K_INT, .min = 1,
	  .max = 10000000 },
	{ .section = "queue_monitor", .key = "detectors", .kind = K_SECTION },
};

/* Wrong values per kind; each must fail with the kind's message. */
static const char *const wrong_int[] = {
	"ten", "[1]", "{a: 1}", "1.5", "0x10", "010", "1_000", "+5", "\"10\"", "~", "",
	"12abc", "--1", "1 2",
};
static const char *const wrong_bool[] = {
	"maybe", "1", "0", "on", "off", "[true]", "{a: b}", "\"true\"", "'no'", "~", "",
};
static const char *const wrong_string[] = { "[a]", "{a: b}", "[]", "\"\"" };
static const char *const wrong_list[] = {
	"scalar", "{a: b}", "~", "", "[[a]]", "[{a: b}]", "\"[]\"",
};
static const char *const wrong_section[] = { "scalar", "[a]", "~", "", "[]", "'{}'" };
static const char *const wrong_enum[] = { "[a]", "{a: b}", "bogus" };

/* Build "# line 1\nKEY: VALUE\n" or "# line 1\nSECTION:\n  KEY: VALUE\n". */
static char *
key_yaml(const struct key_case *c, const char *value)
{
	char *yaml;

	if (c->section != NULL)
		assert_true(asprintf(&yaml, "# line 1\n%s:\n  %s: %s\n", c->section,
		    c->key, value) > 0);
	else
		assert_true(asprintf(&yaml, "# line 1\n%s: %s\n", c->key, value) > 0);
	return yaml;
}

static const char *
kind_message(const struct key_case *c)
{
	switch (c->kind) {
	case K_INT: return "expected an integer";
	case K_BOOL: return "expected a boolean (true/false/yes/no)";
	case K_STRING: case K_NULLABLE: return "expected a string";
	case K_LIST: return "expected a list";
	case K_SECTION: return "expected a mapping";
	case K_ENUM: return c->expected;
	}
	return "?";
}

static void
expect_key_error(const struct key_case *c, const char *value, const char *message)
{
	char *yaml = key_yaml(c, value), *expect;

	assert_true(asprintf(&expect, ":%d: key '%s%s%s': %s",
	    c->section != NULL ? 3 : 2, c->section != NULL ? c->section : "",
	    c->section != NULL ? "." : "", c->key, message) > 0);
	expect_error(yaml, expect);
	free(expect);
	free(yaml);
}

static void
expect_key_loads(const struct key_case *c, const char *value)
{
	char *yaml = key_yaml(c, value);
	struct config *cfg = expect_load(yaml);

	config_free(&cfg);
	free(yaml);
}

static void
check_wrong(const struct key_case *c, const char *const *values, size_t n)
{
	for (size_t i = 0; i < n; i++)
		expect_key_error(c, values[i], kind_message(c));
}

/* Integers: the bounds load, one past them is out of range. */
static void
check_int_range(const struct key_case *c)
{
	char value[32], message[96];

	snprintf(value, sizeof(value), "%lld", c->min);
	expect_key_loads(c, value);
	snprintf(value, sizeof(value), "%lld", c->max);
	expect_key_loads(c, value);
	snprintf(value, sizeof(value), "%lld", c->min - 1);
	snprintf(message, sizeof(message), "%lld is out of range %lld..%lld",
	    c->min - 1, c->min, c->max);
	expect_key_error(c, value, message);
	snprintf(value, sizeof(value), "%lld", c->max + 1);
	snprintf(message, sizeof(message), "%lld is out of range %lld..%lld",
	    c->max + 1, c->min, c->max);
	expect_key_error(c, value, message);
}

static void
test_every_key_wrong_type(void **state)
{
	for (size_t i = 0; i < N_ELEMENTS(key_cases); i++) {
		const struct key_case *c = &key_cases[i];

		switch (c->kind) {
		case K_INT:
			check_wrong(c, wrong_int, N_ELEMENTS(wrong_int));
			check_int_range(c);
			break;
		case K_BOOL:
			check_wrong(c, wrong_bool, N_ELEMENTS(wrong_bool));
			expect_key_loads(c, "FALSE");
			break;
		case K_STRING:
			check_wrong(c, wrong_string, N_ELEMENTS(wrong_string));
			expect_key_error(c, "~", "expected a string, not null");
			break;
		case K_NULLABLE:
			check_wrong(c, wrong_string, N_ELEMENTS(wrong_string));
			expect_key_loads(c, "~");
			expect_key_loads(c, "null");
			expect_key_loads(c, "");
			break;
		case K_LIST:
			check_wrong(c, wrong_list, N_ELEMENTS(wrong_list));
			expect_key_loads(c, "[]");
			break;
		case K_SECTION:
			check_wrong(c, wrong_section, N_ELEMENTS(wrong_section));
			expect_key_loads(c, "{}");
			break;
		case K_ENUM:
			check_wrong(c, wrong_enum, N_ELEMENTS(wrong_enum));
			break;
		}
	}
}

/* ---- hostile input: never a crash, never a leak, always a clean error ---- */

static char *
repeat(const char *head, const char *unit, size_t n, const char *tail)
{
	size_t hl = strlen(head), ul = strlen(unit), tl = strlen(tail);
	char *s = malloc(hl + ul * n + tl + 1), *p = s;

	assert_non_null(s);
	memcpy(p, head, hl);
	p += hl;
	for (size_t i = 0; i < n; i++, p += ul)
		memcpy(p, unit, ul);
	memcpy(p, tail, tl + 1);
	return s;
}

static void
test_hostile(void **state)
{
	char *s;

	s = repeat("hostname: ", "[", 10000, "\n");
	expect_error(s, ":1: key 'hostname': expected a string");
	free(s);
	s = repeat("", "[", 10000, "\n");
	expect_error(s, ":1: the top level must be a mapping");
	free(s);
	s = repeat("domains: ", "[", 10000, "\n");
	expect_error(s, ":1: key 'domains': expected a list of strings, not a nested");
	free(s);
	s = repeat("smtp:\n", "  ", 1, "x:\n");
	expect_error(s, ":2: unknown key 'smtp.x'");
	free(s);
	s = repeat("foo:\n", " a:\n", 2000, "");
	expect_error(s, ":1: unknown key 'foo'");
	free(s);
	/* Billion laughs: the first alias is refused, nothing expands. */
	expect_error("domains: &a [x.example, x.example]\nmynetworks: [*a, *a]\n",
	    ":1: key 'domains': 'x.example' is listed twice");
	expect_error("mynetworks: &a ['::1']\ndomains: *a\n",
	    ":2: key 'domains': YAML aliases");
	/* Over 1024 list entries. */
	s = repeat("mynetworks: [", "127.0.0.1, ", 1100, "]\n");
	expect_error(s, ":1: key 'mynetworks': too many entries (at most 1024)");
	free(s);
	/* A value longer than any path. */
	s = repeat("data_dir: ", "a", 5000, "\n");
	expect_error(s, ":1: key 'data_dir': value too long (at most 4096 bytes)");
	free(s);
	/* NUL bytes in the raw text. */
	expect_error_len("hostname: a\0b\n", 14, ":1: not valid YAML text:");
	expect_error_len("\0", 1, ":1: not valid YAML text:");
}

static void
test_too_large(void **state)
{
	char *s = repeat("", "# padding padding padding padding\n", 40000, "");
	struct config *cfg = NULL;
	char *error = NULL;

	assert_int_equal(config_load_string(NAME, s, strlen(s), &cfg, &error), -1);
	assert_null(cfg);
	assert_string_equal(error, NAME ": too large (over 1048576 bytes)");
	free(error);
	char *path = temp_file(s, strlen(s));
	assert_int_equal(config_load(path, &cfg, &error), -1);
	assert_non_null(strstr(error, ": too large (over 1048576 bytes)"));
	free(error);
	unlink(path);
	free(path);
	free(s);
}

static void
test_load_file_errors(void **state)
{
	struct config *cfg = NULL;
	char *error = NULL;

	assert_int_equal(config_load("/nonexistent/bulwark.yaml", &cfg, &error), -1);
	assert_null(cfg);
	assert_string_equal(error, "/nonexistent/bulwark.yaml: No such file or directory");
	free(error);
	assert_int_equal(config_load("/", &cfg, &error), -1);
	assert_string_equal(error, "/: Is a directory");
	free(error);
	/* No text at all is an empty config. */
	assert_int_equal(config_load_string(NULL, NULL, 0, &cfg, &error), 0);
	assert_defaults(cfg);
	config_free(&cfg);
	config_free(&cfg);
	config_free(NULL);
}

/* ---- the production example ---- */

static void
test_production_example(void **state)
{
	char *path = source_path("etc/bulwark.production.yaml"), *error = NULL;
	struct config *cfg = NULL;

	if (config_load(path, &cfg, &error) != 0)
		fail_msg("%s", error);
	assert_listen(&cfg->listen.smtp, 2, "0.0.0.0:25");
	assert_int_equal(listen_port(&cfg->listen.smtp.v[1]), 25);
	assert_int_equal(cfg->listen.smtp.v[1].ss.ss_family, AF_INET6);
	assert_int_equal(listen_port(&cfg->listen.submission.v[0]), 587);
	assert_int_equal(listen_port(&cfg->listen.submissions.v[0]), 465);
	assert_int_equal(listen_port(&cfg->listen.imap.v[0]), 143);
	assert_int_equal(listen_port(&cfg->listen.imaps.v[0]), 993);
	/* plain HTTP behind an HTTPS reverse proxy (see the file) */
	assert_int_equal(listen_port(&cfg->listen.http.v[0]), 8080);
	assert_string_equal(cfg->http.public_url, "https://mail.example.org");
	assert_string_equal(cfg->data_dir, "/var/lib/bulwark");
	assert_string_equal(cfg->user, "bulwark");
	assert_non_null(strstr(cfg->tls_cert, "/etc/letsencrypt/"));
	assert_non_null(strstr(cfg->tls_key, "/etc/letsencrypt/"));
	for (size_t i = 0; i < cfg->nmynetworks; i++)
		assert_true(cidr_is_loopback(&cfg->mynetworks[i]));
	assert_false(cfg->allow_nonlocal_mynetworks);
	/* A real deployment audits clean: no errors, no warnings. */
	assert_int_equal(config_audit(cfg, NULL, NULL), 0);
	config_free(&cfg);
	free(path);
}

/* ---- config_is_local_domain ---- */

static void
test_is_local_domain(void **state)
{
	struct config *cfg = expect_load("domains: [example.test, Other.Example]\n");

	assert_true(config_is_local_domain(cfg, "example.test"));
	assert_true(config_is_local_domain(cfg, "EXAMPLE.Test"));
	assert_true(config_is_local_domain(cfg, "other.example"));
	assert_false(config_is_local_domain(cfg, "example.test."));
	assert_false(config_is_local_domain(cfg, "sub.example.test"));
	assert_false(config_is_local_domain(cfg, "test"));
	assert_false(config_is_local_domain(cfg, ""));
	assert_false(config_is_local_domain(cfg, NULL));
	assert_false(config_is_local_domain(NULL, "example.test"));
	config_free(&cfg);
}

/* ---- audit ---- */

#define MAX_FINDINGS 16

struct finding {
	enum config_audit_severity sev;
	char key[96];
	char message[512];
};

struct findings {
	struct finding v[MAX_FINDINGS];
	size_t n;
};

static void
collect(void *ctx, enum config_audit_severity sev, const char *key,
    const char *message)
{
	struct findings *f = ctx;

	assert_true(f->n < MAX_FINDINGS);
	assert_non_null(key);
	assert_non_null(message);
	/* Every message reads alone: it starts with its key. */
	assert_int_equal(strncmp(message, key, strlen(key)), 0);
	f->v[f->n].sev = sev;
	snprintf(f->v[f->n].key, sizeof(f->v[f->n].key), "%s", key);
	snprintf(f->v[f->n].message, sizeof(f->v[f->n].message), "%s", message);
	f->n++;
}

struct audit_case {
	const char *yaml;
	size_t findings;          /* how many in all */
	int errors;               /* config_audit's return */
	enum config_audit_severity sev;   /* of the finding named by key */
	const char *key;          /* NULL: no finding expected */
	const char *message;      /* substring of its message */
};

#define ALLOW "allow_nonlocal_mynetworks: true\n"
#define E CONFIG_AUDIT_ERROR
#define W CONFIG_AUDIT_WARNING

static const struct audit_case audit_cases[] = {
	{ .yaml = "", .findings = 0, .errors = 0 },
	{ .yaml = "mynetworks: [127.0.0.1, '::1', '::ffff:127.0.0.0/104']\n",
	  .findings = 0, .errors = 0 },
	{ .yaml = "mynetworks: []\n", .findings = 0, .errors = 0 },
	{ .yaml = ALLOW, .findings = 0, .errors = 0 },
	/* the incident's networks: refused, or loudly allowed */
	{ .yaml = "mynetworks: [10.0.0.0/8]\n", .findings = 1, .errors = 1,
	  .sev = E, .key = "mynetworks",
	  .message = "mynetworks: 10.0.0.0/8 is not loopback: every host there may"
	  " relay mail without authentication (the incident's open relay); keep"
	  " mynetworks to loopback" },
	{ .yaml = ALLOW "mynetworks: [10.0.0.0/8]\n", .findings = 1, .errors = 0,
	  .sev = W, .key = "mynetworks",
	  .message = "mynetworks: 10.0.0.0/8 is not loopback: every host there may"
	  " relay mail without authentication (the incident's open relay)" },
	{ .yaml = "mynetworks: [172.16.0.0/12]\n", .findings = 1, .errors = 1,
	  .sev = E, .key = "mynetworks", .message = "172.16.0.0/12 is not loopback" },
	{ .yaml = ALLOW "mynetworks: [172.16.0.0/12]\n", .findings = 1, .errors = 0,
	  .sev = W, .key = "mynetworks", .message = "172.16.0.0/12 is not loopback" },
	{ .yaml = "mynetworks: [192.168.0.0/16]\n", .findings = 1, .errors = 1,
	  .sev = E, .key = "mynetworks", .message = "192.168.0.0/16 is not loopback" },
	{ .yaml = ALLOW "mynetworks: [192.168.0.0/16]\n", .findings = 1, .errors = 0,
	  .sev = W, .key = "mynetworks", .message = "192.168.0.0/16 is not loopback" },
	{ .yaml = "mynetworks: [0.0.0.0/0]\n", .findings = 1, .errors = 1,
	  .sev = E, .key = "mynetworks",
	  .message = "mynetworks: 0.0.0.0/0 is every IPv4 address on the Internet:"
	  " anyone anywhere may relay" },
	{ .yaml = ALLOW "mynetworks: [0.0.0.0/0]\n", .findings = 1, .errors = 0,
	  .sev = W, .key = "mynetworks", .message = "0.0.0.0/0 is every IPv4 address" },
	{ .yaml = "mynetworks: ['::/0']\n", .findings = 1, .errors = 1,
	  .sev = E, .key = "mynetworks", .message = "::/0 is every IPv6 address" },
	{ .yaml = ALLOW "mynetworks: ['::/0']\n", .findings = 1, .errors = 0,
	  .sev = W, .key = "mynetworks", .message = "::/0 is every IPv6 address" },
	{ .yaml = "mynetworks: ['::ffff:0.0.0.0/96']\n", .findings = 1, .errors = 1,
	  .sev = E, .key = "mynetworks", .message = "is every IPv4 address" },
	{ .yaml = "mynetworks: [127.0.0.0/8, '::ffff:127.0.0.0/104', '::1/128',"
	  " 10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16]\n", .findings = 3, .errors = 3,
	  .sev = E, .key = "mynetworks", .message = "192.168.0.0/16 is not loopback" },
	{ .yaml = "mynetworks: [126.0.0.0/7]\n", .findings = 1, .errors = 1,
	  .sev = E, .key = "mynetworks", .message = "126.0.0.0/7 is not loopback" },
	/* identity */
	{ .yaml = "domains: []\n", .findings = 1, .errors = 1, .sev = E,
	  .key = "domains", .message = "domains: empty" },
	{ .yaml = "tls: {cert: /etc/ssl/c.pem}\n", .findings = 1, .errors = 1,
	  .sev = E, .key = "tls.key",
	  .message = "tls.key: tls.cert is set but tls.key is not" },
	{ .yaml = "tls: {key: /etc/ssl/k.pem}\n", .findings = 1, .errors = 1,
	  .sev = E, .key = "tls.cert",
	  .message = "tls.cert: tls.key is set but tls.cert is not" },
	{ .yaml = "tls: {cert: /c.pem, key: /k.pem}\n", .findings = 0, .errors = 0 },
	/* security_policy: each key weaker than its default */
	{ .yaml = "security_policy: {require_email_confirmation: false}\n",
	  .findings = 1, .sev = W, .key = "security_policy.require_email_confirmation",
	  .message = "security_policy.require_email_confirmation: false" },
	{ .yaml = "security_policy: {max_failed_login_attempts: 4}\n",
	  .findings = 1, .sev = W, .key = "security_policy.max_failed_login_attempts",
	  .message = "4 is weaker than the default 3" },
	{ .yaml = "security_policy: {max_failed_login_attempts: 0}\n",
	  .findings = 1, .sev = W, .key = "security_policy.max_failed_login_attempts",
	  .message = "0 turns account lockout off" },
	{ .yaml = "security_policy: {max_failed_login_attempts: 2}\n", .findings = 0 },
	{ .yaml = "security_policy: {account_lockout_duration_minutes: 59}\n",
	  .findings = 1, .sev = W,
	  .key = "security_policy.account_lockout_duration_minutes",
	  .message = "59 is weaker than the default 60" },
	{ .yaml = "security_policy: {account_lockout_duration_minutes: 0}\n",
	  .findings = 1, .sev = W,
	  .key = "security_policy.account_lockout_duration_minutes",
	  .message = "0 is weaker than the default 60" },
	{ .yaml = "security_policy: {account_lockout_duration_minutes: 1440}\n",
	  .findings = 0 },
	{ .yaml = "security_policy: {minimum_password_length: 8}\n",
	  .findings = 1, .sev = W, .key = "security_policy.minimum_password_length",
	  .message = "security_policy.minimum_password_length: 8 is weaker than the"
	  " default 12" },
	{ .yaml = "security_policy: {minimum_password_length: 20}\n", .findings = 0 },
	{ .yaml = "security_policy: {require_password_complexity: false}\n",
	  .findings = 1, .sev = W, .key = "security_policy.require_password_complexity",
	  .message = "require_password_complexity: false" },
	{ .yaml = "security_policy: {disable_smtp_auth_for_unconfirmed: false}\n",
	  .findings = 1, .sev = W,
	  .key = "security_policy.disable_smtp_auth_for_unconfirmed",
	  .message = "unconfirmed accounts may send mail" },
	/* intrusion_prevention */
	{ .yaml = "intrusion_prevention: {enabled: false}\n", .findings = 1, .sev = W,
	  .key = "intrusion_prevention.enabled", .message = "no automatic bans" },
	{ .yaml = "intrusion_prevention: {enabled: false, maxretry: 50, bantime: 1}\n",
	  .findings = 1, .sev = W, .key = "intrusion_prevention.enabled",
	  .message = "intrusion_prevention.enabled: false" },
	{ .yaml = "intrusion_prevention: {maxretry: 6}\n", .findings = 1, .sev = W,
	  .key = "intrusion_prevention.maxretry",
	  .message = "6 is weaker than the default 5" },
	{ .yaml = "intrusion_prevention: {maxretry: 1}\n", .findings = 0 },
	{ .yaml = "intrusion_prevention: {findtime: 299}\n", .findings = 1, .sev = W,
	  .key = "intrusion_prevention.findtime",
	  .message = "299 is weaker than the default 300" },
	{ .yaml = "intrusion_prevention: {bantime: 3599}\n", .findings = 1, .sev = W,
	  .key = "intrusion_prevention.bantime",
	  .message = "3599 is weaker than the default 3600" },
	{ .yaml = "intrusion_prevention: {bantime: 86400, findtime: 3600}\n",
	  .findings = 0 },
	/* the outbound containment turned off, loudly */
	{ .yaml = "queue_monitor: {containment: false}\n", .findings = 1, .errors = 0,
	  .sev = W, .key = "queue_monitor.containment",
	  .message = "queue_monitor.containment: false: a detector only alerts" },
	{ .yaml = "queue_monitor:\n  detectors: {same_subject: {enabled: no},"
	  " rate_limit: {enabled: no}}\n", .findings = 2, .errors = 0,
	  .sev = W, .key = "queue_monitor.detectors.same_subject.enabled",
	  .message = "queue_monitor.detectors.same_subject.enabled: false: a burst" },
	{ .yaml = "queue_monitor: {messages_per_hour: 1000, alert_command: /bin/true}\n",
	  .findings = 0 },
	/* fine as they are */
	{ .yaml = "smtp: {bare_lf: normalize}\n", .findings = 0 },
	{ .yaml = "smtp: {bare_lf: reject}\n", .findings = 0 },
	/* everything at once: the incident's configuration */
	{ .yaml = ALLOW "mynetworks: [10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16]\n"
	  "security_policy: {require_email_confirmation: no, max_failed_login_attempts: 0,"
	  " account_lockout_duration_minutes: 0, minimum_password_length: 6,"
	  " require_password_complexity: no, disable_smtp_auth_for_unconfirmed: no}\n"
	  "intrusion_prevention: {enabled: no}\n", .findings = 10, .errors = 0,
	  .sev = W, .key = "security_policy.minimum_password_length",
	  .message = "6 is weaker" },
};

static void
run_audit_case(size_t i, const struct audit_case *c)
{
	struct config *cfg = expect_load(c->yaml);
	struct findings f = { .n = 0 };
	bool found = false;
	int errors = config_audit(cfg, collect, &f);

	if (f.n != c->findings)
		fail_msg("case %zu: %zu findings, expected %zu (first: %s)", i, f.n,
		    c->findings, f.n > 0 ? f.v[0].message : "none");
	assert_int_equal(errors, c->errors);
	assert_int_equal(config_audit(cfg, NULL, NULL), c->errors);
	for (size_t j = 0; c->key != NULL && j < f.n; j++) {
		if (strcmp(f.v[j].key, c->key) != 0 ||
		    strstr(f.v[j].message, c->message) == NULL)
			continue;
		if (f.v[j].sev != c->sev)
			fail_msg("case %zu: %s has the wrong severity", i, c->key);
		found = true;
	}
	if (c->key != NULL && !found)
		fail_msg("case %zu: no finding for %s with '%s' (first: %s)", i,
		    c->key, c->message, f.n > 0 ? f.v[0].message : "none");
	config_free(&cfg);
}

static void
test_audit(void **state)
{
	for (size_t i = 0; i < N_ELEMENTS(audit_cases); i++)
		run_audit_case(i, &audit_cases[i]);
	assert_int_equal(config_audit(NULL, collect, NULL), 0);
}

/* A hostname set in code, not by the loader, is still checked. */
static void
test_audit_hostname(void **state)
{
	static const char *const bad[] = { "mail", "localhost", "mail.example.", "a_b.example" };
	struct config *cfg = expect_load("");
	struct findings f;

	for (size_t i = 0; i <= N_ELEMENTS(bad); i++) {
		free(cfg->hostname);
		cfg->hostname = i < N_ELEMENTS(bad) ? strdup(bad[i]) : NULL;
		f.n = 0;
		assert_int_equal(config_audit(cfg, collect, &f), 1);
		assert_int_equal(f.n, 1);
		assert_int_equal(f.v[0].sev, CONFIG_AUDIT_ERROR);
		assert_string_equal(f.v[0].key, "hostname");
		if (i < N_ELEMENTS(bad))
			assert_non_null(strstr(f.v[0].message,
			    "is not a fully qualified domain name"));
		else
			assert_non_null(strstr(f.v[0].message, "hostname: not set"));
	}
	config_free(&cfg);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_defaults_match_embedded),
		cmocka_unit_test(test_full),
		cmocka_unit_test(test_listen_partial),
		cmocka_unit_test(test_values),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_queue_monitor_keys),
		cmocka_unit_test(test_every_key_wrong_type),
		cmocka_unit_test(test_hostile),
		cmocka_unit_test(test_too_large),
		cmocka_unit_test(test_load_file_errors),
		cmocka_unit_test(test_production_example),
		cmocka_unit_test(test_is_local_domain),
		cmocka_unit_test(test_audit),
		cmocka_unit_test(test_audit_hostname),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
