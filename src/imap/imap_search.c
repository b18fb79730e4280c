/*
 * imap_search.c: SEARCH and UID SEARCH (RFC 3501 6.4.4, 7.2.5) over the
 * selected mailbox, with "$" saving (RFC 5182 semantics, not advertised).
 * Flags, dates, sizes and UIDs come from the view; header keys from the
 * store's cached header block; BODY and TEXT read and parse the message
 * (imap_mime decodes RFC 2047, charsets and transfer encodings). Each message
 * is parsed at most once per SEARCH, and only if a key needs it.
 */
#include <ctype.h>
#include <errno.h>
#include <event2/buffer.h>
#include <iconv.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "core/log.h"
#include "imap/imap_mime.h"
#include "imap/imap_session_private.h"

struct search_msg {
	struct imap_session *s;
	uint32_t seq;
	const struct imap_msg *m;
	const char *hraw;          /* the header block as cached (valid until the next store call) */
	size_t hrawlen;
	struct imap_mime *hdr;     /* the header block, parsed on demand */
	struct imap_mime *full;    /* the whole message, parsed on demand */
	char *raw;
	bool failed;
};

static struct imap_mime *
search_hdr(struct search_msg *sm)
{
	enum imap_store_error err;
	size_t len;
	const char *h;

	if (sm->hdr != NULL || sm->failed)
		return sm->hdr;
	if ((h = imap_mailbox_header(sm->s->mb, sm->seq, &len, &err)) == NULL ||
	    (sm->hdr = imap_mime_parse(h, len)) == NULL)
		sm->failed = true;
	return sm->hdr;
}

/*
 * Can the needle not be in this header at all? Only when that is certain
 * without decoding: an ASCII needle without white space (unfolding only
 * removes CRLF before white space) in a header of plain ASCII without
 * encoded words. Then the raw bytes decide, and most messages of a large
 * mailbox are never parsed.
 */
static bool
search_hdr_cannot_match(struct search_msg *sm, const char *needle)
{
	enum imap_store_error err;
	size_t nlen = strlen(needle);

	if (nlen == 0 || sm->hdr != NULL)
		return false;
	for (size_t i = 0; i < nlen; i++)
		if ((unsigned char)needle[i] >= 0x80 || needle[i] == ' ' || needle[i] == '\t')
			return false;
	if (sm->hraw == NULL &&
	    (sm->hraw = imap_mailbox_header(sm->s->mb, sm->seq, &sm->hrawlen, &err)) == NULL)
		return false;
	for (size_t i = 0; i < sm->hrawlen; i++) {
		unsigned char c = (unsigned char)sm->hraw[i];

		if (c >= 0x80 || c == 0 || (c == '=' && i + 1 < sm->hrawlen && sm->hraw[i + 1] == '?'))
			return false;
	}
	{
		char lo = (char)tolower((unsigned char)needle[0]), up = (char)toupper((unsigned char)needle[0]);

		for (size_t i = 0; i + nlen <= sm->hrawlen; i++)
			if ((sm->hraw[i] == lo || sm->hraw[i] == up) &&
			    strncasecmp(sm->hraw + i + 1, needle + 1, nlen - 1) == 0)
				return false;
	}
	return true;
}

static struct imap_mime *
search_full(struct search_msg *sm)
{
	enum imap_store_error err;
	size_t len;

	if (sm->full != NULL || sm->failed)
		return sm->full;
	if ((sm->raw = imap_mailbox_read(sm->s->mb, sm->seq, &len, &err)) == NULL ||
	    (sm->full = imap_mime_parse(sm->raw, len)) == NULL)
		sm->failed = true;
	return sm->full;
}

static bool
has_keyword(const struct imap_msg *m, const char *kw)
{
	for (size_t i = 0; m->keywords != NULL && m->keywords[i] != NULL; i++)
		if (strcasecmp(m->keywords[i], kw) == 0)
			return true;
	return false;
}

static int64_t
day_of(int64_t t)
{
	return t >= 0 ? t / 86400 : (t - 86399) / 86400;
}

static bool
search_match(struct search_msg *sm, const struct imap_search_node *n)
{
	const struct imap_msg *m = sm->m;
	struct imap_session *s = sm->s;

	switch (n->key) {
	case IMAP_SK_AND:
		for (size_t i = 0; i < n->nkids; i++)
			if (!search_match(sm, &n->kids[i]))
				return false;
		return true;
	case IMAP_SK_OR:
		return search_match(sm, &n->kids[0]) || search_match(sm, &n->kids[1]);
	case IMAP_SK_NOT:
		return !search_match(sm, &n->kids[0]);
	case IMAP_SK_ALL:
		return true;
	case IMAP_SK_FLAG:
		return (m->flags & n->num) == n->num;
	case IMAP_SK_UNFLAG:
		return (m->flags & n->num) == 0;
	case IMAP_SK_KEYWORD:
		return has_keyword(m, n->str);
	case IMAP_SK_UNKEYWORD:
		return !has_keyword(m, n->str);
	case IMAP_SK_NEW:
		return (m->flags & IMAP_FLAG_RECENT) && !(m->flags & IMAP_FLAG_SEEN);
	case IMAP_SK_OLD:
		return !(m->flags & IMAP_FLAG_RECENT);
	case IMAP_SK_BEFORE:
		return day_of(m->internaldate) < n->day;
	case IMAP_SK_ON:
		return day_of(m->internaldate) == n->day;
	case IMAP_SK_SINCE:
		return day_of(m->internaldate) >= n->day;
	case IMAP_SK_SENTBEFORE:
	case IMAP_SK_SENTON:
	case IMAP_SK_SENTSINCE: {
		struct imap_mime *h = search_hdr(sm);
		int64_t t = h != NULL ? imap_mime_sent_date(h) : -1, d;

		if (t == -1)
			t = 0;   /* no usable Date: the epoch, as Dovecot */
		d = day_of(t);
		return n->key == IMAP_SK_SENTBEFORE ? d < n->day :
		    n->key == IMAP_SK_SENTON ? d == n->day : d >= n->day;
	}
	case IMAP_SK_LARGER:
		return m->size > n->num;
	case IMAP_SK_SMALLER:
		return m->size < n->num;
	case IMAP_SK_HEADER: {
		struct imap_mime *h;

		if (search_hdr_cannot_match(sm, n->str2))
			return false;
		h = search_hdr(sm);

		return h != NULL && imap_mime_header_contains(h, n->str, n->str2);
	}
	case IMAP_SK_BODY:
	case IMAP_SK_TEXT: {
		struct imap_mime *f = search_full(sm);

		return f != NULL && imap_mime_body_contains(f, n->str, n->key == IMAP_SK_TEXT);
	}
	case IMAP_SK_SEQSET:
		if (n->set.saved) {
			for (size_t i = 0; i < s->nsaved; i++)
				if (s->saved[i] == m->uid)
					return true;
			return false;
		}
		return imap_seqset_has(&n->set, sm->seq);
	case IMAP_SK_UIDSET:
		if (n->set.saved) {
			for (size_t i = 0; i < s->nsaved; i++)
				if (s->saved[i] == m->uid)
					return true;
			return false;
		}
		return imap_seqset_has(&n->set, m->uid);
	case IMAP_SK_MODSEQ:
		return m->modseq >= n->num;
	}
	return false;
}

/* Does the tree use MODSEQ (RFC 7162 3.1.5: the reply then says the highest)? */
static bool
search_has_modseq(const struct imap_search_node *n)
{
	if (n->key == IMAP_SK_MODSEQ)
		return true;
	for (size_t i = 0; i < n->nkids; i++)
		if (search_has_modseq(&n->kids[i]))
			return true;
	return false;
}

/* Convert one string from cd's charset to UTF-8 in place. -1 if it is not
 * valid in that charset. */
static int
search_convert(iconv_t cd, char **strp)
{
	char *in = *strp, *out, *op;
	size_t inlen = strlen(in), outcap = inlen * 4 + 4, outleft = outcap - 1;

	if ((out = malloc(outcap)) == NULL)
		return -1;
	op = out;
	(void)iconv(cd, NULL, NULL, NULL, NULL);
	if (iconv(cd, &in, &inlen, &op, &outleft) == (size_t)-1) {
		free(out);
		return -1;
	}
	*op = '\0';
	free(*strp);
	*strp = out;
	return 0;
}

/* Every needle of the tree to UTF-8 (header names stay as they are). */
static int
search_tree_convert(iconv_t cd, struct imap_search_node *n)
{
	switch (n->key) {
	case IMAP_SK_HEADER:
		if (search_convert(cd, &n->str2) == -1)
			return -1;
		break;
	case IMAP_SK_BODY:
	case IMAP_SK_TEXT:
		if (search_convert(cd, &n->str) == -1)
			return -1;
		break;
	default:
		break;
	}
	for (size_t i = 0; i < n->nkids; i++)
		if (search_tree_convert(cd, &n->kids[i]) == -1)
			return -1;
	return 0;
}

/* Valid UTF-8 needles when no (or a UTF-8) charset was named. */
static bool
search_tree_utf8(const struct imap_search_node *n)
{
	const char *strs[] = { n->key == IMAP_SK_HEADER ? n->str2 : NULL,
	    n->key == IMAP_SK_BODY || n->key == IMAP_SK_TEXT ? n->str : NULL };

	for (size_t k = 0; k < 2; k++) {
		const unsigned char *p = (const unsigned char *)strs[k];

		while (p != NULL && *p != '\0') {
			size_t len = *p < 0x80 ? 1 : (*p & 0xe0) == 0xc0 ? 2 : (*p & 0xf0) == 0xe0 ? 3 :
			    (*p & 0xf8) == 0xf0 ? 4 : 0;

			if (len == 0 || *p == 0xc0 || *p == 0xc1 || *p > 0xf4)
				return false;
			for (size_t i = 1; i < len; i++)
				if ((p[i] & 0xc0) != 0x80)
					return false;
			p += len;
		}
	}
	for (size_t i = 0; i < n->nkids; i++)
		if (!search_tree_utf8(&n->kids[i]))
			return false;
	return true;
}

/* Resolve '*' in every set of the tree. */
static void
search_normalize(struct imap_search_node *n, uint32_t count, uint32_t maxuid)
{
	if (n->key == IMAP_SK_SEQSET)
		imap_seqset_normalize(&n->set, count);
	else if (n->key == IMAP_SK_UIDSET)
		imap_seqset_normalize(&n->set, maxuid);
	for (size_t i = 0; i < n->nkids; i++)
		search_normalize(&n->kids[i], count, maxuid);
}

struct imap_search_job {
	char tag[IMAP_TAG_MAX + 1];
	bool uid, modseq, failed;
	struct imap_search_node root;
	uint32_t count, next;     /* messages in the view, the next seq to look at */
	uint32_t *found;          /* UIDs */
	size_t nfound;
	uint64_t maxmodseq;
	struct evbuffer *line;    /* "* SEARCH ..." while it grows */
};

void
imap_search_free(struct imap_search_job **jobp)
{
	struct imap_search_job *job = *jobp;

	if (job == NULL)
		return;
	*jobp = NULL;
	imap_search_node_free(&job->root);
	free(job->found);
	if (job->line != NULL)
		evbuffer_free(job->line);
	free(job);
}

static int64_t
now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

bool
imap_search_continue(struct imap_session *s)
{
	struct imap_search_job *job = s->search;
	int64_t deadline = now_us() + IMAP_SLICE_US;

	if (job == NULL || s->bev == NULL || s->closing)
		return true;
	while (job->next <= job->count) {
		uint32_t seq = job->next++;
		struct search_msg sm = { .s = s, .seq = seq, .m = imap_mailbox_msg(s->mb, seq) };

		if (sm.m != NULL) {
			bool hit = search_match(&sm, &job->root);

			job->failed |= sm.failed;
			if (hit) {
				job->found[job->nfound++] = sm.m->uid;
				if (sm.m->modseq > job->maxmodseq)
					job->maxmodseq = sm.m->modseq;
				evbuffer_add_printf(job->line, " %" PRIu32, job->uid ? sm.m->uid : seq);
			}
			imap_mime_free(&sm.hdr);
			imap_mime_free(&sm.full);
			free(sm.raw);
		}
		if ((seq & 15) == 0 && now_us() > deadline && job->next <= job->count) {
			/* A slice is used up: let other sessions (and SMTP) run. */
			imap_session_schedule(s);
			return false;
		}
	}
	if (job->modseq && job->nfound > 0)
		evbuffer_add_printf(job->line, " (MODSEQ %" PRIu64 ")", job->maxmodseq);
	evbuffer_add(job->line, "\r\n", 2);
	evbuffer_add_buffer(imap_session_out(s), job->line);
	free(s->saved);
	s->saved = job->found;
	s->nsaved = job->nfound;
	job->found = NULL;
	if (job->failed)
		log_info("event=imap.search_partial session=%s client=%s account=%s", s->id, s->ip,
		    s->account);
	imap_session_sync(s, job->uid);
	imap_session_tagged(s, job->tag, "OK %sSEARCH completed", job->uid ? "UID " : "");
	imap_search_free(&s->search);
	s->input = IMAP_INPUT_COMMAND;
	return true;
}

void
imap_search_command(struct imap_session *s, const char *tag, bool uid, const struct imap_arg *args,
    size_t nargs)
{
	struct imap_search_job *job;
	const char *error, *charset;
	uint32_t maxuid = 0;

	if (args != NULL && nargs >= 1 && imap_arg_atom_is(&args[0], "RETURN")) {
		imap_session_error(s, tag, "BAD SEARCH RETURN is not supported");
		return;
	}
	if ((job = calloc(1, sizeof(*job))) == NULL) {
		imap_session_tagged(s, tag, "NO [SERVERBUG] Out of memory");
		return;
	}
	if (imap_search_parse(args, nargs, &job->root, &charset, &error) == -1) {
		free(job);
		imap_session_error(s, tag, "BAD %s", error);
		return;
	}
	if (charset != NULL && strcasecmp(charset, "UTF-8") != 0 && strcasecmp(charset, "US-ASCII") != 0) {
		/* RFC 3501 6.4.4: other charsets through iconv, as Dovecot does */
		iconv_t cd = iconv_open("UTF-8", charset);
		int r;

		if (cd == (iconv_t)-1) {
			imap_search_free(&job);
			imap_session_tagged(s, tag, "NO [BADCHARSET] Unknown charset");
			return;
		}
		r = search_tree_convert(cd, &job->root);
		iconv_close(cd);
		if (r == -1) {
			imap_search_free(&job);
			imap_session_tagged(s, tag, "NO Search string not valid in that charset");
			return;
		}
	} else if (!search_tree_utf8(&job->root)) {
		imap_search_free(&job);
		imap_session_error(s, tag, "BAD Search string is not UTF-8");
		return;
	}
	snprintf(job->tag, sizeof(job->tag), "%s", tag);
	job->uid = uid;
	job->count = imap_mailbox_count(s->mb);
	job->next = 1;
	if (job->count > 0)
		maxuid = imap_mailbox_msg(s->mb, job->count)->uid;
	search_normalize(&job->root, job->count, maxuid);
	if ((job->modseq = search_has_modseq(&job->root)))
		s->condstore = true;
	if ((job->count > 0 && (job->found = calloc(job->count, sizeof(*job->found))) == NULL) ||
	    (job->line = evbuffer_new()) == NULL) {
		imap_search_free(&job);
		imap_session_tagged(s, tag, "NO [SERVERBUG] Out of memory");
		return;
	}
	evbuffer_add_printf(job->line, "* SEARCH");
	s->search = job;
	s->input = IMAP_INPUT_WAIT;
	(void)imap_search_continue(s);   /* the rest, if any, in later slices */
}
