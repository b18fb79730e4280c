/*
 * imap_commands.c: the IMAP command table (name, allowed states, act
 * function, flags) and the commands that are not FETCH, SEARCH or login:
 * RFC 3501 6.1-6.4, UIDPLUS (RFC 4315), MOVE (RFC 6851), IDLE (RFC 2177),
 * ENABLE (RFC 5161), ID (RFC 2971), NAMESPACE (RFC 2342), UNSELECT (RFC
 * 3691), SPECIAL-USE (RFC 6154), CHILDREN (RFC 3348). Arguments come from
 * the parser already bounded; here they are checked for meaning.
 */
#include <event2/buffer.h>
#include <inttypes.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/config.h"
#include "core/log.h"
#include "imap/imap_session_private.h"

#define ST_NA (1u << IMAP_STATE_NOT_AUTHENTICATED)
#define ST_AU (1u << IMAP_STATE_AUTHENTICATED)
#define ST_SE (1u << IMAP_STATE_SELECTED)
#define ST_ANY (ST_NA | ST_AU | ST_SE)
#define ST_AUTH (ST_AU | ST_SE)

enum {
	CMD_NO_EXPUNGE = 1 << 0,   /* no EXPUNGE responses after it (RFC 3501 7.4.1) unless UID */
	CMD_UID = 1 << 1,          /* may follow UID */
};

enum cmd_result {
	CMD_OK = 0,     /* sync, then "TAG OK text" */
	CMD_NO,         /* sync, then "TAG NO text" */
	CMD_BAD,        /* "TAG BAD text", counts as an error */
	CMD_DONE,       /* the command wrote its own reply, or goes on asynchronously */
};

struct cmd {
	const char *tag;
	const char *name;
	struct imap_arg *args;
	size_t nargs;
	bool uid;
	char text[512];
};

struct command {
	const char *name;
	unsigned states;
	enum cmd_result (*act)(struct imap_session *s, struct cmd *c);
	unsigned flags;
};

static enum cmd_result
reply(struct cmd *c, enum cmd_result r, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static enum cmd_result
reply(struct cmd *c, enum cmd_result r, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(c->text, sizeof(c->text), fmt, ap);
	va_end(ap);
	return r;
}

void
imap_command_capability_list(struct imap_session *s, struct evbuffer *out)
{
	evbuffer_add_printf(out, "CAPABILITY IMAP4rev1 LITERAL+ SASL-IR ID ENABLE IDLE NAMESPACE "
	    "UNSELECT CHILDREN SPECIAL-USE UIDPLUS MOVE CONDSTORE");
	if (s->state == IMAP_STATE_NOT_AUTHENTICATED) {
		if (s->kind == IMAP_LISTENER_IMAP && !s->tls)
			evbuffer_add_printf(out, " STARTTLS");
		if (imap_auth_allowed(s))
			evbuffer_add_printf(out, " AUTH=PLAIN");
		else
			evbuffer_add_printf(out, " LOGINDISABLED");
	}
}

/* A mailbox name argument: "INBOX" in any case becomes INBOX; 8-bit is refused
 * (names are modified UTF-7 on the wire, RFC 3501 5.1.3). NULL if bad. */
static const char *
mailbox_arg(struct imap_arg *a)
{
	if (!imap_arg_is_string(a) || a->len == 0 || a->len > 900 || memchr(a->str, '\0', a->len))
		return NULL;
	for (size_t i = 0; i < a->len; i++)
		if ((unsigned char)a->str[i] >= 0x80 || (unsigned char)a->str[i] < 0x20)
			return NULL;
	if (strcasecmp(a->str, "INBOX") == 0)
		memcpy(a->str, "INBOX", 5);
	while (a->len > 1 && a->str[a->len - 1] == '/')   /* CREATE "a/" */
		a->str[--a->len] = '\0';
	return a->str;
}

static void uidset_write(struct evbuffer *out, const uint32_t *v, size_t n);

static enum cmd_result
store_error(struct cmd *c, enum imap_store_error err, bool trycreate)
{
	switch (err) {
	case IMAP_STORE_ERR_NONEXISTENT:
		return trycreate ? reply(c, CMD_NO, "[TRYCREATE] Mailbox does not exist") :
		    reply(c, CMD_NO, "[NONEXISTENT] Mailbox does not exist");
	case IMAP_STORE_ERR_EXISTS:
		return reply(c, CMD_NO, "[ALREADYEXISTS] Mailbox already exists");
	case IMAP_STORE_ERR_BADNAME:
		return reply(c, CMD_NO, "[CANNOT] Invalid mailbox name");
	case IMAP_STORE_ERR_INBOX:
		return reply(c, CMD_NO, "[CANNOT] Not allowed on INBOX");
	case IMAP_STORE_ERR_QUOTA:
		return reply(c, CMD_NO, "[OVERQUOTA] Out of disk space");
	default:
		return reply(c, CMD_NO, "[SERVERBUG] Internal error, try again later");
	}
}

/* ---- any state ---- */

static enum cmd_result
cmd_capability(struct imap_session *s, struct cmd *c)
{
	struct evbuffer *out = imap_session_out(s);

	if (c->nargs != 0)
		return reply(c, CMD_BAD, "CAPABILITY takes no arguments");
	evbuffer_add_printf(out, "* ");
	imap_command_capability_list(s, out);
	evbuffer_add_printf(out, "\r\n");
	return reply(c, CMD_OK, "CAPABILITY completed");
}

static enum cmd_result
cmd_noop(struct imap_session *s, struct cmd *c)
{
	if (c->nargs != 0)
		return reply(c, CMD_BAD, "%s takes no arguments", c->name);
	return reply(c, CMD_OK, "%s completed", c->name);
}

static enum cmd_result
cmd_logout(struct imap_session *s, struct cmd *c)
{
	if (c->nargs != 0)
		return reply(c, CMD_BAD, "LOGOUT takes no arguments");
	imap_session_printf(s, "* BYE Logging out\r\n");
	imap_session_tagged(s, c->tag, "OK LOGOUT completed");
	imap_session_close(s);
	return CMD_DONE;
}

static enum cmd_result
cmd_id(struct imap_session *s, struct cmd *c)
{
	if (c->nargs != 1 || (c->args[0].type != IMAP_ARG_LIST && !imap_arg_atom_is(&c->args[0], "NIL")))
		return reply(c, CMD_BAD, "ID takes a list or NIL");
	imap_session_printf(s, "* ID (\"name\" \"bulwark\")\r\n");
	return reply(c, CMD_OK, "ID completed");
}

static enum cmd_result
cmd_enable(struct imap_session *s, struct cmd *c)
{
	bool condstore = false;

	if (c->nargs == 0)
		return reply(c, CMD_BAD, "ENABLE needs arguments");
	for (size_t i = 0; i < c->nargs; i++) {
		if (c->args[i].type != IMAP_ARG_ATOM)
			return reply(c, CMD_BAD, "ENABLE takes capability names");
		if (strcasecmp(c->args[i].str, "CONDSTORE") == 0)
			condstore = true;   /* others are ignored (RFC 5161 3.1) */
	}
	/* RFC 5161: ENABLED lists only what this command newly enabled. */
	imap_session_printf(s, "* ENABLED%s\r\n", condstore && !s->condstore ? " CONDSTORE" : "");
	if (condstore)
		s->condstore = true;
	return reply(c, CMD_OK, "ENABLE completed");
}

/* ---- not authenticated ---- */

static enum cmd_result
cmd_starttls(struct imap_session *s, struct cmd *c)
{
	if (c->nargs != 0)
		return reply(c, CMD_BAD, "STARTTLS takes no arguments");
	if (s->tls || s->kind != IMAP_LISTENER_IMAP)
		return reply(c, CMD_BAD, "TLS is already active");
	imap_session_start_tls(s, c->tag);
	return CMD_DONE;
}

static enum cmd_result
cmd_login(struct imap_session *s, struct cmd *c)
{
	if (c->nargs != 2 || !imap_arg_is_string(&c->args[0]) || !imap_arg_is_string(&c->args[1]))
		return reply(c, CMD_BAD, "LOGIN needs a user name and a password");
	if (!imap_auth_allowed(s))
		return reply(c, CMD_NO, "[PRIVACYREQUIRED] LOGIN is disabled before STARTTLS");
	imap_auth_login(s, c->tag, c->args[0].str, c->args[0].len, c->args[1].str, c->args[1].len);
	sodium_memzero(c->args[1].str, c->args[1].len);
	return CMD_DONE;
}

static enum cmd_result
cmd_authenticate(struct imap_session *s, struct cmd *c)
{
	if (c->nargs < 1 || c->nargs > 2 || c->args[0].type != IMAP_ARG_ATOM ||
	    (c->nargs == 2 && !imap_arg_is_string(&c->args[1])))
		return reply(c, CMD_BAD, "AUTHENTICATE needs a mechanism");
	if (!imap_auth_allowed(s))
		return reply(c, CMD_NO, "[PRIVACYREQUIRED] AUTHENTICATE is disabled before STARTTLS");
	imap_auth_authenticate(s, c->tag, c->args[0].str, c->nargs == 2 ? c->args[1].str : NULL);
	if (c->nargs == 2)
		sodium_memzero(c->args[1].str, c->args[1].len);
	return CMD_DONE;
}

/* ---- authenticated ---- */

static enum cmd_result
cmd_select(struct imap_session *s, struct cmd *c)
{
	bool readonly = strcmp(c->name, "EXAMINE") == 0;
	enum imap_store_error err = IMAP_STORE_OK;
	const char *name;
	struct evbuffer *out = imap_session_out(s);
	uint32_t count, recent = 0, unseen = 0;

	if (c->nargs < 1 || c->nargs > 2 || (name = mailbox_arg(&c->args[0])) == NULL)
		return reply(c, CMD_BAD, "%s needs a mailbox name", c->name);
	if (c->nargs == 2) {
		/* RFC 7162 3.1.8: SELECT box (CONDSTORE) */
		if (c->args[1].type != IMAP_ARG_LIST || c->args[1].n != 1 ||
		    !imap_arg_atom_is(&c->args[1].list[0], "CONDSTORE"))
			return reply(c, CMD_BAD, "Unknown SELECT parameter");
		s->condstore = true;
	}
	if (s->mb != NULL) {
		imap_session_unselect(s);
		imap_session_enter_state(s, IMAP_STATE_AUTHENTICATED);
		/* RFC 7162 3.2.11 [CLOSED] is for QRESYNC; harmless without it. */
	}
	if ((s->mb = imap_mailbox_open(s->store, name, readonly, &err)) == NULL)
		return store_error(c, err, false);
	s->readonly = readonly;
	count = imap_mailbox_count(s->mb);
	for (uint32_t i = 1; i <= count; i++) {
		const struct imap_msg *m = imap_mailbox_msg(s->mb, i);

		if (m == NULL)
			continue;
		if (m->flags & IMAP_FLAG_RECENT)
			recent++;
		if (unseen == 0 && !(m->flags & IMAP_FLAG_SEEN))
			unseen = i;
	}
	imap_session_flags_response(s);
	evbuffer_add_printf(out, "* %" PRIu32 " EXISTS\r\n* %" PRIu32 " RECENT\r\n", count, recent);
	if (unseen > 0)
		evbuffer_add_printf(out, "* OK [UNSEEN %" PRIu32 "] First unseen\r\n", unseen);
	evbuffer_add_printf(out, "* OK [UIDVALIDITY %" PRIu32 "] UIDs valid\r\n"
	    "* OK [UIDNEXT %" PRIu32 "] Predicted next UID\r\n",
	    imap_mailbox_uidvalidity(s->mb), imap_mailbox_uidnext(s->mb));
	/* RFC 7162 3.1.2.1: on every SELECT of a mailbox with mod-sequences */
	evbuffer_add_printf(out, "* OK [HIGHESTMODSEQ %" PRIu64 "] Highest\r\n",
	    imap_mailbox_highestmodseq(s->mb));
	imap_session_enter_state(s, IMAP_STATE_SELECTED);
	return reply(c, CMD_OK, "[%s] %s completed", readonly ? "READ-ONLY" : "READ-WRITE", c->name);
}

static enum cmd_result
cmd_create(struct imap_session *s, struct cmd *c)
{
	enum imap_store_error err = IMAP_STORE_OK;
	const char *name;

	if (c->nargs != 1 || (name = mailbox_arg(&c->args[0])) == NULL)
		return reply(c, CMD_BAD, "CREATE needs a mailbox name");
	if (strcmp(name, "INBOX") == 0)
		return reply(c, CMD_NO, "[ALREADYEXISTS] INBOX always exists");
	if (imap_store_create(s->store, name, &err) == -1)
		return store_error(c, err, false);
	return reply(c, CMD_OK, "CREATE completed");
}

static enum cmd_result
cmd_delete(struct imap_session *s, struct cmd *c)
{
	enum imap_store_error err = IMAP_STORE_OK;
	const char *name;

	if (c->nargs != 1 || (name = mailbox_arg(&c->args[0])) == NULL)
		return reply(c, CMD_BAD, "DELETE needs a mailbox name");
	if (imap_store_delete(s->store, name, &err) == -1)
		return store_error(c, err, false);
	return reply(c, CMD_OK, "DELETE completed");
}

static enum cmd_result
cmd_rename(struct imap_session *s, struct cmd *c)
{
	enum imap_store_error err = IMAP_STORE_OK;
	const char *from, *to;

	if (c->nargs != 2 || (from = mailbox_arg(&c->args[0])) == NULL ||
	    (to = mailbox_arg(&c->args[1])) == NULL)
		return reply(c, CMD_BAD, "RENAME needs two mailbox names");
	if (imap_store_rename(s->store, from, to, &err) == -1)
		return store_error(c, err, false);
	return reply(c, CMD_OK, "RENAME completed");
}

static enum cmd_result
cmd_subscribe(struct imap_session *s, struct cmd *c)
{
	enum imap_store_error err = IMAP_STORE_OK;
	bool on = strcmp(c->name, "SUBSCRIBE") == 0;
	const char *name;

	if (c->nargs != 1 || (name = mailbox_arg(&c->args[0])) == NULL)
		return reply(c, CMD_BAD, "%s needs a mailbox name", c->name);
	if (imap_store_subscribe(s->store, name, on, &err) == -1)
		return store_error(c, err, false);
	return reply(c, CMD_OK, "%s completed", c->name);
}

/* LIST pattern match (RFC 3501 6.3.8): '*' anything, '%' anything but the
 * delimiter. A DP over (pattern, name): linear memory, no backtracking blowup. */
static bool
list_match(const char *pat, const char *name, bool ci)
{
	size_t m = strlen(pat), n = strlen(name);
	bool *prev = calloc(n + 1, sizeof(bool)), *cur = calloc(n + 1, sizeof(bool)), r;

	if (prev == NULL || cur == NULL) {
		free(prev);
		free(cur);
		return false;
	}
	prev[0] = true;
	for (size_t j = 1; j <= n; j++)
		prev[j] = false;
	for (size_t i = 1; i <= m; i++) {
		char pc = pat[i - 1];

		cur[0] = prev[0] && (pc == '*' || pc == '%');
		for (size_t j = 1; j <= n; j++) {
			char nc = name[j - 1];

			if (pc == '*')
				cur[j] = prev[j] || cur[j - 1];
			else if (pc == '%')
				cur[j] = prev[j] || (cur[j - 1] && nc != '/');
			else
				cur[j] = prev[j - 1] && (pc == nc || (ci &&
				    (pc | 0x20) == (nc | 0x20) && ((pc | 0x20) >= 'a' && (pc | 0x20) <= 'z')));
		}
		{
			bool *t = prev;

			prev = cur;
			cur = t;
		}
	}
	r = prev[n];
	free(prev);
	free(cur);
	return r;
}

static void
list_attrs(struct evbuffer *out, unsigned attrs, bool lsub)
{
	static const struct {
		unsigned bit;
		const char *name;
	} names[] = {
		{ IMAP_MBOX_NOSELECT, "\\Noselect" }, { IMAP_MBOX_HASCHILDREN, "\\HasChildren" },
		{ IMAP_MBOX_HASNOCHILDREN, "\\HasNoChildren" }, { IMAP_MBOX_SENT, "\\Sent" },
		{ IMAP_MBOX_DRAFTS, "\\Drafts" }, { IMAP_MBOX_TRASH, "\\Trash" },
		{ IMAP_MBOX_JUNK, "\\Junk" }, { IMAP_MBOX_ARCHIVE, "\\Archive" },
	};
	bool first = true;

	evbuffer_add(out, "(", 1);
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if (!(attrs & names[i].bit))
			continue;
		if (lsub && names[i].bit != IMAP_MBOX_NOSELECT)
			continue;
		evbuffer_add_printf(out, "%s%s", first ? "" : " ", names[i].name);
		first = false;
	}
	evbuffer_add(out, ")", 1);
}

/* Is name subscribed? */
static bool
lsub_subscribed(const struct imap_mailbox_info *list, size_t n, const char *name, size_t len)
{
	for (size_t i = 0; i < n; i++)
		if ((list[i].attrs & IMAP_MBOX_SUBSCRIBED) && strlen(list[i].name) == len &&
		    strncmp(list[i].name, name, len) == 0)
			return true;
	return false;
}

/*
 * RFC 3501 6.3.9: with '%', a level above a subscribed mailbox that matches
 * the pattern but is not subscribed itself is returned with \Noselect.
 */
static void
lsub_parents(struct evbuffer *out, const char *pat, const struct imap_mailbox_info *list, size_t n)
{
	char **seen = calloc(n + 1, sizeof(char *));
	size_t nseen = 0;

	if (seen == NULL)
		return;
	for (size_t i = 0; i < n; i++) {
		const char *name = list[i].name;

		if (!(list[i].attrs & IMAP_MBOX_SUBSCRIBED))
			continue;
		for (const char *sl = strchr(name, '/'); sl != NULL; sl = strchr(sl + 1, '/')) {
			size_t len = (size_t)(sl - name);
			char *parent = strndup(name, len);
			bool dup = false;

			if (parent == NULL)
				break;
			for (size_t k = 0; k < nseen && !dup; k++)
				dup = strcmp(seen[k], parent) == 0;
			if (dup || lsub_subscribed(list, n, name, len) || !list_match(pat, parent, false) ||
			    nseen >= n) {
				free(parent);
				continue;
			}
			evbuffer_add_printf(out, "* LSUB (\\Noselect) \"/\" ");
			imap_write_string(out, parent, len);
			evbuffer_add_printf(out, "\r\n");
			seen[nseen++] = parent;
		}
	}
	for (size_t k = 0; k < nseen; k++)
		free(seen[k]);
	free(seen);
}

static enum cmd_result
cmd_list(struct imap_session *s, struct cmd *c)
{
	bool lsub = strcmp(c->name, "LSUB") == 0;
	struct evbuffer *out = imap_session_out(s);
	struct imap_mailbox_info *list = NULL;
	size_t n = 0;
	const char *ref, *pat;
	char *full;

	if (c->nargs != 2 || !imap_arg_is_string(&c->args[0]) || !imap_arg_is_string(&c->args[1]))
		return reply(c, CMD_BAD, "%s needs a reference and a pattern", c->name);
	ref = c->args[0].str;
	pat = c->args[1].str;
	if (pat[0] == '\0') {
		if (!lsub)
			evbuffer_add_printf(out, "* LIST (\\Noselect) \"/\" \"\"\r\n");
		return reply(c, CMD_OK, "%s completed", c->name);
	}
	if (asprintf(&full, "%s%s", pat[0] == '/' ? "" : ref, pat) == -1)
		return reply(c, CMD_NO, "[SERVERBUG] Out of memory");
	if (imap_store_list(s->store, &list, &n) == -1) {
		free(full);
		return reply(c, CMD_NO, "[SERVERBUG] Cannot list mailboxes");
	}
	for (size_t i = 0; i < n; i++) {
		const char *name = list[i].name;

		if (lsub && !(list[i].attrs & IMAP_MBOX_SUBSCRIBED))
			continue;
		if (!list_match(full, name, strcmp(name, "INBOX") == 0))
			continue;
		evbuffer_add_printf(out, "* %s ", c->name);
		list_attrs(out, list[i].attrs, lsub);
		evbuffer_add_printf(out, " \"/\" ");
		imap_write_string(out, name, strlen(name));
		evbuffer_add_printf(out, "\r\n");
	}
	if (lsub && strchr(full, '%') != NULL)
		lsub_parents(out, full, list, n);
	imap_store_infos_free(&list, n);
	free(full);
	return reply(c, CMD_OK, "%s completed", c->name);
}

static enum cmd_result
cmd_status(struct imap_session *s, struct cmd *c)
{
	struct evbuffer *out = imap_session_out(s);
	enum imap_store_error err = IMAP_STORE_OK;
	struct imap_status st;
	const struct imap_arg *items;
	const char *name;
	bool first = true;

	if (c->nargs != 2 || (name = mailbox_arg(&c->args[0])) == NULL ||
	    c->args[1].type != IMAP_ARG_LIST || c->args[1].n == 0)
		return reply(c, CMD_BAD, "STATUS needs a mailbox and a list of items");
	items = &c->args[1];
	for (size_t i = 0; i < items->n; i++) {
		const char *w = imap_arg_str(&items->list[i]);

		if (items->list[i].type != IMAP_ARG_ATOM || (strcasecmp(w, "MESSAGES") != 0 &&
		    strcasecmp(w, "RECENT") != 0 && strcasecmp(w, "UIDNEXT") != 0 &&
		    strcasecmp(w, "UIDVALIDITY") != 0 && strcasecmp(w, "UNSEEN") != 0 &&
		    strcasecmp(w, "HIGHESTMODSEQ") != 0))
			return reply(c, CMD_BAD, "Unknown STATUS item");
	}
	if (imap_store_status(s->store, name, &st, &err) == -1)
		return store_error(c, err, false);
	evbuffer_add_printf(out, "* STATUS ");
	imap_write_string(out, name, strlen(name));
	evbuffer_add_printf(out, " (");
	for (size_t i = 0; i < items->n; i++) {
		const char *w = items->list[i].str;
		uint64_t v;

		if (strcasecmp(w, "MESSAGES") == 0)
			v = st.messages, w = "MESSAGES";
		else if (strcasecmp(w, "RECENT") == 0)
			v = st.recent, w = "RECENT";
		else if (strcasecmp(w, "UIDNEXT") == 0)
			v = st.uidnext, w = "UIDNEXT";
		else if (strcasecmp(w, "UIDVALIDITY") == 0)
			v = st.uidvalidity, w = "UIDVALIDITY";
		else if (strcasecmp(w, "UNSEEN") == 0)
			v = st.unseen, w = "UNSEEN";
		else
			v = st.highestmodseq, w = "HIGHESTMODSEQ";
		evbuffer_add_printf(out, "%s%s %" PRIu64, first ? "" : " ", w, v);
		first = false;
	}
	evbuffer_add_printf(out, ")\r\n");
	return reply(c, CMD_OK, "STATUS completed");
}

static enum cmd_result
cmd_append(struct imap_session *s, struct cmd *c)
{
	enum imap_store_error err = IMAP_STORE_OK;
	const char *name, *error;
	uint32_t flags = 0, uidvalidity = 0, uid = 0;
	char **kw = NULL;
	int64_t date = -1;
	size_t i = 1;
	const struct imap_arg *msg;

	if (c->nargs < 2 || c->nargs > 4 || (name = mailbox_arg(&c->args[0])) == NULL)
		return reply(c, CMD_BAD, "APPEND needs a mailbox and a message");
	if (c->args[i].type == IMAP_ARG_LIST) {
		if (imap_flags_parse(&c->args[i], &flags, &kw, &error) == -1)
			return reply(c, CMD_BAD, "%s", error);
		i++;
	}
	if (i < c->nargs - 1) {
		if (c->args[i].type != IMAP_ARG_QUOTED ||
		    (date = imap_datetime_parse(c->args[i].str)) < 0) {
			imap_keywords_free(&kw);
			return reply(c, CMD_BAD, "Invalid date-time");
		}
		i++;
	}
	msg = &c->args[i];
	if (i != c->nargs - 1 || !imap_arg_is_string(msg) || msg->type == IMAP_ARG_ATOM) {
		imap_keywords_free(&kw);
		return reply(c, CMD_BAD, "APPEND needs the message as a literal");
	}
	if (msg->len == 0) {
		imap_keywords_free(&kw);
		return reply(c, CMD_NO, "Cannot save an empty message");
	}
	if (imap_store_append(s->store, name, msg->str, msg->len, flags, (const char *const *)kw,
	    date, &uidvalidity, &uid, &err) == -1) {
		imap_keywords_free(&kw);
		return store_error(c, err, true);
	}
	imap_keywords_free(&kw);
	log_info("event=imap.append session=%s client=%s account=%s size=%zu uid=%" PRIu32, s->id,
	    s->ip, s->account, msg->len, uid);
	return reply(c, CMD_OK, "[APPENDUID %" PRIu32 " %" PRIu32 "] APPEND completed", uidvalidity,
	    uid);
}

static enum cmd_result
cmd_idle(struct imap_session *s, struct cmd *c)
{
	if (c->nargs != 0)
		return reply(c, CMD_BAD, "IDLE takes no arguments");
	imap_session_idle_start(s, c->tag);
	return CMD_DONE;
}

static enum cmd_result
cmd_namespace(struct imap_session *s, struct cmd *c)
{
	if (c->nargs != 0)
		return reply(c, CMD_BAD, "NAMESPACE takes no arguments");
	imap_session_printf(s, "* NAMESPACE ((\"\" \"/\")) NIL NIL\r\n");
	return reply(c, CMD_OK, "NAMESPACE completed");
}

/* ---- selected ---- */

static enum cmd_result
cmd_close(struct imap_session *s, struct cmd *c)
{
	enum imap_store_error err = IMAP_STORE_OK;
	bool unselect = strcmp(c->name, "UNSELECT") == 0;

	if (c->nargs != 0)
		return reply(c, CMD_BAD, "%s takes no arguments", c->name);
	/* CLOSE expunges silently (RFC 3501 6.4.2); UNSELECT does not (RFC 3691). */
	if (!unselect && !s->readonly &&
	    imap_mailbox_expunge(s->mb, NULL, 0, NULL, NULL, &err) == -1)
		log_warnx("event=imap.error session=%s client=%s account=%s reason=close_expunge",
		    s->id, s->ip, s->account);
	imap_session_unselect(s);
	imap_session_enter_state(s, IMAP_STATE_AUTHENTICATED);
	return reply(c, CMD_OK, "%s completed", c->name);
}

static enum cmd_result
cmd_expunge(struct imap_session *s, struct cmd *c)
{
	enum imap_store_error err = IMAP_STORE_OK;
	uint32_t *uids = NULL;
	size_t n = 0;
	int r;

	if (c->nargs != (c->uid ? 1u : 0u))
		return reply(c, CMD_BAD, c->uid ? "UID EXPUNGE needs a UID set" :
		    "EXPUNGE takes no arguments");
	if (s->readonly)
		return reply(c, CMD_NO, "[READ-ONLY] Mailbox is read-only");
	if (c->uid) {
		struct imap_seqset set;
		const char *error;
		uint32_t *seqs = NULL;

		if (c->args[0].type != IMAP_ARG_ATOM ||
		    imap_seqset_parse(c->args[0].str, &set, &error) == -1)
			return reply(c, CMD_BAD, "Invalid UID set");
		r = imap_session_seqs(s, &set, true, &seqs, &n);
		imap_seqset_free(&set);
		if (r == -1)
			return reply(c, CMD_NO, "[SERVERBUG] Out of memory");
		if (n == 0) {
			free(seqs);
			return reply(c, CMD_OK, "UID EXPUNGE completed");
		}
		if ((uids = calloc(n, sizeof(*uids))) == NULL) {
			free(seqs);
			return reply(c, CMD_NO, "[SERVERBUG] Out of memory");
		}
		for (size_t i = 0; i < n; i++)
			uids[i] = imap_mailbox_msg(s->mb, seqs[i])->uid;
		free(seqs);
	}
	r = imap_mailbox_expunge(s->mb, uids, c->uid ? n : 0, &imap_session_sync_cbs, s, &err);
	free(uids);
	if (r == -1)
		return store_error(c, err, false);
	return reply(c, CMD_OK, "%sEXPUNGE completed", c->uid ? "UID " : "");
}

static enum cmd_result
cmd_store(struct imap_session *s, struct cmd *c)
{
	struct imap_seqset set;
	enum imap_flag_op op = IMAP_FLAGS_SET;
	enum imap_store_error err = IMAP_STORE_OK;
	const char *what, *error;
	uint32_t flags, *seqs = NULL, *modified = NULL;
	char **kw = NULL;
	bool silent, conditional = false, vanished = false;
	size_t n = 0, nmod = 0, a = 1;
	uint64_t unchangedsince = 0;
	struct imap_arg flagarg;
	enum cmd_result r;
	int sr;

	if (c->nargs >= 2 && c->args[1].type == IMAP_ARG_LIST) {
		/* RFC 7162 3.1.3: STORE set (UNCHANGEDSINCE n) item flags */
		const struct imap_arg *m = &c->args[1];
		char *e;

		if (m->n != 2 || !imap_arg_atom_is(&m->list[0], "UNCHANGEDSINCE") ||
		    m->list[1].type != IMAP_ARG_ATOM || m->list[1].str[0] < '0' || m->list[1].str[0] > '9')
			return reply(c, CMD_BAD, "Unknown STORE modifier");
		unchangedsince = strtoull(m->list[1].str, &e, 10);
		if (*e != '\0')
			return reply(c, CMD_BAD, "Invalid UNCHANGEDSINCE");
		conditional = true;
		s->condstore = true;
		a = 2;
	}
	if (c->nargs < a + 2 || c->args[0].type != IMAP_ARG_ATOM || c->args[a].type != IMAP_ARG_ATOM)
		return reply(c, CMD_BAD, "STORE needs a set, an item and flags");
	what = c->args[a].str;
	if (what[0] == '+' || what[0] == '-') {
		op = what[0] == '+' ? IMAP_FLAGS_ADD : IMAP_FLAGS_REMOVE;
		what++;
	}
	if (strcasecmp(what, "FLAGS") == 0)
		silent = false;
	else if (strcasecmp(what, "FLAGS.SILENT") == 0)
		silent = true;
	else
		return reply(c, CMD_BAD, "Unknown STORE item");
	/* "FLAGS (\Seen \Deleted)" or, as RFC 3501 9 allows, flags without parentheses */
	if (c->nargs == a + 2)
		flagarg = c->args[a + 1];
	else
		flagarg = (struct imap_arg){ .type = IMAP_ARG_LIST, .list = &c->args[a + 1],
		    .n = c->nargs - a - 1 };
	if (imap_flags_parse(&flagarg, &flags, &kw, &error) == -1)
		return reply(c, CMD_BAD, "%s", error);
	if (imap_seqset_parse(c->args[0].str, &set, &error) == -1) {
		imap_keywords_free(&kw);
		return reply(c, CMD_BAD, "%s", error);
	}
	if (s->readonly) {
		imap_seqset_free(&set);
		imap_keywords_free(&kw);
		return reply(c, CMD_NO, "[READ-ONLY] Mailbox is read-only");
	}
	sr = imap_session_seqs(s, &set, c->uid, &seqs, &n);
	imap_seqset_free(&set);
	if (sr < 0) {
		imap_keywords_free(&kw);
		return sr == -2 ? reply(c, CMD_BAD, "Invalid sequence number") :
		    reply(c, CMD_NO, "[SERVERBUG] Out of memory");
	}
	if (conditional && n > 0 && (modified = calloc(n, sizeof(*modified))) == NULL) {
		free(seqs);
		imap_keywords_free(&kw);
		return reply(c, CMD_NO, "[SERVERBUG] Out of memory");
	}
	r = CMD_OK;
	for (size_t i = 0; i < n; i++) {
		const struct imap_msg *m = imap_mailbox_msg(s->mb, seqs[i]);

		if (conditional && m != NULL && m->modseq > unchangedsince) {
			modified[nmod++] = c->uid ? m->uid : seqs[i];
			continue;
		}
		if (imap_mailbox_store(s->mb, seqs[i], op, flags, (const char *const *)kw, &err) == -1) {
			if (err == IMAP_STORE_ERR_NONEXISTENT) {
				vanished = true;   /* expunged by another session (RFC 2180 4.2.1) */
				continue;
			}
			r = store_error(c, err, false);
			break;
		}
		if (!silent || s->condstore)
			imap_fetch_store_response(s, seqs[i], c->uid, silent);
	}
	if (r == CMD_OK && vanished && nmod == 0) {
		r = reply(c, CMD_NO, "[EXPUNGEISSUED] Some of the requested messages no longer exist");
	} else if (r == CMD_OK) {
		if (nmod > 0) {
			struct evbuffer *b = evbuffer_new();
			size_t len;

			if (b != NULL) {
				uidset_write(b, modified, nmod);
				len = evbuffer_get_length(b);
				if (len > sizeof(c->text) - 64)
					len = 0;   /* XXX: a huge MODIFIED set is not reported */
				r = reply(c, CMD_OK, "[MODIFIED %.*s] Conditional STORE failed", (int)len,
				    (const char *)evbuffer_pullup(b, -1));
				evbuffer_free(b);
			}
		} else {
			r = reply(c, CMD_OK, "%sSTORE completed", c->uid ? "UID " : "");
		}
	}
	free(seqs);
	free(modified);
	imap_keywords_free(&kw);
	return r;
}

/* "1:3,7" from an ascending list of UIDs. */
static void
uidset_write(struct evbuffer *out, const uint32_t *v, size_t n)
{
	for (size_t i = 0; i < n;) {
		size_t j = i;

		while (j + 1 < n && v[j + 1] == v[j] + 1)
			j++;
		if (j > i)
			evbuffer_add_printf(out, "%s%" PRIu32 ":%" PRIu32, i > 0 ? "," : "", v[i], v[j]);
		else
			evbuffer_add_printf(out, "%s%" PRIu32, i > 0 ? "," : "", v[i]);
		i = j + 1;
	}
}

/* MOVE: the untagged responses the store reports, kept in order until the
 * "* OK [COPYUID ...]" that RFC 6851 4.3 wants before them is written. */
struct move_ctx {
	struct imap_session *s;
	struct evbuffer *buf;
};

static void
move_expunged_cb(void *ctx, uint32_t seq)
{
	struct move_ctx *m = ctx;

	evbuffer_add_printf(m->buf, "* %" PRIu32 " EXPUNGE\r\n", seq);
}

static void
move_exists_cb(void *ctx, uint32_t count)
{
	struct move_ctx *m = ctx;

	evbuffer_add_printf(m->buf, "* %" PRIu32 " EXISTS\r\n", count);
}

static void
move_recent_cb(void *ctx, uint32_t count)
{
	struct move_ctx *m = ctx;

	evbuffer_add_printf(m->buf, "* %" PRIu32 " RECENT\r\n", count);
}

static void
move_flags_cb(void *ctx, uint32_t seq)
{
	struct move_ctx *m = ctx;

	imap_fetch_flags_write(m->buf, m->s, seq, true, false);
}

static enum cmd_result
cmd_copy(struct imap_session *s, struct cmd *c)
{
	bool move = strcmp(c->name, "MOVE") == 0;
	struct imap_sync_cb cb = { .expunged = move_expunged_cb, .exists = move_exists_cb,
	    .recent = move_recent_cb, .flags = move_flags_cb };
	struct move_ctx mc = { .s = s };
	enum imap_store_error err = IMAP_STORE_OK;
	struct imap_seqset set;
	const char *dest, *error;
	uint32_t *seqs = NULL, *src = NULL, *dst = NULL, dest_uidvalidity = 0;
	size_t n = 0;
	struct evbuffer *out = imap_session_out(s), *code = NULL;
	enum cmd_result r;
	int sr;

	if (c->nargs != 2 || c->args[0].type != IMAP_ARG_ATOM ||
	    (dest = mailbox_arg(&c->args[1])) == NULL)
		return reply(c, CMD_BAD, "%s needs a set and a mailbox", c->name);
	if (imap_seqset_parse(c->args[0].str, &set, &error) == -1)
		return reply(c, CMD_BAD, "%s", error);
	if (move && s->readonly) {
		imap_seqset_free(&set);
		return reply(c, CMD_NO, "[READ-ONLY] Mailbox is read-only");
	}
	sr = imap_session_seqs(s, &set, c->uid, &seqs, &n);
	imap_seqset_free(&set);
	if (sr < 0)
		return sr == -2 ? reply(c, CMD_BAD, "Invalid sequence number") :
		    reply(c, CMD_NO, "[SERVERBUG] Out of memory");
	if (n == 0) {
		free(seqs);
		return reply(c, CMD_OK, "No messages");
	}
	src = calloc(n, sizeof(*src));
	dst = calloc(n, sizeof(*dst));
	mc.buf = evbuffer_new();
	code = evbuffer_new();
	if (src == NULL || dst == NULL || mc.buf == NULL || code == NULL) {
		r = reply(c, CMD_NO, "[SERVERBUG] Out of memory");
		goto out;
	}
	for (size_t i = 0; i < n; i++)
		src[i] = imap_mailbox_msg(s->mb, seqs[i])->uid;
	if (imap_mailbox_copy(s->mb, seqs, n, dest, move, &dest_uidvalidity, dst, &cb, &mc,
	    &err) == -1) {
		struct imap_status st;
		enum imap_store_error err2;

		/* NONEXISTENT is the destination, or a source message another
		 * session expunged (RFC 2180 4.4.1, RFC 5530 EXPUNGEISSUED). */
		if (err == IMAP_STORE_ERR_NONEXISTENT && imap_store_status(s->store, dest, &st, &err2) == 0)
			r = reply(c, CMD_NO, "[EXPUNGEISSUED] Some of the requested messages no longer exist");
		else
			r = store_error(c, err, true);
		goto out;
	}
	evbuffer_add_printf(code, "[COPYUID %" PRIu32 " ", dest_uidvalidity);
	uidset_write(code, src, n);
	evbuffer_add(code, " ", 1);
	uidset_write(code, dst, n);
	evbuffer_add(code, "]", 1);
	if (move) {
		/* RFC 6851 4.3: COPYUID in an untagged OK before the EXPUNGEs. */
		evbuffer_add_printf(out, "* OK ");
		evbuffer_add_buffer(out, code);
		evbuffer_add_printf(out, " Moved\r\n");
		evbuffer_add_buffer(out, mc.buf);
		r = reply(c, CMD_OK, "%sMOVE completed", c->uid ? "UID " : "");
	} else {
		size_t len = evbuffer_get_length(code);

		if (len > sizeof(c->text) - 32) {
			/* too long for the tagged line's buffer: say it untagged */
			evbuffer_add_printf(out, "* OK ");
			evbuffer_add_buffer(out, code);
			evbuffer_add_printf(out, " Copied\r\n");
			r = reply(c, CMD_OK, "%sCOPY completed", c->uid ? "UID " : "");
		} else {
			char buf[sizeof(c->text)];

			evbuffer_remove(code, buf, len);
			buf[len] = '\0';
			r = reply(c, CMD_OK, "%s %sCOPY completed", buf, c->uid ? "UID " : "");
		}
	}
out:
	if (code != NULL)
		evbuffer_free(code);
	if (mc.buf != NULL) {
		/* a failed MOVE may still have reported something */
		evbuffer_add_buffer(out, mc.buf);
		evbuffer_free(mc.buf);
	}
	free(seqs);
	free(src);
	free(dst);
	return r;
}

static enum cmd_result
cmd_fetch(struct imap_session *s, struct cmd *c)
{
	imap_fetch_start(s, c->tag, c->uid, c->args, c->nargs);
	return CMD_DONE;
}

static enum cmd_result
cmd_search(struct imap_session *s, struct cmd *c)
{
	imap_search_command(s, c->tag, c->uid, c->args, c->nargs);
	return CMD_DONE;
}

static const struct command commands[] = {
	{ "CAPABILITY", ST_ANY, cmd_capability, 0 },
	{ "NOOP", ST_ANY, cmd_noop, 0 },
	{ "LOGOUT", ST_ANY, cmd_logout, 0 },
	{ "ID", ST_ANY, cmd_id, 0 },
	{ "STARTTLS", ST_NA, cmd_starttls, 0 },
	{ "LOGIN", ST_NA, cmd_login, 0 },
	{ "AUTHENTICATE", ST_NA, cmd_authenticate, 0 },
	{ "ENABLE", ST_AUTH, cmd_enable, 0 },
	{ "SELECT", ST_AUTH, cmd_select, 0 },
	{ "EXAMINE", ST_AUTH, cmd_select, 0 },
	{ "CREATE", ST_AUTH, cmd_create, 0 },
	{ "DELETE", ST_AUTH, cmd_delete, 0 },
	{ "RENAME", ST_AUTH, cmd_rename, 0 },
	{ "SUBSCRIBE", ST_AUTH, cmd_subscribe, 0 },
	{ "UNSUBSCRIBE", ST_AUTH, cmd_subscribe, 0 },
	{ "LIST", ST_AUTH, cmd_list, 0 },
	{ "LSUB", ST_AUTH, cmd_list, 0 },
	{ "STATUS", ST_AUTH, cmd_status, 0 },
	{ "APPEND", ST_AUTH, cmd_append, 0 },
	{ "IDLE", ST_AUTH, cmd_idle, 0 },
	{ "NAMESPACE", ST_AUTH, cmd_namespace, 0 },
	{ "CHECK", ST_SE, cmd_noop, 0 },
	{ "CLOSE", ST_SE, cmd_close, 0 },
	{ "UNSELECT", ST_SE, cmd_close, 0 },
	{ "EXPUNGE", ST_SE, cmd_expunge, CMD_UID },
	{ "SEARCH", ST_SE, cmd_search, CMD_NO_EXPUNGE | CMD_UID },
	{ "FETCH", ST_SE, cmd_fetch, CMD_NO_EXPUNGE | CMD_UID },
	{ "STORE", ST_SE, cmd_store, CMD_NO_EXPUNGE | CMD_UID },
	{ "COPY", ST_SE, cmd_copy, CMD_UID },
	{ "MOVE", ST_SE, cmd_copy, CMD_UID },
};

void
imap_command_dispatch(struct imap_session *s, const char *tag, const char *name,
    struct imap_arg *args, size_t nargs)
{
	struct cmd c = { .tag = tag, .name = name, .args = args, .nargs = nargs };
	const struct command *cmd = NULL;
	enum cmd_result r;

	if (strcmp(name, "UID") == 0) {
		if (nargs == 0 || args[0].type != IMAP_ARG_ATOM) {
			imap_session_error(s, tag, "BAD UID needs a command");
			return;
		}
		c.uid = true;
		for (char *p = args[0].str; *p != '\0'; p++)
			*p = (char)(*p >= 'a' && *p <= 'z' ? *p - 32 : *p);
		c.name = args[0].str;
		c.args = args + 1;
		c.nargs = nargs - 1;
	}
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
		if (strcmp(commands[i].name, c.name) == 0) {
			cmd = &commands[i];
			break;
		}
	}
	if (cmd == NULL || (c.uid && !(cmd->flags & CMD_UID))) {
		/* The name is not logged: a misframed literal can make a password
		 * look like a command. */
		log_info("event=imap.unknown_command session=%s client=%s length=%zu", s->id, s->ip,
		    strlen(c.name));
		imap_session_error(s, tag, "BAD Unknown command");
		return;
	}
	if (!(cmd->states & (1u << s->state))) {
		imap_session_error(s, tag, "BAD %s not allowed %s", c.name,
		    s->state == IMAP_STATE_NOT_AUTHENTICATED ? "before login" :
		    s->state == IMAP_STATE_SELECTED ? "now" : "without a selected mailbox");
		return;
	}
	r = cmd->act(s, &c);
	switch (r) {
	case CMD_DONE:
		return;
	case CMD_BAD:
		imap_session_error(s, tag, "BAD %s", c.text);
		return;
	case CMD_OK:
	case CMD_NO:
		imap_session_sync(s, !(cmd->flags & CMD_NO_EXPUNGE) || c.uid);
		imap_session_tagged(s, tag, "%s %s", r == CMD_OK ? "OK" : "NO", c.text);
		return;
	}
}
