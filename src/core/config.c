/*
 * config.c: load bulwark's YAML configuration (libyaml's event API) into a
 * struct config that starts from the defaults of etc/bulwark.yaml (the audit
 * of what is loaded is config_audit.c). Trusts nothing in the file: every
 * key is known, every value is type- and range-checked, and every error
 * names the file, line and key.
 * Standards: YAML 1.1 as libyaml reads it, with a strict subset of scalars
 * (decimal integers, true/false/yes/no, null/~/empty); RFC 1123 2.1 host
 * names; RFC 5321 4.5.3.1 line limits.
 */
#include "core/config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <yaml.h>

#include "core/config_private.h"
#include "core/log.h"

#define CONFIG_FILE_MAX (1024 * 1024)   /* a config is a page, not a megabyte */
#define CONFIG_VALUE_MAX 4096           /* PATH_MAX: the longest sane value */
#define CONFIG_LIST_MAX 1024            /* entries in one list */
#define CONFIG_SECTION_KEYS 32          /* keys of the largest mapping, and room */
#define HOSTNAME_MAX 253                /* RFC 1035 2.3.4, without the final dot */
#define LABEL_MAX 63
#define USERNAME_MAX 32

/* ---- the loader ---- */

/* One scalar copied out of its event: NUL-terminated, may hold inner NULs. */
struct scalar {
	char *s;
	size_t len;
	size_t line;   /* 1-based */
	bool plain;    /* unquoted: only plain scalars can be null, int or bool */
};

struct loader {
	yaml_parser_t parser;
	yaml_event_t event;   /* the current event, owned when have_event */
	bool have_event;
	const char *name;     /* file name for messages */
	const char *text;     /* the input, to turn byte offsets into lines */
	size_t len;
	struct config *cfg;
	char *error;          /* the first error, malloc'd */
};

struct key_def;
typedef int key_set_fn(struct loader *ld, const struct key_def *def,
    const struct scalar *v);
typedef int key_set_list_fn(struct loader *ld, const struct key_def *def,
    const struct scalar *v, size_t n);

enum key_kind {
	KEY_SCALAR,
	KEY_LIST,      /* a sequence of scalars; replaces the default list */
	KEY_SECTION,   /* a mapping of more keys */
};

/*
 * One key the file may hold. The tables below are the whole vocabulary:
 * a key not in them is an error.
 */
struct key_def {
	const char *key;               /* dotted path, e.g. "smtp.max_errors" */
	enum key_kind kind;
	const char *expected;          /* "an integer": for type errors */
	key_set_fn *set;               /* KEY_SCALAR */
	key_set_list_fn *set_list;     /* KEY_LIST */
	const struct key_def *children;/* KEY_SECTION, ends with .key NULL */
	void (*enter)(struct config *cfg); /* KEY_SECTION: when it is seen */
	size_t offset;                 /* of the field in struct config */
	long long min, max;            /* integers */
	bool nullable;                 /* null/~/empty means "not set" */
	bool is_size;                  /* integers: a size_t field, not an int */
};

/* Record the first error as "NAME:LINE: message"; line 0 leaves it out. */
static LOG_PRINTF(3, 4) int
loader_fail(struct loader *ld, size_t line, const char *fmt, ...)
{
	char *msg = NULL;
	va_list ap;
	int r;

	if (ld->error != NULL)
		return -1;
	va_start(ap, fmt);
	r = vasprintf(&msg, fmt, ap);
	va_end(ap);
	if (r < 0)
		msg = NULL;
	if (msg != NULL && line > 0)
		r = asprintf(&ld->error, "%s:%zu: %s", ld->name, line, msg);
	else if (msg != NULL)
		r = asprintf(&ld->error, "%s: %s", ld->name, msg);
	if (msg == NULL || r < 0)
		ld->error = strdup("out of memory while loading the configuration");
	free(msg);
	return -1;
}

/* "key 'smtp.max_errors': ..." */
static LOG_PRINTF(4, 5) int
key_fail(struct loader *ld, const struct key_def *def, size_t line,
    const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	return loader_fail(ld, line, "key '%s': %s", def->key, msg);
}

static size_t
event_line(const struct loader *ld)
{
	return ld->event.start_mark.line + 1;
}

/* The line holding byte offset off of the input. */
static size_t
offset_line(const struct loader *ld, size_t off)
{
	size_t line = 1;

	for (size_t i = 0; i < off && i < ld->len; i++)
		if (ld->text[i] == '\n')
			line++;
	return line;
}

static int
loader_syntax_error(struct loader *ld)
{
	const yaml_parser_t *p = &ld->parser;
	size_t line;

	switch (p->error) {
	case YAML_MEMORY_ERROR:
		return loader_fail(ld, 0, "out of memory while parsing YAML");
	case YAML_READER_ERROR:
		line = offset_line(ld, p->problem_offset);
		return loader_fail(ld, line, "not valid YAML text: %s",
		    p->problem != NULL ? p->problem : "unreadable input");
	default:
		line = p->problem_mark.line + 1;
		if (p->context != NULL)
			return loader_fail(ld, line, "YAML syntax error: %s %s",
			    p->problem != NULL ? p->problem : "error", p->context);
		return loader_fail(ld, line, "YAML syntax error: %s",
		    p->problem != NULL ? p->problem : "error");
	}
}

/* Move to the next event; the previous one is released. */
static int
loader_next(struct loader *ld)
{
	if (ld->have_event) {
		yaml_event_delete(&ld->event);
		ld->have_event = false;
	}
	if (!yaml_parser_parse(&ld->parser, &ld->event))
		return loader_syntax_error(ld);
	ld->have_event = true;
	return 0;
}

/* The explicit tag of a node event (!!str, !foo), or NULL. */
static const yaml_char_t *
event_tag(const yaml_event_t *ev)
{
	switch (ev->type) {
	case YAML_SCALAR_EVENT:
		return ev->data.scalar.tag;
	case YAML_SEQUENCE_START_EVENT:
		return ev->data.sequence_start.tag;
	case YAML_MAPPING_START_EVENT:
		return ev->data.mapping_start.tag;
	default:
		return NULL;
	}
}

/*
 * Aliases and tags are refused where a node starts: aliases would let one
 * value stand for another (and blow up), tags would change what a scalar is.
 * Anchors alone are harmless and ignored.
 */
static int
check_node(struct loader *ld, const char *key)
{
	const char *why;

	if (ld->event.type == YAML_ALIAS_EVENT)
		why = "YAML aliases (*name) are not supported; write the value out";
	else if (event_tag(&ld->event) != NULL)
		why = "YAML tags (!!type) are not supported";
	else
		return 0;
	if (*key == '\0')
		return loader_fail(ld, event_line(ld), "%s", why);
	return loader_fail(ld, event_line(ld), "key '%s': %s", key, why);
}

static int
scalar_copy(struct loader *ld, struct scalar *v_r)
{
	const yaml_event_t *ev = &ld->event;
	size_t len = ev->data.scalar.length;

	v_r->s = malloc(len + 1);
	if (v_r->s == NULL)
		return loader_fail(ld, event_line(ld), "out of memory");
	memcpy(v_r->s, ev->data.scalar.value, len);
	v_r->s[len] = '\0';
	v_r->len = len;
	v_r->line = event_line(ld);
	v_r->plain = ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
	return 0;
}

static void
scalars_free(struct scalar *v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i].s);
	free(v);
}

/* YAML's null: an unquoted empty value, ~ or null. */
static bool
scalar_is_null(const struct scalar *v)
{
	return v->plain && (v->len == 0 || strcmp(v->s, "~") == 0 ||
	    strcasecmp(v->s, "null") == 0);
}

/* v->s made safe to quote in a message. */
static const char *
esc(char *buf, size_t buflen, const struct scalar *v)
{
	return log_escape(buf, buflen, v->s, v->len);
}

static void *
field_of(struct config *cfg, const struct key_def *def)
{
	return (char *)cfg + def->offset;
}

/* ---- scalar checks shared by the setters ---- */

/* A decimal integer: optional '-', digits, no leading zero, no 0x/1_000. */
static int
parse_integer(const struct scalar *v, long long *r)
{
	const char *s = v->s;
	unsigned long long acc = 0;
	bool neg = false;

	if (!v->plain || v->len == 0 || v->len != strlen(s))
		return -1;
	if (*s == '-') {
		neg = true;
		s++;
	}
	if (*s == '\0' || strlen(s) > 18 || (s[0] == '0' && s[1] != '\0'))
		return -1;
	for (; *s != '\0'; s++) {
		if (*s < '0' || *s > '9')
			return -1;
		acc = acc * 10 + (unsigned long long)(*s - '0');
	}
	*r = neg ? -(long long)acc : (long long)acc;
	return 0;
}

/*
 * A string value: not null (unless the key allows it), not empty, no NUL,
 * not absurdly long. *s_r is a fresh copy, or NULL for an allowed null.
 */
static int
scalar_string(struct loader *ld, const struct key_def *def,
    const struct scalar *v, char **s_r)
{
	const char *expected = def->kind == KEY_LIST ? "a string" : def->expected;

	*s_r = NULL;
	if (scalar_is_null(v)) {
		if (def->nullable)
			return 0;
		return key_fail(ld, def, v->line, "expected %s, not null", expected);
	}
	if (v->len == 0)
		return key_fail(ld, def, v->line, "expected %s, not an empty string%s",
		    expected, def->nullable ? " (write null for none)" : "");
	if (memchr(v->s, '\0', v->len) != NULL)
		return key_fail(ld, def, v->line, "contains a NUL byte");
	if (v->len > CONFIG_VALUE_MAX)
		return key_fail(ld, def, v->line, "value too long (at most %d bytes)",
		    CONFIG_VALUE_MAX);
	*s_r = strdup(v->s);
	if (*s_r == NULL)
		return loader_fail(ld, v->line, "out of memory");
	return 0;
}

/* Replace the string field of def by s (which it now owns). */
static void
string_field_set(struct loader *ld, const struct key_def *def, char *s)
{
	char **field = field_of(ld->cfg, def);

	free(*field);
	*field = s;
}

/*
 * NULL if s is a host name by RFC 1123 (letters, digits, hyphens; labels
 * of 1..63 not starting or ending with '-'; not all-numeric at the end, so
 * no IP address), else why not.
 */
const char *
config_hostname_problem(const char *s)
{
	size_t len = strlen(s), label = 0;
	const char *last = s;

	if (len == 0)
		return "is empty";
	if (s[len - 1] == '.')
		return "has a trailing dot; write it without";
	if (len > HOSTNAME_MAX)
		return "is too long (at most 253 characters)";
	for (size_t i = 0; i <= len; i++) {
		char c = s[i];

		if (c == '.' || c == '\0') {
			if (label == 0 || label > LABEL_MAX)
				return "is not a valid host name (empty or over-long label)";
			if (s[i - 1] == '-' || s[i - label] == '-')
				return "is not a valid host name (a label starts or ends with '-')";
			if (c == '.')
				last = s + i + 1;
			label = 0;
			continue;
		}
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9') || c == '-'))
			return "is not a valid host name (letters, digits, '-' and '.' only; use the xn-- form for IDNs)";
		label++;
	}
	if (strspn(last, "0123456789") == strlen(last))
		return "is not a valid host name (the last label is numeric)";
	return NULL;
}

/* Strictly decimal 1..65535, no sign, no leading zero. */
static bool
valid_port(const char *s)
{
	size_t len = strlen(s);
	long v = 0;

	if (len == 0 || len > 5 || s[0] == '0')
		return false;
	for (size_t i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		v = v * 10 + (s[i] - '0');
	}
	return v <= 65535;
}

/* "HOST:PORT" where HOST is a host name or an IPv4 address, or "[IPV6]:PORT". */
static const char *
hostport_problem(const char *s)
{
	char host[HOSTNAME_MAX + 1];
	const char *colon = strrchr(s, ':');
	struct in6_addr a6;
	struct in_addr a4;
	size_t hlen;

	if (colon == NULL || !valid_port(colon + 1))
		return "expected HOST:PORT with a port of 1..65535";
	if (s[0] == '[') {
		hlen = (size_t)(colon - s);
		if (hlen < 3 || s[hlen - 1] != ']' || hlen - 2 >= sizeof(host))
			return "expected [IPV6]:PORT";
		memcpy(host, s + 1, hlen - 2);
		host[hlen - 2] = '\0';
		if (inet_pton(AF_INET6, host, &a6) != 1)
			return "not an IPv6 address inside [ ]";
		return NULL;
	}
	hlen = (size_t)(colon - s);
	if (hlen == 0 || hlen >= sizeof(host))
		return "bad host";
	memcpy(host, s, hlen);
	host[hlen] = '\0';
	if (inet_pton(AF_INET, host, &a4) == 1)
		return NULL;
	if (strchr(host, ':') != NULL)
		return "an IPv6 address needs brackets: [ADDRESS]:PORT";
	return config_hostname_problem(host) == NULL ? NULL :
	    "the host is neither a host name nor an IPv4 address";
}

/* ---- scalar setters ---- */

static int
set_bool(struct loader *ld, const struct key_def *def, const struct scalar *v)
{
	bool *field = field_of(ld->cfg, def);

	if (v->plain && (strcasecmp(v->s, "true") == 0 ||
	    strcasecmp(v->s, "yes") == 0))
		*field = true;
	else if (v->plain && (strcasecmp(v->s, "false") == 0 ||
	    strcasecmp(v->s, "no") == 0))
		*field = false;
	else
		return key_fail(ld, def, v->line, "expected %s", def->expected);
	return 0;
}

/* An int field, or a size_t one (def->is_size), within def->min..max. */
static int
set_number(struct loader *ld, const struct key_def *def, const struct scalar *v)
{
	char buf[LOG_ESCAPE_MAX];
	long long n;

	if (parse_integer(v, &n) < 0)
		return key_fail(ld, def, v->line, "expected %s", def->expected);
	if (n < def->min || n > def->max)
		return key_fail(ld, def, v->line, "%s is out of range %lld..%lld",
		    esc(buf, sizeof(buf), v), def->min, def->max);
	if (def->is_size)
		*(size_t *)field_of(ld->cfg, def) = (size_t)n;
	else
		*(int *)field_of(ld->cfg, def) = (int)n;
	return 0;
}

/* data_dir, tls.cert, tls.key: paths as written (relative to the cwd). */
static int
set_path(struct loader *ld, const struct key_def *def, const struct scalar *v)
{
	char *s;

	if (scalar_string(ld, def, v, &s) < 0)
		return -1;
	string_field_set(ld, def, s);
	return 0;
}

static int
set_hostname(struct loader *ld, const struct key_def *def, const struct scalar *v)
{
	char buf[LOG_ESCAPE_MAX];
	const char *why;
	char *s;

	if (scalar_string(ld, def, v, &s) < 0)
		return -1;
	why = config_hostname_problem(s);
	if (why == NULL && strchr(s, '.') == NULL)
		why = "is not a fully qualified domain name (mail.example.org)";
	if (why != NULL) {
		free(s);
		return key_fail(ld, def, v->line, "'%s' %s",
		    esc(buf, sizeof(buf), v), why);
	}
	string_field_set(ld, def, s);
	return 0;
}

/* A Unix user name as useradd takes it: [A-Za-z_][A-Za-z0-9_.-]*. */
static int
set_user(struct loader *ld, const struct key_def *def, const struct scalar *v)
{
	char buf[LOG_ESCAPE_MAX];
	char *s;

	if (scalar_string(ld, def, v, &s) < 0)
		return -1;
	if (s != NULL && (strlen(s) > USERNAME_MAX || s[0] == '-' ||
	    s[0] == '.' || (s[0] >= '0' && s[0] <= '9') ||
	    strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
	    "0123456789_.-") != strlen(s))) {
		free(s);
		return key_fail(ld, def, v->line, "'%s' is not a valid user name",
		    esc(buf, sizeof(buf), v));
	}
	string_field_set(ld, def, s);
	return 0;
}

static int
set_log_level(struct loader *ld, const struct key_def *def, const struct scalar *v)
{
	char *s;

	if (scalar_string(ld, def, v, &s) < 0)
		return -1;
	if (log_level_parse(s) < 0) {
		free(s);
		return key_fail(ld, def, v->line, "expected %s", def->expected);
	}
	string_field_set(ld, def, s);
	return 0;
}

static int
set_bare_lf(struct loader *ld, const struct key_def *def, const struct scalar *v)
{
	enum config_bare_lf *field = field_of(ld->cfg, def);

	if (strcmp(v->s, "normalize") == 0 && v->len == 9)
		*field = CONFIG_BARE_LF_NORMALIZE;
	else if (strcmp(v->s, "reject") == 0 && v->len == 6)
		*field = CONFIG_BARE_LF_REJECT;
	else
		return key_fail(ld, def, v->line, "expected %s", def->expected);
	return 0;
}

static int
set_smarthost(struct loader *ld, const struct key_def *def, const struct scalar *v)
{
	char buf[LOG_ESCAPE_MAX];
	const char *why;
	char *s;

	if (scalar_string(ld, def, v, &s) < 0)
		return -1;
	if (s != NULL && (why = hostport_problem(s)) != NULL) {
		free(s);
		return key_fail(ld, def, v->line, "bad smarthost '%s': %s",
		    esc(buf, sizeof(buf), v), why);
	}
	string_field_set(ld, def, s);
	return 0;
}

/*
 * queue_monitor.alert_command: an absolute program path and its arguments,
 * split on spaces and run without a shell; null for none.
 */
static int
set_command(struct loader *ld, const struct key_def *def, const struct scalar *v)
{
	char *s;

	if (scalar_string(ld, def, v, &s) < 0)
		return -1;
	if (s != NULL && s[0] != '/') {
		free(s);
		return key_fail(ld, def, v->line,
		    "expected an absolute program path (and arguments, split on spaces; no shell)");
	}
	for (const char *p = s; p != NULL && *p != '\0'; p++) {
		if ((unsigned char)*p < 0x20 || *p == 0x7f) {
			free(s);
			return key_fail(ld, def, v->line, "contains a control character");
		}
	}
	string_field_set(ld, def, s);
	return 0;
}

/* ---- list setters: each builds the new list, then replaces the old ---- */

static void
strings_free(char **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

/* Fresh copies of the list's strings, each checked like a string value. */
static int
strings_copy(struct loader *ld, const struct key_def *def,
    const struct scalar *v, size_t n, char ***list_r)
{
	char **list = calloc(n + 1, sizeof(*list));

	*list_r = NULL;
	if (list == NULL)
		return loader_fail(ld, 0, "out of memory");
	for (size_t i = 0; i < n; i++) {
		if (scalar_string(ld, def, &v[i], &list[i]) < 0) {
			strings_free(list, i);
			return -1;
		}
	}
	*list_r = list;
	return 0;
}

static int
set_domains(struct loader *ld, const struct key_def *def,
    const struct scalar *v, size_t n)
{
	char buf[LOG_ESCAPE_MAX];
	struct config *cfg = ld->cfg;
	const char *why;
	char **list;

	if (strings_copy(ld, def, v, n, &list) < 0)
		return -1;
	for (size_t i = 0; i < n; i++) {
		for (char *p = list[i]; *p != '\0'; p++)
			if (*p >= 'A' && *p <= 'Z')
				*p = (char)(*p - 'A' + 'a');
		if ((why = config_hostname_problem(list[i])) != NULL) {
			key_fail(ld, def, v[i].line, "'%s' %s",
			    esc(buf, sizeof(buf), &v[i]), why);
			goto fail;
		}
		for (size_t j = 0; j < i; j++) {
			if (strcmp(list[i], list[j]) == 0) {
				key_fail(ld, def, v[i].line,
				    "'%s' is listed twice", esc(buf, sizeof(buf), &v[i]));
				goto fail;
			}
		}
	}
	strings_free(cfg->domains, cfg->ndomains);
	cfg->domains = list;
	cfg->ndomains = n;
	return 0;
fail:
	strings_free(list, n);
	return -1;
}

/* Parse a list of networks into a new array (n+1 entries, never NULL). */
static int
cidrs_parse(struct loader *ld, const struct key_def *def, const struct scalar *v,
    size_t n, struct cidr **list_r)
{
	char buf[LOG_ESCAPE_MAX];
	struct cidr *list = calloc(n + 1, sizeof(*list));
	const char *why;
	char *s;

	if (list == NULL)
		return loader_fail(ld, 0, "out of memory");
	for (size_t i = 0; i < n; i++) {
		if (scalar_string(ld, def, &v[i], &s) < 0)
			goto fail;
		if (cidr_parse(s, &list[i], &why) < 0) {
			free(s);
			key_fail(ld, def, v[i].line, "bad network '%s': %s",
			    esc(buf, sizeof(buf), &v[i]), why);
			goto fail;
		}
		free(s);
	}
	*list_r = list;
	return 0;
fail:
	free(list);
	return -1;
}

static int
set_mynetworks(struct loader *ld, const struct key_def *def,
    const struct scalar *v, size_t n)
{
	struct cidr *list;

	if (cidrs_parse(ld, def, v, n, &list) < 0)
		return -1;
	free(ld->cfg->mynetworks);
	ld->cfg->mynetworks = list;
	ld->cfg->nmynetworks = n;
	return 0;
}

static int
set_ignoreip(struct loader *ld, const struct key_def *def,
    const struct scalar *v, size_t n)
{
	struct cidr *list;

	if (cidrs_parse(ld, def, v, n, &list) < 0)
		return -1;
	free(ld->cfg->intrusion_prevention.ignoreip);
	ld->cfg->intrusion_prevention.ignoreip = list;
	ld->cfg->intrusion_prevention.nignoreip = n;
	return 0;
}

static int
set_metrics_allow(struct loader *ld, const struct key_def *def,
    const struct scalar *v, size_t n)
{
	struct cidr *list;

	if (cidrs_parse(ld, def, v, n, &list) < 0)
		return -1;
	free(ld->cfg->http.metrics_allow);
	ld->cfg->http.metrics_allow = list;
	ld->cfg->http.nmetrics_allow = n;
	return 0;
}

/* Resolvers: "IPV4:PORT" or "[IPV6]:PORT", stored as written. */
static int
set_dns_servers(struct loader *ld, const struct key_def *def,
    const struct scalar *v, size_t n)
{
	char buf[LOG_ESCAPE_MAX];
	struct config *cfg = ld->cfg;
	struct sockaddr_storage ss;
	socklen_t sslen;
	const char *why;
	char **list;

	if (strings_copy(ld, def, v, n, &list) < 0)
		return -1;
	for (size_t i = 0; i < n; i++) {
		why = list[i][0] == '*' ? "a resolver needs a real address" : NULL;
		if (why == NULL &&
		    sockaddr_parse_listen(list[i], &ss, &sslen, &why) == 0)
			continue;
		key_fail(ld, def, v[i].line, "bad resolver '%s': %s",
		    esc(buf, sizeof(buf), &v[i]), why);
		strings_free(list, n);
		return -1;
	}
	strings_free(cfg->outbound.dns_servers, cfg->outbound.ndns_servers);
	cfg->outbound.dns_servers = list;
	cfg->outbound.ndns_servers = n;
	return 0;
}

/* The six listen lists, by name, for loops over all of them. */
static const struct {
	const char *name;
	size_t offset;
} listen_kinds[] = {
	{ .name = "smtp", .offset = offsetof(struct config, listen.smtp) },
	{ .name = "submission", .offset = offsetof(struct config, listen.submission) },
	{ .name = "submissions", .offset = offsetof(struct config, listen.submissions) },
	{ .name = "imap", .offset = offsetof(struct config, listen.imap) },
	{ .name = "imaps", .offset = offsetof(struct config, listen.imaps) },
	{ .name = "http", .offset = offsetof(struct config, listen.http) },
};
#define LISTEN_KINDS (sizeof(listen_kinds) / sizeof(listen_kinds[0]))

static struct config_listen_list *
listen_list(struct config *cfg, size_t kind)
{
	return (struct config_listen_list *)((char *)cfg +
	    listen_kinds[kind].offset);
}

static void
listen_list_clear(struct config_listen_list *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->v[i].text);
	free(l->v);
	l->v = NULL;
	l->n = 0;
}

/* A listen: section replaces all six lists: a kind it leaves out is off. */
static void
listen_enter(struct config *cfg)
{
	for (size_t k = 0; k < LISTEN_KINDS; k++)
		listen_list_clear(listen_list(cfg, k));
}

static bool
listen_list_has(const struct config_listen_list *l,
    const struct config_listen *want)
{
	for (size_t i = 0; i < l->n; i++)
		if (l->v[i].sslen == want->sslen &&
		    memcmp(&l->v[i].ss, &want->ss, want->sslen) == 0)
			return true;
	return false;
}

/* The listen kind already using this address, or NULL. */
static const char *
listen_find(struct config *cfg, const struct config_listen *want)
{
	for (size_t k = 0; k < LISTEN_KINDS; k++)
		if (listen_list_has(listen_list(cfg, k), want))
			return listen_kinds[k].name;
	return NULL;
}

/* Parse one listen address; no other listener may have it already. */
static int
listen_parse_one(struct loader *ld, const struct key_def *def,
    const struct scalar *v, struct config_listen *out,
    const struct config_listen_list *so_far)
{
	char buf[LOG_ESCAPE_MAX];
	const char *why, *other;

	if (scalar_string(ld, def, v, &out->text) < 0)
		return -1;
	if (sockaddr_parse_listen(out->text, &out->ss, &out->sslen, &why) < 0)
		return key_fail(ld, def, v->line, "bad address '%s': %s",
		    esc(buf, sizeof(buf), v), why);
	other = listen_list_has(so_far, out) ? def->key + strlen("listen.") :
	    listen_find(ld->cfg, out);
	if (other != NULL)
		return key_fail(ld, def, v->line,
		    "address '%s' is already used by listen.%s",
		    esc(buf, sizeof(buf), v), other);
	return 0;
}

static int
set_listen(struct loader *ld, const struct key_def *def,
    const struct scalar *v, size_t n)
{
	struct config_listen_list *field = field_of(ld->cfg, def);
	struct config_listen_list list = { .n = 0 };

	list.v = calloc(n + 1, sizeof(*list.v));
	if (list.v == NULL)
		return loader_fail(ld, 0, "out of memory");
	listen_list_clear(field);   /* so a repeat inside the list is found below */
	for (size_t i = 0; i < n; i++) {
		int r = listen_parse_one(ld, def, &v[i], &list.v[i], &list);

		list.n = i + 1;     /* list.v[i].text is ours to free either way */
		if (r < 0) {
			listen_list_clear(&list);
			return -1;
		}
	}
	*field = list;
	return 0;
}

/* ---- the vocabulary ---- */

#define EXPECT_INT "an integer"
#define EXPECT_BOOL "a boolean (true/false/yes/no)"
#define EXPECT_STRING "a string"
#define EXPECT_LIST "a list (write [] for none)"
#define CFG_OFF(f) offsetof(struct config, f)

#define BOOL_KEY(k, f) { .key = (k), .kind = KEY_SCALAR, .set = set_bool, \
	.expected = EXPECT_BOOL, .offset = CFG_OFF(f) }
#define INT_KEY(k, f, lo, hi) { .key = (k), .kind = KEY_SCALAR, \
	.set = set_number, .expected = EXPECT_INT, .offset = CFG_OFF(f), \
	.min = (lo), .max = (hi) }
#define SIZE_KEY(k, f, lo, hi) { .key = (k), .kind = KEY_SCALAR, \
	.set = set_number, .expected = EXPECT_INT, .offset = CFG_OFF(f), \
	.min = (lo), .max = (hi), .is_size = true }
#define LISTEN_KEY(k, f) { .key = (k), .kind = KEY_LIST, .set_list = set_listen, \
	.expected = EXPECT_LIST, .offset = CFG_OFF(f) }
#define SECTION_KEY(k, c) { .key = (k), .kind = KEY_SECTION, \
	.expected = "a mapping of keys", .children = (c) }

static const struct key_def listen_keys[] = {
	LISTEN_KEY("listen.smtp", listen.smtp),
	LISTEN_KEY("listen.submission", listen.submission),
	LISTEN_KEY("listen.submissions", listen.submissions),
	LISTEN_KEY("listen.imap", listen.imap),
	LISTEN_KEY("listen.imaps", listen.imaps),
	LISTEN_KEY("listen.http", listen.http),
	{ .key = NULL },
};

static const struct key_def tls_keys[] = {
	{ .key = "tls.cert", .kind = KEY_SCALAR, .set = set_path,
	  .expected = EXPECT_STRING, .offset = CFG_OFF(tls_cert), .nullable = true },
	{ .key = "tls.key", .kind = KEY_SCALAR, .set = set_path,
	  .expected = EXPECT_STRING, .offset = CFG_OFF(tls_key), .nullable = true },
	{ .key = NULL },
};

static const struct key_def outbound_keys[] = {
	{ .key = "outbound.smarthost", .kind = KEY_SCALAR, .set = set_smarthost,
	  .expected = EXPECT_STRING, .offset = CFG_OFF(outbound.smarthost),
	  .nullable = true },
	{ .key = "outbound.dns_servers", .kind = KEY_LIST,
	  .set_list = set_dns_servers, .expected = EXPECT_LIST },
	INT_KEY("outbound.max_connections", outbound.max_connections, 1, 100000),
	INT_KEY("outbound.max_per_destination", outbound.max_per_destination, 1, 100000),
	INT_KEY("outbound.max_messages_per_connection", outbound.max_messages_per_connection,
	    1, 1000000),
	INT_KEY("outbound.connection_idle_seconds", outbound.connection_idle_seconds, 0, 300),
	INT_KEY("outbound.retry_base", outbound.retry_base, 1, 86400),
	INT_KEY("outbound.retry_max", outbound.retry_max, 1, 2592000),
	INT_KEY("outbound.max_queue_lifetime", outbound.max_queue_lifetime, 1, 31536000),
	{ .key = NULL },
};

static const struct key_def smtp_keys[] = {
	SIZE_KEY("smtp.max_line_length", smtp.max_line_length, 512, 65536),
	SIZE_KEY("smtp.max_message_size", smtp.max_message_size, 1024, 2147483647),
	INT_KEY("smtp.max_recipients", smtp.max_recipients, 1, 100000),
	INT_KEY("smtp.max_errors", smtp.max_errors, 1, 1000),
	INT_KEY("smtp.idle_timeout", smtp.idle_timeout, 1, 86400),
	INT_KEY("smtp.data_timeout", smtp.data_timeout, 1, 86400),
	INT_KEY("smtp.max_connections_per_ip", smtp.max_connections_per_ip, 1, 1000000),
	INT_KEY("smtp.max_connections", smtp.max_connections, 1, 1000000),
	INT_KEY("smtp.greet_pause_ms", smtp.greet_pause_ms, 0, 60000),
	{ .key = "smtp.bare_lf", .kind = KEY_SCALAR, .set = set_bare_lf,
	  .expected = "normalize or reject", .offset = CFG_OFF(smtp.bare_lf) },
	INT_KEY("smtp.shutdown_timeout", smtp.shutdown_timeout, 0, 3600),
	{ .key = NULL },
};

static const struct key_def imap_keys[] = {
	SIZE_KEY("imap.max_line_length", imap.max_line_length, 1024, 1048576),
	SIZE_KEY("imap.max_literal_size", imap.max_literal_size, 1024, 67108864),
	SIZE_KEY("imap.max_message_size", imap.max_message_size, 1024, 1073741824),
	INT_KEY("imap.max_errors", imap.max_errors, 1, 1000),
	INT_KEY("imap.idle_timeout", imap.idle_timeout, 1, 86400),
	INT_KEY("imap.login_timeout", imap.login_timeout, 1, 86400),
	INT_KEY("imap.max_connections_per_ip", imap.max_connections_per_ip, 1, 1000000),
	INT_KEY("imap.max_connections", imap.max_connections, 1, 1000000),
	INT_KEY("imap.max_sessions_per_account", imap.max_sessions_per_account, 1, 1000000),
	{ .key = NULL },
};

static const struct key_def security_policy_keys[] = {
	BOOL_KEY("security_policy.require_email_confirmation",
	    security_policy.require_email_confirmation),
	INT_KEY("security_policy.max_failed_login_attempts",
	    security_policy.max_failed_login_attempts, 0, 1000),
	INT_KEY("security_policy.account_lockout_duration_minutes",
	    security_policy.account_lockout_duration_minutes, 0, 525600),
	INT_KEY("security_policy.minimum_password_length",
	    security_policy.minimum_password_length, 1, 1024),
	BOOL_KEY("security_policy.require_password_complexity",
	    security_policy.require_password_complexity),
	BOOL_KEY("security_policy.disable_smtp_auth_for_unconfirmed",
	    security_policy.disable_smtp_auth_for_unconfirmed),
	{ .key = NULL },
};

static const struct key_def intrusion_prevention_keys[] = {
	BOOL_KEY("intrusion_prevention.enabled", intrusion_prevention.enabled),
	INT_KEY("intrusion_prevention.maxretry", intrusion_prevention.maxretry, 1, 1000),
	INT_KEY("intrusion_prevention.findtime", intrusion_prevention.findtime, 1, 31536000),
	INT_KEY("intrusion_prevention.bantime", intrusion_prevention.bantime, 1, 31536000),
	INT_KEY("intrusion_prevention.bantime_max", intrusion_prevention.bantime_max, 1, 315360000),
	INT_KEY("intrusion_prevention.ipv6_prefix", intrusion_prevention.ipv6_prefix, 32, 128),
	INT_KEY("intrusion_prevention.maxretry_authenticated",
	    intrusion_prevention.maxretry_authenticated, 1, 100000),
	BOOL_KEY("intrusion_prevention.drop_before_accept", intrusion_prevention.drop_before_accept),
	{ .key = "intrusion_prevention.ignoreip", .kind = KEY_LIST, .set_list = set_ignoreip,
	  .expected = EXPECT_LIST },
	{ .key = NULL },
};

static const struct key_def accounts_keys[] = {
	INT_KEY("accounts.confirmation_ttl_hours", accounts.confirmation_ttl_hours, 1, 8760),
	INT_KEY("accounts.known_ip_days", accounts.known_ip_days, 0, 3650),
	{ .key = NULL },
};

static const struct key_def http_keys[] = {
	{ .key = "http.public_url", .kind = KEY_SCALAR, .set = set_path,
	  .expected = EXPECT_STRING, .offset = CFG_OFF(http.public_url), .nullable = true },
	{ .key = "http.metrics_allow", .kind = KEY_LIST, .set_list = set_metrics_allow,
	  .expected = EXPECT_LIST },
	{ .key = NULL },
};

#define DETECTOR_KEYS(name, f, tmax) \
	BOOL_KEY("queue_monitor.detectors." name ".enabled", f.enabled), \
	INT_KEY("queue_monitor.detectors." name ".threshold", f.threshold, 1, (tmax)), \
	INT_KEY("queue_monitor.detectors." name ".window_seconds", f.window_seconds, 1, 86400)

static const struct key_def detector_rate_limit_keys[] = {
	BOOL_KEY("queue_monitor.detectors.rate_limit.enabled",
	    queue_monitor.detectors.rate_limit.enabled),
	{ .key = NULL },
};

static const struct key_def detector_distinct_domains_keys[] = {
	DETECTOR_KEYS("distinct_domains", queue_monitor.detectors.distinct_domains, 100000),
	{ .key = NULL },
};

static const struct key_def detector_deferral_ratio_keys[] = {
	DETECTOR_KEYS("deferral_ratio", queue_monitor.detectors.deferral_ratio, 100),
	INT_KEY("queue_monitor.detectors.deferral_ratio.min_samples",
	    queue_monitor.detectors.deferral_ratio.min_samples, 1, 1000000),
	{ .key = NULL },
};

static const struct key_def detector_from_mismatch_keys[] = {
	DETECTOR_KEYS("from_mismatch", queue_monitor.detectors.from_mismatch, 100000),
	{ .key = NULL },
};

static const struct key_def detector_same_subject_keys[] = {
	DETECTOR_KEYS("same_subject", queue_monitor.detectors.same_subject, 1000000),
	{ .key = NULL },
};

static const struct key_def detectors_keys[] = {
	SECTION_KEY("queue_monitor.detectors.rate_limit", detector_rate_limit_keys),
	SECTION_KEY("queue_monitor.detectors.distinct_domains", detector_distinct_domains_keys),
	SECTION_KEY("queue_monitor.detectors.deferral_ratio", detector_deferral_ratio_keys),
	SECTION_KEY("queue_monitor.detectors.from_mismatch", detector_from_mismatch_keys),
	SECTION_KEY("queue_monitor.detectors.same_subject", detector_same_subject_keys),
	{ .key = NULL },
};

static const struct key_def queue_monitor_keys[] = {
	INT_KEY("queue_monitor.interval_seconds", queue_monitor.interval_seconds, 1, 86400),
	INT_KEY("queue_monitor.alert_threshold", queue_monitor.alert_threshold, 1, 1000000),
	{ .key = "queue_monitor.alert_command", .kind = KEY_SCALAR, .set = set_command,
	  .expected = EXPECT_STRING, .offset = CFG_OFF(queue_monitor.alert_command),
	  .nullable = true },
	INT_KEY("queue_monitor.alert_command_timeout", queue_monitor.alert_command_timeout, 1, 3600),
	INT_KEY("queue_monitor.alert_repeat_seconds", queue_monitor.alert_repeat_seconds, 1, 604800),
	BOOL_KEY("queue_monitor.containment", queue_monitor.containment),
	INT_KEY("queue_monitor.messages_per_hour", queue_monitor.messages_per_hour, 1, 10000000),
	INT_KEY("queue_monitor.recipients_per_hour", queue_monitor.recipients_per_hour, 1, 10000000),
	SECTION_KEY("queue_monitor.detectors", detectors_keys),
	{ .key = NULL },
};

static const struct key_def top_keys[] = {
	{ .key = "hostname", .kind = KEY_SCALAR, .set = set_hostname,
	  .expected = EXPECT_STRING, .offset = CFG_OFF(hostname) },
	{ .key = "domains", .kind = KEY_LIST, .set_list = set_domains,
	  .expected = EXPECT_LIST },
	{ .key = "data_dir", .kind = KEY_SCALAR, .set = set_path,
	  .expected = EXPECT_STRING, .offset = CFG_OFF(data_dir) },
	{ .key = "user", .kind = KEY_SCALAR, .set = set_user,
	  .expected = EXPECT_STRING, .offset = CFG_OFF(user), .nullable = true },
	{ .key = "log_level", .kind = KEY_SCALAR, .set = set_log_level,
	  .expected = "one of debug, info, warning, error",
	  .offset = CFG_OFF(log_level) },
	{ .key = "listen", .kind = KEY_SECTION, .expected = "a mapping of keys",
	  .children = listen_keys, .enter = listen_enter },
	SECTION_KEY("tls", tls_keys),
	{ .key = "mynetworks", .kind = KEY_LIST, .set_list = set_mynetworks,
	  .expected = EXPECT_LIST },
	BOOL_KEY("allow_nonlocal_mynetworks", allow_nonlocal_mynetworks),
	SECTION_KEY("outbound", outbound_keys),
	SECTION_KEY("smtp", smtp_keys),
	SECTION_KEY("imap", imap_keys),
	SECTION_KEY("security_policy", security_policy_keys),
	SECTION_KEY("intrusion_prevention", intrusion_prevention_keys),
	SECTION_KEY("accounts", accounts_keys),
	SECTION_KEY("http", http_keys),
	SECTION_KEY("queue_monitor", queue_monitor_keys),
	{ .key = NULL },
};

/* ---- the walk over events ---- */

static int parse_mapping(struct loader *ld, const struct key_def *defs,
    const char *section);

/* The last component of a dotted key. */
static const char *
key_leaf(const char *key)
{
	const char *dot = strrchr(key, '.');

	return dot != NULL ? dot + 1 : key;
}

/* Collect a sequence of scalars (current event: its start) and hand it on. */
static int
parse_list(struct loader *ld, const struct key_def *def)
{
	struct scalar *items = calloc(CONFIG_LIST_MAX, sizeof(*items));
	size_t n = 0;
	int r = -1;

	if (items == NULL)
		return loader_fail(ld, event_line(ld), "out of memory");
	for (;;) {
		if (loader_next(ld) < 0)
			goto out;
		if (ld->event.type == YAML_SEQUENCE_END_EVENT)
			break;
		if (check_node(ld, def->key) < 0)
			goto out;
		if (ld->event.type != YAML_SCALAR_EVENT) {
			key_fail(ld, def, event_line(ld),
			    "expected a list of strings, not a nested list or mapping");
			goto out;
		}
		if (n == CONFIG_LIST_MAX) {
			key_fail(ld, def, event_line(ld),
			    "too many entries (at most %d)", CONFIG_LIST_MAX);
			goto out;
		}
		if (scalar_copy(ld, &items[n]) < 0)
			goto out;
		n++;
	}
	r = def->set_list(ld, def, items, n);
out:
	scalars_free(items, n);
	return r;
}

/* The value of def; the current event is its first, and stays its last. */
static int
parse_value(struct loader *ld, const struct key_def *def)
{
	struct scalar v;
	int r;

	if (check_node(ld, def->key) < 0)
		return -1;
	switch (def->kind) {
	case KEY_SECTION:
		if (ld->event.type != YAML_MAPPING_START_EVENT)
			return key_fail(ld, def, event_line(ld), "expected %s",
			    def->expected);
		if (def->enter != NULL)
			def->enter(ld->cfg);
		return parse_mapping(ld, def->children, def->key);
	case KEY_LIST:
		if (ld->event.type != YAML_SEQUENCE_START_EVENT)
			return key_fail(ld, def, event_line(ld), "expected %s",
			    def->expected);
		return parse_list(ld, def);
	case KEY_SCALAR:
		if (ld->event.type != YAML_SCALAR_EVENT)
			return key_fail(ld, def, event_line(ld), "expected %s",
			    def->expected);
		if (scalar_copy(ld, &v) < 0)
			return -1;
		r = def->set(ld, def, &v);
		free(v.s);
		return r;
	}
	return loader_fail(ld, event_line(ld), "internal error: key kind");
}

/* Find the key of the current scalar event in defs; -1 if unknown. */
static int
key_lookup(const struct loader *ld, const struct key_def *defs)
{
	const char *k = (const char *)ld->event.data.scalar.value;
	size_t klen = ld->event.data.scalar.length;

	for (int i = 0; defs[i].key != NULL; i++) {
		const char *leaf = key_leaf(defs[i].key);

		if (strlen(leaf) == klen && memcmp(leaf, k, klen) == 0)
			return i;
	}
	return -1;
}

/*
 * A mapping of keys from defs (current event: its start; on return: its
 * end). section is "" at the top, else the dotted path for messages.
 */
static int
parse_mapping(struct loader *ld, const struct key_def *defs, const char *section)
{
	size_t seen_line[CONFIG_SECTION_KEYS] = { 0 };
	char buf[LOG_ESCAPE_MAX];
	int i;

	for (;;) {
		if (loader_next(ld) < 0)
			return -1;
		if (ld->event.type == YAML_MAPPING_END_EVENT)
			return 0;
		if (check_node(ld, section) < 0)
			return -1;
		if (ld->event.type != YAML_SCALAR_EVENT)
			return loader_fail(ld, event_line(ld), "%s%sa key must be"
			    " a plain name, not a list or mapping", section,
			    *section != '\0' ? ": " : "");
		if ((i = key_lookup(ld, defs)) < 0)
			return loader_fail(ld, event_line(ld), "unknown key '%s%s%s'",
			    section, *section != '\0' ? "." : "",
			    log_escape(buf, sizeof(buf),
			    (const char *)ld->event.data.scalar.value,
			    ld->event.data.scalar.length));
		if (i >= CONFIG_SECTION_KEYS)
			return loader_fail(ld, event_line(ld), "internal error: keys");
		if (seen_line[i] != 0)
			return loader_fail(ld, event_line(ld),
			    "duplicate key '%s' (first on line %zu)",
			    defs[i].key, seen_line[i]);
		seen_line[i] = event_line(ld);
		if (loader_next(ld) < 0 || parse_value(ld, &defs[i]) < 0)
			return -1;
	}
}

/* The document's root node: a mapping, or nothing at all (defaults). */
static int
parse_root(struct loader *ld)
{
	if (check_node(ld, "") < 0)
		return -1;
	if (ld->event.type == YAML_MAPPING_START_EVENT)
		return parse_mapping(ld, top_keys, "");
	if (ld->event.type == YAML_SCALAR_EVENT &&
	    ld->event.data.scalar.length == 0 &&
	    ld->event.data.scalar.style == YAML_PLAIN_SCALAR_STYLE)
		return 0;
	return loader_fail(ld, event_line(ld),
	    "the top level must be a mapping of keys (hostname: ..., domains: ...)");
}

/* STREAM-START (DOCUMENT-START root DOCUMENT-END)? STREAM-END */
static int
parse_stream(struct loader *ld)
{
	if (loader_next(ld) < 0)
		return -1;
	if (ld->event.type != YAML_STREAM_START_EVENT)
		return loader_fail(ld, event_line(ld), "internal error: no stream");
	if (loader_next(ld) < 0)
		return -1;
	if (ld->event.type == YAML_STREAM_END_EVENT)
		return 0;   /* empty or comments only: all defaults */
	if (loader_next(ld) < 0 || parse_root(ld) < 0)
		return -1;
	if (loader_next(ld) < 0 || loader_next(ld) < 0)   /* DOCUMENT-END, next */
		return -1;
	if (ld->event.type == YAML_DOCUMENT_START_EVENT)
		return loader_fail(ld, event_line(ld),
		    "a second YAML document ('---'): put everything in one");
	if (ld->event.type != YAML_STREAM_END_EVENT)
		return loader_fail(ld, event_line(ld), "internal error: stream end");
	return 0;
}

/* ---- defaults: the values of etc/bulwark.yaml (a unit test compares) ---- */

static const char *const default_listen[] = {
	"127.0.0.1:2525", "127.0.0.1:5870", "127.0.0.1:4650",
	"127.0.0.1:1430", "127.0.0.1:9930", "127.0.0.1:8080",
};

static int
default_listen_set(struct config *cfg)
{
	const char *why;

	for (size_t k = 0; k < LISTEN_KINDS; k++) {
		struct config_listen_list *l = listen_list(cfg, k);

		l->v = calloc(1, sizeof(*l->v));
		if (l->v == NULL)
			return -1;
		l->v[0].text = strdup(default_listen[k]);
		l->n = 1;
		if (l->v[0].text == NULL ||
		    sockaddr_parse_listen(default_listen[k], &l->v[0].ss,
		    &l->v[0].sslen, &why) < 0)
			return -1;
	}
	return 0;
}

static int
default_lists_set(struct config *cfg)
{
	const char *why;

	cfg->domains = calloc(2, sizeof(*cfg->domains));
	if (cfg->domains == NULL ||
	    (cfg->domains[0] = strdup("example.test")) == NULL)
		return -1;
	cfg->ndomains = 1;
	cfg->mynetworks = calloc(2, sizeof(*cfg->mynetworks));
	if (cfg->mynetworks == NULL ||
	    cidr_parse("127.0.0.0/8", &cfg->mynetworks[0], &why) < 0 ||
	    cidr_parse("::1/128", &cfg->mynetworks[1], &why) < 0)
		return -1;
	cfg->nmynetworks = 2;
	return default_listen_set(cfg);
}

static void
default_numbers_set(struct config *cfg)
{
	cfg->allow_nonlocal_mynetworks = false;
	cfg->smtp = (struct config_smtp){
		.max_line_length = 1000,
		.max_message_size = 26214400,
		.max_recipients = 100,
		.max_errors = 10,
		.idle_timeout = 300,
		.data_timeout = 600,
		.max_connections_per_ip = 20,
		.max_connections = 1000,
		.greet_pause_ms = 1000,
		.bare_lf = CONFIG_BARE_LF_NORMALIZE,
		.shutdown_timeout = 10,
	};
	cfg->imap = (struct config_imap){
		.max_line_length = 65536,
		.max_literal_size = 1048576,
		.max_message_size = 67108864,
		.max_errors = 10,
		.idle_timeout = 1800,
		.login_timeout = 60,
		.max_connections_per_ip = 50,
		.max_connections = 5000,
		.max_sessions_per_account = 50,
	};
	cfg->security_policy = (struct config_security_policy){
		.require_email_confirmation = true,
		.max_failed_login_attempts = 3,
		.account_lockout_duration_minutes = 60,
		.minimum_password_length = 12,
		.require_password_complexity = true,
		.disable_smtp_auth_for_unconfirmed = true,
	};
	cfg->intrusion_prevention = (struct config_intrusion_prevention){
		.enabled = true,
		.maxretry = 5,
		.findtime = 300,
		.bantime = 3600,
		.bantime_max = 604800,
		.ipv6_prefix = 64,
		.maxretry_authenticated = 20,
		.drop_before_accept = true,
	};
	cfg->accounts = (struct config_accounts){
		.confirmation_ttl_hours = 24,
		.known_ip_days = 30,
	};
	cfg->outbound.max_connections = 100;
	cfg->outbound.max_per_destination = 20;
	cfg->outbound.max_messages_per_connection = 100;
	cfg->outbound.connection_idle_seconds = 5;
	cfg->outbound.retry_base = 300;
	cfg->outbound.retry_max = 14400;
	cfg->outbound.max_queue_lifetime = 432000;
	cfg->queue_monitor = (struct config_queue_monitor){
		.interval_seconds = 30,
		.alert_threshold = 5,
		.alert_command_timeout = 10,
		.alert_repeat_seconds = 3600,
		.containment = true,
		.messages_per_hour = 100,
		.recipients_per_hour = 500,
		.detectors = {
			.rate_limit = { .enabled = true },
			.distinct_domains = { .enabled = true, .threshold = 30, .window_seconds = 600 },
			.deferral_ratio = { .enabled = true, .threshold = 60, .window_seconds = 3600,
			    .min_samples = 20 },
			.from_mismatch = { .enabled = true, .threshold = 3, .window_seconds = 3600 },
			.same_subject = { .enabled = true, .threshold = 100, .window_seconds = 600 },
		},
	};
}

static struct config *
config_new_default(const char *name)
{
	struct config *cfg = calloc(1, sizeof(*cfg));

	if (cfg == NULL)
		return NULL;
	cfg->path = strdup(name);
	cfg->hostname = strdup("mail.example.test");
	cfg->data_dir = strdup("var");
	cfg->log_level = strdup("info");
	default_numbers_set(cfg);
	if (cfg->path == NULL || cfg->hostname == NULL || cfg->data_dir == NULL ||
	    cfg->log_level == NULL || default_lists_set(cfg) < 0)
		config_free(&cfg);
	return cfg;
}

/* ---- the door ---- */

static LOG_PRINTF(2, 3) int
error_set(char **error_r, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	if (vasprintf(error_r, fmt, ap) < 0)
		*error_r = NULL;
	va_end(ap);
	return -1;
}

/* ignoreip and http.metrics_allow, when not given, are mynetworks. */
static int
lists_default_to_mynetworks(struct config *cfg)
{
	size_t bytes = (cfg->nmynetworks + 1) * sizeof(struct cidr);

	if (cfg->intrusion_prevention.ignoreip == NULL) {
		if ((cfg->intrusion_prevention.ignoreip = malloc(bytes)) == NULL)
			return -1;
		memcpy(cfg->intrusion_prevention.ignoreip, cfg->mynetworks,
		    cfg->nmynetworks * sizeof(struct cidr));
		cfg->intrusion_prevention.nignoreip = cfg->nmynetworks;
	}
	if (cfg->http.metrics_allow == NULL) {
		if ((cfg->http.metrics_allow = malloc(bytes)) == NULL)
			return -1;
		memcpy(cfg->http.metrics_allow, cfg->mynetworks,
		    cfg->nmynetworks * sizeof(struct cidr));
		cfg->http.nmetrics_allow = cfg->nmynetworks;
	}
	return 0;
}

int
config_load_string(const char *name, const char *text, size_t len,
    struct config **cfg_r, char **error_r)
{
	struct loader ld = { .name = name != NULL ? name : "(config)" };
	int r;

	*cfg_r = NULL;
	*error_r = NULL;
	if (len > CONFIG_FILE_MAX)
		return error_set(error_r, "%s: too large (over %d bytes)",
		    ld.name, CONFIG_FILE_MAX);
	ld.text = text != NULL ? text : "";
	ld.len = text != NULL ? len : 0;
	ld.cfg = config_new_default(ld.name);
	if (ld.cfg == NULL)
		return error_set(error_r, "%s: out of memory", ld.name);
	if (!yaml_parser_initialize(&ld.parser)) {
		config_free(&ld.cfg);
		return error_set(error_r, "%s: out of memory", ld.name);
	}
	yaml_parser_set_input_string(&ld.parser,
	    (const unsigned char *)ld.text, ld.len);
	r = parse_stream(&ld);
	if (ld.have_event)
		yaml_event_delete(&ld.event);
	yaml_parser_delete(&ld.parser);
	if (r < 0) {
		config_free(&ld.cfg);
		*error_r = ld.error;
		return -1;
	}
	free(ld.error);
	if (lists_default_to_mynetworks(ld.cfg) < 0) {
		config_free(&ld.cfg);
		return error_set(error_r, "%s: out of memory", ld.name);
	}
	*cfg_r = ld.cfg;
	return 0;
}

/* Read a file; more than CONFIG_FILE_MAX bytes is refused by the caller. */
static int
file_read(const char *path, char **text_r, size_t *len_r, char **error_r)
{
	char *buf = malloc(CONFIG_FILE_MAX + 1);
	FILE *fp;
	size_t len;

	if (buf == NULL)
		return error_set(error_r, "%s: out of memory", path);
	if ((fp = fopen(path, "r")) == NULL) {
		free(buf);
		return error_set(error_r, "%s: %s", path, strerror(errno));
	}
	len = fread(buf, 1, CONFIG_FILE_MAX + 1, fp);
	if (ferror(fp)) {
		error_set(error_r, "%s: %s", path, strerror(errno));
		free(buf);
		fclose(fp);
		return -1;
	}
	fclose(fp);
	*text_r = buf;
	*len_r = len;
	return 0;
}

int
config_load(const char *path, struct config **cfg_r, char **error_r)
{
	char *text = NULL;
	size_t len = 0;
	int r;

	*cfg_r = NULL;
	*error_r = NULL;
	if (file_read(path, &text, &len, error_r) < 0)
		return -1;
	r = config_load_string(path, text, len, cfg_r, error_r);
	free(text);
	return r;
}

void
config_free(struct config **cfgp)
{
	struct config *cfg;

	if (cfgp == NULL || (cfg = *cfgp) == NULL)
		return;
	free(cfg->path);
	free(cfg->hostname);
	strings_free(cfg->domains, cfg->ndomains);
	free(cfg->data_dir);
	free(cfg->user);
	free(cfg->log_level);
	for (size_t k = 0; k < LISTEN_KINDS; k++)
		listen_list_clear(listen_list(cfg, k));
	free(cfg->tls_cert);
	free(cfg->tls_key);
	free(cfg->mynetworks);
	free(cfg->intrusion_prevention.ignoreip);
	free(cfg->http.public_url);
	free(cfg->http.metrics_allow);
	free(cfg->outbound.smarthost);
	strings_free(cfg->outbound.dns_servers, cfg->outbound.ndns_servers);
	free(cfg->queue_monitor.alert_command);
	free(cfg);
	*cfgp = NULL;
}

bool
config_is_local_domain(const struct config *cfg, const char *domain)
{
	if (cfg == NULL || domain == NULL)
		return false;
	for (size_t i = 0; i < cfg->ndomains; i++)
		if (strcasecmp(cfg->domains[i], domain) == 0)
			return true;
	return false;
}
