/*
 * http_server.c: the web side on listen.http, served by libmicrohttpd on its
 * own threads: /metrics for http.metrics_allow, and the confirmation pages
 * (GET shows one button, only POST uses the token). Trusts nothing from the
 * client: the token is checked for shape before the store sees it, bodies
 * are capped, every value put in a page is escaped, the token never reaches
 * a log. RFC 9110 (HTTP semantics), Prometheus exposition format 0.0.4.
 */
#include "http/http_server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "core/cidr.h"
#include "core/config.h"
#include "core/log.h"
#include "directory/directory.h"
#include "http/http_private.h"
#include "monitor/metrics.h"

#define HTTP_CONNECTION_LIMIT 256
#define HTTP_PER_IP_LIMIT 16
#define HTTP_TIMEOUT_SECONDS 10
#define HTTP_BACKLOG 128

struct http_listener {
	char *text;                 /* "127.0.0.1:8080", for messages */
	int fd;                     /* ours; the daemon gets a dup() of it */
	struct MHD_Daemon *daemon;  /* NULL until started */
};

struct http_server {
	const struct config *cfg;   /* outlives the server */
	struct http_listener *v;
	size_t n;
	pthread_mutex_t dir_lock;   /* the daemons' threads share one handle */
	struct directory *dir;      /* opened by http_server_start */
};

/* One request, from its headers to its end (MHD's con_cls). */
struct http_request {
	size_t len;
	char body[HTTP_BODY_MAX];
};

/* What a handler needs to answer and log one request. */
struct http_ctx {
	struct http_server *srv;
	struct MHD_Connection *conn;
	const char *method;
	const char *path;
	const struct sockaddr *client;
	char ip[INET6_ADDRSTRLEN + 8];
};

static void
set_error(char **error_r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void
set_error(char **error_r, const char *fmt, ...)
{
	va_list ap;

	if (error_r == NULL)
		return;
	va_start(ap, fmt);
	if (vasprintf(error_r, fmt, ap) < 0)
		*error_r = NULL;
	va_end(ap);
}

/* ---- responses ---- */

static const struct {
	const char *name, *value;
} security_headers[] = {
	{ "Content-Security-Policy",
	  "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'" },
	{ "X-Frame-Options", "DENY" },
	{ "Referrer-Policy", "no-referrer" },   /* the token stays out of Referer */
	{ "Cache-Control", "no-store" },
	{ "X-Content-Type-Options", "nosniff" },
};

/* One line a request; extra is "" or " key=value". Never the query (token). */
static void
log_request(const struct http_ctx *c, unsigned status, const char *extra)
{
	char method[32], path[LOG_ESCAPE_MAX];

	log_info("event=http.request client=%s method=%s path=%s status=%u%s", c->ip,
	    log_escape(method, sizeof(method), c->method, strlen(c->method)),
	    log_escape(path, sizeof(path), c->path, strlen(c->path)), status, extra);
}

/*
 * Queue a response and log the request. body is taken over (freed here);
 * allow, if not NULL, is the Allow header of a 405.
 */
static enum MHD_Result
respond(const struct http_ctx *c, unsigned status, const char *type, char *body,
    size_t len, const char *allow)
{
	struct MHD_Response *resp;
	enum MHD_Result ret;

	if (body == NULL) {
		/* Out of memory while building it: say so without allocating a page. */
		status = MHD_HTTP_INTERNAL_SERVER_ERROR;
		type = "text/plain; charset=utf-8";
		resp = MHD_create_response_from_buffer(strlen("Internal error\n"),
		    (void *)"Internal error\n", MHD_RESPMEM_PERSISTENT);
	} else {
		resp = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
		if (resp == NULL)
			free(body);
	}
	if (resp == NULL) {
		log_request(c, status, " note=out_of_memory");
		return MHD_NO;
	}
	for (size_t i = 0; i < sizeof(security_headers) / sizeof(security_headers[0]); i++)
		MHD_add_response_header(resp, security_headers[i].name, security_headers[i].value);
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, type);
	if (allow != NULL)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, allow);
	ret = MHD_queue_response(c->conn, status, resp);
	MHD_destroy_response(resp);
	log_request(c, status, "");
	return ret;
}

static enum MHD_Result
respond_text(const struct http_ctx *c, unsigned status, const char *text, const char *allow)
{
	char *body = strdup(text);

	return respond(c, status, "text/plain; charset=utf-8", body,
	    body != NULL ? strlen(body) : 0, allow);
}

/* An HTML page; title and paragraph are plain text, escaped here. */
static enum MHD_Result
respond_page(const struct http_ctx *c, unsigned status, const char *title, const char *text)
{
	char etitle[2560], etext[2048], body[2100];
	size_t len = 0;
	char *page = NULL;

	if (http_page_escape(etitle, sizeof(etitle), title) >= 0 &&
	    http_page_escape(etext, sizeof(etext), text) >= 0) {
		snprintf(body, sizeof(body), "<p>%s</p>", etext);
		page = http_page_build(etitle, body, &len);
	}
	return respond(c, status, "text/html; charset=utf-8", page, len, NULL);
}

/* ---- routes ---- */

static enum MHD_Result
route_root(const struct http_ctx *c)
{
	return respond_text(c, MHD_HTTP_OK, "bulwark\n", NULL);
}

/*
 * The counters the database knows better than this process: confirmation
 * links are made by bulwarkctl too, and accounts unlock by expiry or by hand.
 */
static void
refresh_from_store(struct http_server *srv)
{
	struct directory_stats st;
	int rc;

	pthread_mutex_lock(&srv->dir_lock);
	rc = directory_stats(srv->dir, (int64_t)time(NULL), &st);
	pthread_mutex_unlock(&srv->dir_lock);
	if (rc < 0) {
		log_warnx("event=http.metrics error=store note=\"database counters not refreshed\"");
		return;
	}
	metrics_set("bulwark_confirmations_requested_total", NULL,
	    (double)st.confirmations_requested);
	metrics_set("bulwark_confirmations_completed_total", NULL,
	    (double)st.confirmations_completed);
	metrics_set("bulwark_lockouts_active", NULL, (double)st.locked);
}

static enum MHD_Result
route_metrics(const struct http_ctx *c)
{
	const struct config *cfg = c->srv->cfg;
	char *text;
	size_t len = 0;

	if (c->client == NULL ||
	    !cidr_list_match(cfg->http.metrics_allow, cfg->http.nmetrics_allow, c->client))
		return respond_text(c, MHD_HTTP_FORBIDDEN, "Forbidden\n", NULL);
	refresh_from_store(c->srv);
	text = metrics_render(&len);
	return respond(c, MHD_HTTP_OK, "text/plain; version=0.0.4; charset=utf-8",
	    text, len, NULL);
}

/* Exactly DIRECTORY_TOKEN_LEN lower-case hex digits. */
static bool
token_well_formed(const char *token)
{
	size_t i;

	if (token == NULL)
		return false;
	for (i = 0; token[i] != '\0'; i++) {
		if (i >= DIRECTORY_TOKEN_LEN ||
		    !((token[i] >= '0' && token[i] <= '9') || (token[i] >= 'a' && token[i] <= 'f')))
			return false;
	}
	return i == DIRECTORY_TOKEN_LEN;
}

static enum MHD_Result
count_token_arg(void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
	(void)kind, (void)value;
	if (key != NULL && strcmp(key, "token") == 0)
		(*(int *)cls)++;
	return MHD_YES;
}

static enum MHD_Result
respond_bad_link(const struct http_ctx *c)
{
	return respond_page(c, MHD_HTTP_BAD_REQUEST, "This link is malformed",
	    "Copy the whole link from the mail into the address bar, or ask for a new one.");
}

static enum MHD_Result
respond_gone(const struct http_ctx *c)
{
	return respond_page(c, MHD_HTTP_GONE, "This link is invalid, already used or expired",
	    "Ask your administrator for a new confirmation link.");
}

static enum MHD_Result
respond_store_error(const struct http_ctx *c)
{
	return respond_page(c, MHD_HTTP_SERVICE_UNAVAILABLE, "Temporary error",
	    "Please try again in a few minutes.");
}

/* GET /confirm?token=T: show the account and one button; confirm nothing. */
static enum MHD_Result
route_confirm_get(const struct http_ctx *c)
{
	struct http_server *srv = c->srv;
	char address[320], eaddress[320 * 6 + 1], title[2048], body[512];
	const char *token;
	size_t len = 0;
	int ntokens = 0, rc;
	char *page;

	MHD_get_connection_values(c->conn, MHD_GET_ARGUMENT_KIND, count_token_arg, &ntokens);
	token = MHD_lookup_connection_value(c->conn, MHD_GET_ARGUMENT_KIND, "token");
	if (ntokens != 1 || !token_well_formed(token))
		return respond_bad_link(c);
	pthread_mutex_lock(&srv->dir_lock);
	rc = directory_token_peek(srv->dir, token, (int64_t)time(NULL), address, sizeof(address));
	pthread_mutex_unlock(&srv->dir_lock);
	if (rc < 0)
		return respond_store_error(c);
	if (rc == 0)
		return respond_gone(c);
	if (http_page_escape(eaddress, sizeof(eaddress), address) < 0)
		return respond_store_error(c);
	snprintf(title, sizeof(title), "Confirm the account %s", eaddress);
	/* The token is 64 hex digits (checked above): nothing to escape. */
	snprintf(body, sizeof(body),
	    "<p>Press the button to confirm this account. Nothing changes until you do.</p>\n"
	    "<form method=\"post\" action=\"/confirm\">\n"
	    "<input type=\"hidden\" name=\"token\" value=\"%s\">\n"
	    "<button type=\"submit\">Confirm</button>\n"
	    "</form>", token);
	page = http_page_build(title, body, &len);
	return respond(c, MHD_HTTP_OK, "text/html; charset=utf-8", page, len, NULL);
}

static bool
is_form_type(const char *type)
{
	static const char form[] = "application/x-www-form-urlencoded";
	size_t n = sizeof(form) - 1;

	if (type == NULL || strncasecmp(type, form, n) != 0)
		return false;
	return type[n] == '\0' || type[n] == ';' || type[n] == ' ' || type[n] == '\t';
}

/* POST /confirm with token=T: use the token once and confirm its account. */
static enum MHD_Result
route_confirm_post(const struct http_ctx *c, const struct http_request *req)
{
	struct http_server *srv = c->srv;
	char token[DIRECTORY_TOKEN_LEN + 2], address[320], eaccount[LOG_ESCAPE_MAX];
	char title[400];
	const char *type, *error = NULL;
	int rc;

	type = MHD_lookup_connection_value(c->conn, MHD_HEADER_KIND,
	    MHD_HTTP_HEADER_CONTENT_TYPE);
	if (!is_form_type(type))
		return respond_text(c, MHD_HTTP_UNSUPPORTED_MEDIA_TYPE,
		    "Expected application/x-www-form-urlencoded\n", NULL);
	rc = http_form_value(req->body, req->len, "token", token, sizeof(token), &error);
	if (rc != 1 || !token_well_formed(token))
		return respond_bad_link(c);
	pthread_mutex_lock(&srv->dir_lock);
	rc = directory_token_confirm(srv->dir, token, (int64_t)time(NULL),
	    address, sizeof(address));
	pthread_mutex_unlock(&srv->dir_lock);
	if (rc < 0)
		return respond_store_error(c);
	if (rc == 0)
		return respond_gone(c);
	metrics_inc("bulwark_confirmations_completed_total", NULL);
	log_info("event=http.confirm client=%s account=%s", c->ip,
	    log_escape(eaccount, sizeof(eaccount), address, strlen(address)));
	snprintf(title, sizeof(title), "Account %s confirmed", address);
	return respond_page(c, MHD_HTTP_OK, title,
	    "You can now log in and send mail with this account.");
}

static enum MHD_Result
route(const struct http_ctx *c, const struct http_request *req)
{
	bool get = strcmp(c->method, MHD_HTTP_METHOD_GET) == 0 ||
	    strcmp(c->method, MHD_HTTP_METHOD_HEAD) == 0;
	bool post = strcmp(c->method, MHD_HTTP_METHOD_POST) == 0;

	if (strcmp(c->path, "/") == 0)
		return get ? route_root(c) :
		    respond_text(c, MHD_HTTP_METHOD_NOT_ALLOWED, "Method not allowed\n", "GET, HEAD");
	if (strcmp(c->path, "/metrics") == 0)
		return get ? route_metrics(c) :
		    respond_text(c, MHD_HTTP_METHOD_NOT_ALLOWED, "Method not allowed\n", "GET, HEAD");
	if (strcmp(c->path, "/confirm") == 0) {
		if (get)
			return route_confirm_get(c);
		if (post)
			return route_confirm_post(c, req);
		return respond_text(c, MHD_HTTP_METHOD_NOT_ALLOWED, "Method not allowed\n",
		    "GET, HEAD, POST");
	}
	return respond_text(c, MHD_HTTP_NOT_FOUND, "Not found\n", NULL);
}

/* Is the announced Content-Length over the cap? (MHD refuses malformed ones.) */
static bool
content_length_too_big(const char *value)
{
	unsigned long long n = 0;

	if (value == NULL)
		return false;
	for (const char *p = value; *p >= '0' && *p <= '9'; p++) {
		n = n * 10 + (unsigned)(*p - '0');
		if (n > HTTP_BODY_MAX)
			return true;
	}
	return false;
}

static enum MHD_Result
http_access(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
    const char *version, const char *upload_data, size_t *upload_data_size, void **con_cls)
{
	struct http_request *req = *con_cls;
	const union MHD_ConnectionInfo *ci;
	struct http_ctx c = {
		.srv = cls, .conn = conn, .method = method, .path = url,
	};

	(void)version;
	ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	if (ci != NULL && ci->client_addr != NULL) {
		c.client = ci->client_addr;
		sockaddr_format_ip(c.client, c.ip, sizeof(c.ip));
	} else {
		snprintf(c.ip, sizeof(c.ip), "?");
	}
	if (req == NULL) {
		/* Headers are in; the body, if any, comes in the next calls. */
		if ((req = calloc(1, sizeof(*req))) == NULL)
			return MHD_NO;
		*con_cls = req;
		if (content_length_too_big(MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
		    MHD_HTTP_HEADER_CONTENT_LENGTH)))
			return respond_text(&c, MHD_HTTP_CONTENT_TOO_LARGE,
			    "Request body too large\n", NULL);
		return MHD_YES;
	}
	if (*upload_data_size != 0) {
		if (*upload_data_size > HTTP_BODY_MAX - req->len) {
			/* A chunked body past the cap: no answer can be queued now. */
			log_request(&c, MHD_HTTP_CONTENT_TOO_LARGE, " note=closed");
			return MHD_NO;
		}
		memcpy(req->body + req->len, upload_data, *upload_data_size);
		req->len += *upload_data_size;
		*upload_data_size = 0;
		return MHD_YES;
	}
	return route(&c, req);
}

static void
http_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
    enum MHD_RequestTerminationCode toe)
{
	(void)cls, (void)conn, (void)toe;
	free(*con_cls);
	*con_cls = NULL;
}

static void http_mhd_log(void *cls, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));

/* libmicrohttpd's own messages: its text, made printable and quoted. */
static void
http_mhd_log(void *cls, const char *fmt, va_list ap)
{
	char msg[512];
	size_t len;

	(void)cls;
	vsnprintf(msg, sizeof(msg), fmt, ap);
	len = strlen(msg);
	while (len > 0 && (msg[len - 1] == '\n' || msg[len - 1] == ' '))
		msg[--len] = '\0';
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)msg[i] < 0x20 || (unsigned char)msg[i] > 0x7e ||
		    msg[i] == '"' || msg[i] == '\\')
			msg[i] = '?';
	log_warnx("event=http.mhd message=\"%s\"", msg);
}

/* ---- lifetime ---- */

static int
listener_bind(struct http_listener *l, const struct config_listen *cl, char **error_r)
{
	int one = 1, fd;

	fd = socket(cl->ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		set_error(error_r, "listen.http %s: socket: %s", cl->text, strerror(errno));
		return -1;
	}
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    (cl->ss.ss_family == AF_INET6 &&
	    setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)) < 0)) {
		set_error(error_r, "listen.http %s: setsockopt: %s", cl->text, strerror(errno));
		goto fail;
	}
	if (bind(fd, (const struct sockaddr *)&cl->ss, cl->sslen) < 0) {
		set_error(error_r, "listen.http %s: bind: %s", cl->text, strerror(errno));
		goto fail;
	}
	if (listen(fd, HTTP_BACKLOG) < 0) {
		set_error(error_r, "listen.http %s: listen: %s", cl->text, strerror(errno));
		goto fail;
	}
	l->fd = fd;
	return 0;
fail:
	close(fd);
	return -1;
}

struct http_server *
http_server_new(const struct config *cfg, char **error_r)
{
	struct http_server *srv;
	size_t n = cfg->listen.http.n;

	if ((srv = calloc(1, sizeof(*srv))) == NULL) {
		set_error(error_r, "http: out of memory");
		return NULL;
	}
	srv->cfg = cfg;
	pthread_mutex_init(&srv->dir_lock, NULL);
	if (n > 0 && (srv->v = calloc(n, sizeof(*srv->v))) == NULL) {
		set_error(error_r, "http: out of memory");
		goto fail;
	}
	for (size_t i = 0; i < n; i++) {
		const struct config_listen *cl = &cfg->listen.http.v[i];
		struct http_listener *l = &srv->v[srv->n];

		l->fd = -1;
		if ((l->text = strdup(cl->text)) == NULL) {
			set_error(error_r, "http: out of memory");
			goto fail;
		}
		srv->n++;
		if (listener_bind(l, cl, error_r) < 0)
			goto fail;
	}
	return srv;
fail:
	http_server_free(&srv);
	return NULL;
}

int
http_server_start(struct http_server *srv, char **error_r)
{
	unsigned int flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG;
	char *derror = NULL;

	if (srv->n == 0)
		return 0;
	if (srv->dir == NULL && directory_open(srv->cfg->data_dir, &srv->dir, &derror) < 0) {
		set_error(error_r, "http: %s", derror != NULL ? derror : "cannot open the directory");
		free(derror);
		return -1;
	}
	if (MHD_is_feature_supported(MHD_FEATURE_EPOLL) == MHD_YES)
		flags |= MHD_USE_EPOLL;
	for (size_t i = 0; i < srv->n; i++) {
		struct http_listener *l = &srv->v[i];
		int fd;

		if (l->daemon != NULL)
			continue;
		/*
		 * The daemon closes the socket it is given when it stops; a dup
		 * keeps that ownership simple whether it starts or not.
		 */
		if ((fd = fcntl(l->fd, F_DUPFD_CLOEXEC, 0)) < 0) {
			set_error(error_r, "listen.http %s: dup: %s", l->text, strerror(errno));
			return -1;
		}
		l->daemon = MHD_start_daemon(flags, 0, NULL, NULL, http_access, srv,
		    MHD_OPTION_EXTERNAL_LOGGER, http_mhd_log, srv,   /* first, or MHD warns */
		    MHD_OPTION_LISTEN_SOCKET, (MHD_socket)fd,
		    MHD_OPTION_CONNECTION_LIMIT, (unsigned int)HTTP_CONNECTION_LIMIT,
		    MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned int)HTTP_PER_IP_LIMIT,
		    MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)HTTP_TIMEOUT_SECONDS,
		    MHD_OPTION_NOTIFY_COMPLETED, http_completed, srv,
		    MHD_OPTION_END);
		if (l->daemon == NULL) {
			/* XXX whether MHD closed fd on this path differs by version. */
			set_error(error_r, "listen.http %s: cannot start the HTTP daemon", l->text);
			return -1;
		}
		log_info("event=listen service=http address=%s", l->text);
	}
	return 0;
}

void
http_server_free(struct http_server **srvp)
{
	struct http_server *srv = *srvp;

	if (srv == NULL)
		return;
	/* Every daemon thread stops before the handle they share goes away. */
	for (size_t i = 0; i < srv->n; i++)
		if (srv->v[i].daemon != NULL)
			MHD_stop_daemon(srv->v[i].daemon);
	for (size_t i = 0; i < srv->n; i++) {
		if (srv->v[i].fd >= 0)
			close(srv->v[i].fd);
		free(srv->v[i].text);
	}
	free(srv->v);
	directory_free(&srv->dir);
	pthread_mutex_destroy(&srv->dir_lock);
	free(srv);
	*srvp = NULL;
}
