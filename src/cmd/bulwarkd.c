/*
 * bulwarkd.c: the daemon's main. Thin: load and audit the config, bind,
 * drop privileges, open the stores, run the loop, shut down cleanly on
 * SIGTERM (stop accepting, let transactions finish within a bound, exit 0).
 */
#include <errno.h>
#include <event2/event.h>
#include <event2/thread.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/config.h"
#include "core/default_config.h"
#include "core/fsutil.h"
#include "core/log.h"
#include "core/pool.h"
#include "core/tls.h"
#include "directory/directory.h"
#include "dkim/dkim.h"
#include "dns/dns.h"
#include "guard/guard.h"
#include "http/http_server.h"
#include "imap/imap_server.h"
#include "monitor/metrics.h"
#include "monitor/queue_monitor.h"
#include "queue/queue.h"
#include "smtp/smtp_client.h"
#include "smtp/smtp_server.h"

#define BULWARK_WORKERS 32      /* storage: mostly asleep in fsync barriers */
#define BULWARK_AUTH_NICE 19   /* argon2id checks yield to the loop and the spool, never starve (docs/accounts.md) */

struct daemon {
	struct event_base *base;
	const struct config *cfg;
	struct smtp_server *smtp;
	struct imap_server *imap;
	struct queue *queue;
	struct guard *guard;
	struct directory *dir;
	struct queue_monitor *monitor;
	struct event *tick;
	struct event *sigterm, *sigint, *stop_timer;
	time_t stop_deadline;
	bool stopping;
};

static void
usage(void)
{
	fprintf(stderr, "usage: bulwarkd [-c FILE] [-t]\n"
	    "  -c FILE  configuration (default: the embedded etc/bulwark.yaml)\n"
	    "  -t       check the configuration and exit (non-zero when unsafe or wrong)\n");
	exit(2);
}

struct audit_count {
	int errors, warnings;
	bool to_stdout;
};

static void
audit_cb(void *ctx, enum config_audit_severity sev, const char *key, const char *message)
{
	struct audit_count *c = ctx;

	if (sev == CONFIG_AUDIT_ERROR) {
		c->errors++;
		log_error("event=config.audit severity=error key=%s message=\"%s\"", key, message);
	} else {
		c->warnings++;
		log_warnx("event=config.audit severity=warning key=%s message=\"%s\"", key, message);
	}
	if (c->to_stdout)
		printf("%s %s: %s\n", sev == CONFIG_AUDIT_ERROR ? "ERROR" : "WARNING", key, message);
}

static void
stop_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct daemon *d = arg;
	struct timeval tv = { .tv_usec = 50000 };

	if ((smtp_server_sessions(d->smtp) == 0 && imap_server_sessions(d->imap) == 0 &&
	    queue_busy(d->queue) == 0) ||
	    time(NULL) >= d->stop_deadline) {
		if (smtp_server_sessions(d->smtp) > 0)
			log_warnx("event=shutdown.timeout sessions=%zu", smtp_server_sessions(d->smtp));
		event_base_loopbreak(d->base);
		return;
	}
	evtimer_add(d->stop_timer, &tv);
}

/*
 * Once a second: pick up what bulwarkctl changed in the database (bans),
 * put the bans in force into the listeners' kernel filter, and refresh the
 * gauges the HTTP thread renders.
 */
static void
tick_cb(evutil_socket_t fd, short what, void *arg)
{
	struct daemon *d = arg;
	struct guard_ban_stats bs;
	struct guard_filter_stats fs;
	time_t now = time(NULL);

	if (directory_changed(d->dir) == 1)
		guard_bans_reload(d->guard, now);
	guard_bans_expire(d->guard, now);
	guard_filter_sync(d->guard, now);
	guard_filter_stats(d->guard, &fs);
	metrics_set("bulwark_ban_filter_networks", NULL, (double)fs.networks);
	guard_ban_stats(d->guard, now, &bs);
	metrics_set("bulwark_bans_active", NULL, (double)bs.active);
	metrics_set("bulwark_unbans_total", NULL, (double)bs.unbans);
	metrics_set("bulwark_queue_messages", NULL, (double)queue_count(d->queue));
	metrics_set("bulwark_lockdown", NULL, queue_lockdown(d->queue) ? 1 : 0);
	metrics_set("bulwark_smtp_sessions", NULL, (double)smtp_server_sessions(d->smtp));
	metrics_set("bulwark_imap_sessions", NULL, (double)imap_server_sessions(d->imap));
}

static void
signal_cb(evutil_socket_t sig, short what, void *arg)
{
	struct daemon *d = arg;
	struct timeval tv = { .tv_usec = 50000 };

	if (d->stopping) {
		log_warnx("event=shutdown.forced signal=%d", (int)sig);
		event_base_loopbreak(d->base);
		return;
	}
	d->stopping = true;
	log_info("event=shutdown signal=%d sessions=%zu queued=%zu", (int)sig,
	    smtp_server_sessions(d->smtp), queue_count(d->queue));
	smtp_server_shutdown(d->smtp);
	imap_server_shutdown(d->imap);
	d->stop_deadline = time(NULL) + d->cfg->smtp.shutdown_timeout;
	d->stop_timer = evtimer_new(d->base, stop_timer_cb, d);
	if (d->stop_timer == NULL || evtimer_add(d->stop_timer, &tv) == -1)
		event_base_loopbreak(d->base);
}

/* The data directory tree the daemon writes, created before any drop. */
static void
prepare_data_dir(const struct config *cfg, const struct passwd *pw)
{
	static const char *const subdirs[] = { "", "/queue", "/queue/tmp", "/queue/incoming",
	    "/queue/hold", "/mail", "/tls" };
	static const char *const files[] = { "/bulwark.db", "/bulwark.db-wal", "/bulwark.db-shm",
	    "/tls/key.pem", "/tls/cert.pem" };
	char path[PATH_MAX];

	for (size_t i = 0; i < sizeof(subdirs) / sizeof(subdirs[0]); i++) {
		snprintf(path, sizeof(path), "%s%s", cfg->data_dir, subdirs[i]);
		if (fs_mkdir_p(path, 0700) == -1)
			fatal("event=start.error reason=mkdir path=%s", path);
		if (pw != NULL && chown(path, pw->pw_uid, pw->pw_gid) == -1)
			fatal("event=start.error reason=chown path=%s", path);
	}
	if (pw == NULL)
		return;
	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		snprintf(path, sizeof(path), "%s%s", cfg->data_dir, files[i]);
		if (chown(path, pw->pw_uid, pw->pw_gid) == -1 && errno != ENOENT)
			fatal("event=start.error reason=chown path=%s", path);
	}
}

static void
drop_privileges(const struct config *cfg)
{
	struct passwd *pw = NULL;

	if (geteuid() != 0) {
		prepare_data_dir(cfg, NULL);
		return;
	}
	if (cfg->user == NULL) {
		log_warnx("event=start.warning reason=\"running as root: set user: in the config to drop privileges\"");
		prepare_data_dir(cfg, NULL);
		return;
	}
	if ((pw = getpwnam(cfg->user)) == NULL)
		fatalx("event=start.error reason=\"no such user\" user=%s", cfg->user);
	prepare_data_dir(cfg, pw);
	if (setgroups(1, &pw->pw_gid) == -1 || setresgid(pw->pw_gid, pw->pw_gid, pw->pw_gid) == -1 ||
	    setresuid(pw->pw_uid, pw->pw_uid, pw->pw_uid) == -1)
		fatal("event=start.error reason=\"cannot drop privileges\" user=%s", cfg->user);
	if (setuid(0) != -1)
		fatalx("event=start.error reason=\"privileges could be regained\"");
	log_info("event=start.privileges user=%s uid=%ld", cfg->user, (long)pw->pw_uid);
}

int
main(int argc, char **argv)
{
	struct daemon d = { 0 };
	struct config *cfg = NULL;
	struct directory *dir = NULL;
	struct guard *guard = NULL, *imap_conns = NULL;
	struct pool *pool = NULL, *auth_pool = NULL;
	struct http_server *http = NULL;
	struct dns *dns = NULL;
	struct dkim_key ***dkim_keys = NULL;
	size_t *dkim_nkeys = NULL;
	SSL_CTX *tls = NULL, *client_tls = NULL;
	struct audit_count audit = { 0 };
	const char *path = NULL;
	char *error = NULL;
	bool test_only = false;
	int ch, lvl;

	while ((ch = getopt(argc, argv, "c:th")) != -1) {
		switch (ch) {
		case 'c':
			path = optarg;
			break;
		case 't':
			test_only = true;
			break;
		default:
			usage();
		}
	}
	if (optind != argc)
		usage();
	log_init("bulwarkd", LOG_LEVEL_INFO);
	if ((path != NULL ? config_load(path, &cfg, &error) :
	    config_load_string("(embedded etc/bulwark.yaml)", bulwark_default_config_yaml,
	    bulwark_default_config_len, &cfg, &error)) == -1) {
		fprintf(stderr, "bulwarkd: %s\n", error != NULL ? error : "cannot load config");
		free(error);
		return 1;
	}
	if ((lvl = log_level_parse(cfg->log_level != NULL ? cfg->log_level : "info")) >= 0)
		log_set_level((enum log_level)lvl);
	audit.to_stdout = test_only;
	config_audit(cfg, audit_cb, &audit);
	if (audit.errors > 0) {
		fprintf(stderr, "bulwarkd: %s: %d error(s) in the configuration; refusing to start\n",
		    path != NULL ? path : "(embedded)", audit.errors);
		config_free(&cfg);
		return 1;
	}
	if (test_only) {
		printf("bulwarkd: %s: configuration OK (%d warning(s))\n",
		    path != NULL ? path : "(embedded)", audit.warnings);
		config_free(&cfg);
		return 0;
	}

	signal(SIGPIPE, SIG_IGN);
	{
		/* Every session is a descriptor: take all the kernel allows us. */
		struct rlimit rl;

		if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
			rl.rlim_cur = rl.rlim_max;
			(void)setrlimit(RLIMIT_NOFILE, &rl);
		}
	}
	if (evthread_use_pthreads() == -1 || (d.base = event_base_new()) == NULL)
		fatalx("event=start.error reason=\"cannot start the event loop\"");
	d.cfg = cfg;
	if (fs_mkdir_p(cfg->data_dir, 0700) == -1)
		fatal("event=start.error reason=mkdir path=%s", cfg->data_dir);
	if ((tls = tls_server_ctx_new(cfg, &error)) == NULL)
		fatalx("event=start.error reason=\"%s\"", error != NULL ? error : "tls");
	if ((guard = guard_new()) == NULL || (imap_conns = guard_new()) == NULL)
		fatalx("event=start.error reason=\"out of memory\"");
	/* Bind while still privileged, then drop, then open the stores. */
	{
		struct smtp_server_deps deps = { .base = d.base, .cfg = cfg, .guard = guard, .tls = tls };

		if ((d.smtp = smtp_server_new(&deps, &error)) == NULL)
			fatalx("event=start.error reason=\"%s\"", error != NULL ? error : "listen");
	}
	{
		struct imap_server_deps deps = { .base = d.base, .cfg = cfg, .guard = guard,
		    .conns = imap_conns, .tls = tls };

		if ((d.imap = imap_server_new(&deps, &error)) == NULL)
			fatalx("event=start.error reason=\"%s\"", error != NULL ? error : "listen");
	}
	if ((http = http_server_new(cfg, &error)) == NULL)
		fatalx("event=start.error reason=\"%s\"", error != NULL ? error : "http");
	/* DKIM keys are root's 0600 files: read them before the drop. A bad
	 * key stops the start: never silently unsigned mail. */
	dkim_keys = calloc(cfg->ndomains + 1, sizeof(*dkim_keys));
	dkim_nkeys = calloc(cfg->ndomains + 1, sizeof(*dkim_nkeys));
	if (dkim_keys == NULL || dkim_nkeys == NULL)
		fatalx("event=start.error reason=\"out of memory\"");
	for (size_t i = 0; i < cfg->ndomains; i++) {
		if (dkim_keys_load(cfg->data_dir, cfg->domains[i], &dkim_keys[i], &dkim_nkeys[i],
		    &error) == -1)
			fatalx("event=start.error reason=\"dkim: %s\"", error != NULL ? error : "out of memory");
		for (size_t k = 0; k < dkim_nkeys[i]; k++)
			log_info("event=dkim.key domain=%s selector=%s algorithm=%s", cfg->domains[i],
			    dkim_key_selector(dkim_keys[i][k]), dkim_alg_name(dkim_key_alg(dkim_keys[i][k])));
	}
	drop_privileges(cfg);
	metrics_describe_defaults();
	if (directory_open(cfg->data_dir, &dir, &error) == -1)
		fatalx("event=start.error reason=\"%s\"", error != NULL ? error : "directory");
	{
		/* Half the CPUs (at least one) for password checks: an AUTH flood
		 * queues there and never delays spool commits or the loop. */
		long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
		int nauth = ncpu > 1 ? (int)(ncpu / 2) : 1;

		if ((auth_pool = pool_new(d.base, nauth, BULWARK_AUTH_NICE)) == NULL)
			fatalx("event=start.error reason=\"out of memory\"");
	}
	if ((pool = pool_new(d.base, BULWARK_WORKERS, 0)) == NULL ||
	    (d.queue = queue_new(d.base, pool, cfg)) == NULL)
		fatalx("event=start.error reason=\"out of memory\"");
	if ((dns = dns_new(d.base, cfg, &error)) == NULL)
		fatalx("event=start.error reason=\"%s\"", error != NULL ? error : "dns");
	if ((client_tls = smtp_client_tls_ctx_new(NULL, &error)) == NULL)
		fatalx("event=start.error reason=\"%s\"", error != NULL ? error : "tls client");
	queue_set_dkim(d.queue, dkim_keys, dkim_nkeys);
	if (queue_set_outbound(d.queue, dns, client_tls, &error) == -1)
		fatalx("event=start.error reason=\"%s\"", error != NULL ? error : "outbound");
	if (queue_start(d.queue, &error) == -1)
		fatalx("event=start.error reason=\"%s\"", error != NULL ? error : "queue");
	if (guard_bans_start(guard, cfg, dir, time(NULL)) == -1)
		fatalx("event=start.error reason=\"cannot load bans\"");
	d.guard = guard;
	d.dir = dir;
	smtp_server_attach(d.smtp, dir, d.queue, auth_pool);
	imap_server_attach(d.imap, auth_pool);
	{
		struct queue_monitor_deps md = { .base = d.base, .cfg = cfg, .queue = d.queue,
		    .dir = dir, .pool = pool };

		if ((d.monitor = queue_monitor_new(&md)) == NULL || queue_monitor_start(d.monitor) == -1)
			fatalx("event=start.error reason=\"queue monitor: out of memory\"");
		smtp_server_set_monitor(d.smtp, d.monitor);
	}
	if (http_server_start(http, &error) == -1)
		fatalx("event=start.error reason=\"%s\"", error != NULL ? error : "http");
	{
		struct timeval one = { .tv_sec = 1 };

		d.tick = event_new(d.base, -1, EV_PERSIST, tick_cb, &d);
		if (d.tick == NULL || event_add(d.tick, &one) == -1)
			fatalx("event=start.error reason=\"out of memory\"");
		tick_cb(-1, 0, &d);
	}
	if (smtp_server_start(d.smtp) == -1 || imap_server_start(d.imap) == -1)
		fatal("event=start.error reason=\"cannot accept\"");
	d.sigterm = evsignal_new(d.base, SIGTERM, signal_cb, &d);
	d.sigint = evsignal_new(d.base, SIGINT, signal_cb, &d);
	if (d.sigterm == NULL || d.sigint == NULL || evsignal_add(d.sigterm, NULL) == -1 ||
	    evsignal_add(d.sigint, NULL) == -1)
		fatalx("event=start.error reason=\"cannot handle signals\"");

	{
		char domains[1024] = "";
		size_t o = 0;

		for (size_t i = 0; i < cfg->ndomains && o < sizeof(domains); i++)
			o += (size_t)snprintf(domains + o, sizeof(domains) - o, "%s%s",
			    i > 0 ? "," : "", cfg->domains[i]);
		log_info("event=start hostname=%s domains=%s data_dir=%s config=%s queued=%zu warnings=%d",
		    cfg->hostname, domains, cfg->data_dir, path != NULL ? path : "(embedded)",
		    queue_count(d.queue), audit.warnings);
	}
	smtp_server_log_listeners(d.smtp);
	imap_server_log_listeners(d.imap);
	event_base_dispatch(d.base);

	/* Order matters: the pool's last callbacks still use sessions and the queue. */
	http_server_free(&http);
	pool_free(&auth_pool);
	pool_free(&pool);
	smtp_server_free(&d.smtp);
	imap_server_free(&d.imap);
	queue_monitor_free(&d.monitor);
	queue_free(&d.queue);   /* drops remote attempts in flight (they retry at next start) */
	{
		/* Let clients that said QUIT finish (they free themselves), briefly. */
		time_t until = time(NULL) + 2;

		while (smtp_client_count() > 0 && time(NULL) < until)
			event_base_loop(d.base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
	}
	dns_free(&dns);
	SSL_CTX_free(client_tls);
	for (size_t i = 0; i < cfg->ndomains; i++)
		dkim_keys_free(&dkim_keys[i], dkim_nkeys[i]);
	free(dkim_keys);
	free(dkim_nkeys);
	directory_free(&dir);
	guard_free(&guard);
	guard_free(&imap_conns);
	if (d.stop_timer != NULL)
		event_free(d.stop_timer);
	event_free(d.tick);
	event_free(d.sigterm);
	event_free(d.sigint);
	SSL_CTX_free(tls);
	event_base_free(d.base);
	log_info("event=stopped");
	config_free(&cfg);
	return 0;
}
