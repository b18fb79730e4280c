/*
 * imap_fetch.c: FETCH and UID FETCH (RFC 3501 6.4.5, 7.4.2), and the
 * sequence-set resolution the other commands share. A FETCH is a job that
 * writes while the client reads: it stops producing above the output
 * high-water mark and goes on from the write callback, so FETCH 1:* BODY[]
 * on a large mailbox never holds more than ~256 KiB of replies in memory.
 * ENVELOPE, BODYSTRUCTURE and header sections come from the store's index;
 * other sections parse the message (imap_mime) once per message.
 */
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/config.h"
#include "core/log.h"
#include "imap/imap_mime.h"
#include "imap/imap_session_private.h"

struct imap_fetch_job {
	char tag[IMAP_TAG_MAX + 1];
	bool uid;
	struct imap_fetch_spec spec;
	uint32_t *seqs;
	size_t n, i;
	bool failed;          /* a message vanished or could not be read */
};

void
imap_fetch_free(struct imap_fetch_job **jobp)
{
	struct imap_fetch_job *job = *jobp;

	if (job == NULL)
		return;
	*jobp = NULL;
	imap_fetch_spec_free(&job->spec);
	free(job->seqs);
	free(job);
}

int
imap_session_seqs(struct imap_session *s, const struct imap_seqset *set0, bool uid,
    uint32_t **seqs_r, size_t *n_r)
{
	uint32_t count = imap_mailbox_count(s->mb), *v = NULL;
	struct imap_seqset set = *set0;
	size_t n = 0;

	*seqs_r = NULL;
	*n_r = 0;
	if (count == 0)
		return set.saved || uid ? 0 : -2;
	if ((v = calloc(count, sizeof(*v))) == NULL)
		return -1;
	if (set.saved) {
		/* "$" (RFC 5182): the UIDs the last SEARCH found, still here */
		for (uint32_t seq = 1; seq <= count; seq++) {
			const struct imap_msg *m = imap_mailbox_msg(s->mb, seq);

			for (size_t k = 0; m != NULL && k < s->nsaved; k++)
				if (s->saved[k] == m->uid) {
					v[n++] = seq;
					break;
				}
		}
		*seqs_r = v;
		*n_r = n;
		return 0;
	}
	if ((set.v = malloc((set.n > 0 ? set.n : 1) * sizeof(*set.v))) == NULL) {
		free(v);
		return -1;
	}
	memcpy(set.v, set0->v, set.n * sizeof(*set.v));
	if (uid) {
		/* UIDs ascend with seqs: per range, a binary search for its first
		 * message, then a walk; never a look at every message. */
		uint32_t next = 1;

		imap_seqset_normalize(&set, imap_mailbox_msg(s->mb, count)->uid);
		for (size_t r = 0; r < set.n && next <= count; r++) {
			uint32_t lo = next, hi = count + 1;

			while (lo < hi) {
				uint32_t mid = lo + (hi - lo) / 2;

				if (imap_mailbox_msg(s->mb, mid)->uid < set.v[r].lo)
					lo = mid + 1;
				else
					hi = mid;
			}
			for (next = lo; next <= count && imap_mailbox_msg(s->mb, next)->uid <= set.v[r].hi;
			    next++)
				v[n++] = next;
		}
	} else {
		imap_seqset_normalize(&set, count);
		if (set.n > 0 && (set.v[set.n - 1].hi > count || set.v[0].lo == 0)) {
			free(set.v);
			free(v);
			return -2;   /* RFC 3501 9: a number past EXISTS is an error */
		}
		for (size_t r = 0; r < set.n; r++)
			for (uint64_t seq = set.v[r].lo; seq <= set.v[r].hi; seq++)
				v[n++] = (uint32_t)seq;
	}
	free(set.v);
	*seqs_r = v;
	*n_r = n;
	return 0;
}

void
imap_fetch_flags_write(struct evbuffer *out, struct imap_session *s, uint32_t seq, bool with_uid,
    bool silent)
{
	const struct imap_msg *m = imap_mailbox_msg(s->mb, seq);
	bool sp = false;

	if (m == NULL)
		return;
	evbuffer_add_printf(out, "* %" PRIu32 " FETCH (", seq);
	if (with_uid) {
		evbuffer_add_printf(out, "UID %" PRIu32, m->uid);
		sp = true;
	}
	if (!silent) {
		evbuffer_add_printf(out, "%sFLAGS ", sp ? " " : "");
		imap_write_flags(out, m->flags, m->keywords);
		sp = true;
	}
	if (s->condstore)
		evbuffer_add_printf(out, "%sMODSEQ (%" PRIu64 ")", sp ? " " : "", m->modseq);
	evbuffer_add_printf(out, ")\r\n");
}

void
imap_fetch_store_response(struct imap_session *s, uint32_t seq, bool with_uid, bool silent)
{
	if (s->bev == NULL || s->closing)
		return;
	imap_fetch_flags_write(imap_session_out(s), s, seq, with_uid, silent);
}

void
imap_fetch_flags_response(struct imap_session *s, uint32_t seq, bool with_uid)
{
	imap_fetch_store_response(s, seq, with_uid, false);
}

/* " NAME 1234" without printf: FETCH 1:* (FLAGS UID RFC822.SIZE) on a large
 * mailbox is mostly this. */
static void
add_u64(struct evbuffer *out, const char *name, uint64_t v)
{
	char buf[48], *p = buf + sizeof(buf);
	size_t nlen = strlen(name);

	do {
		*--p = (char)('0' + v % 10);
		v /= 10;
	} while (v != 0);
	p -= nlen;
	memcpy(p, name, nlen);
	evbuffer_add(out, p, (size_t)(buf + sizeof(buf) - p));
}

/* A message read for FETCH, shared by the literals that reference it in the
 * output buffer (no copy of the body): freed when the last one is written. */
struct fetch_msgref {
	unsigned refs;
	char *data;
};

static void
msgref_unref(struct fetch_msgref *r)
{
	if (r != NULL && --r->refs == 0) {
		free(r->data);
		free(r);
	}
}

static void
msgref_cleanup(const void *data, size_t len, void *arg)
{
	(void)data;
	(void)len;
	msgref_unref(arg);
}

/* Below this a literal is copied: a reference chain costs about as much. */
#define FETCH_REF_MIN 4096

/* Append len bytes as a literal, cut to <offset.count> when partial; data
 * inside ref's message is referenced, not copied, when large. */
static void
fetch_literal(struct evbuffer *out, const char *data, size_t len, const struct imap_fetch_section *fs,
    struct fetch_msgref *ref)
{
	if (fs != NULL && fs->partial) {
		if (fs->offset >= len) {
			len = 0;
		} else {
			data += fs->offset;
			len -= fs->offset;
			if (len > fs->count)
				len = fs->count;
		}
	}
	add_u64(out, "{", len);
	evbuffer_add(out, "}\r\n", 3);
	if (ref != NULL && len >= FETCH_REF_MIN) {
		ref->refs++;
		if (evbuffer_add_reference(out, data, len, msgref_cleanup, ref) == 0)
			return;
		ref->refs--;
	}
	evbuffer_add(out, data, len);
}

/* Can the section be answered from the cached header block alone? */
static bool
section_in_header(const struct imap_fetch_section *fs)
{
	return fs->sec.depth == 0 && (fs->sec.kind == IMAP_SECTION_HEADER ||
	    fs->sec.kind == IMAP_SECTION_HEADER_FIELDS || fs->sec.kind == IMAP_SECTION_HEADER_FIELDS_NOT);
}

/* One message's response into tmp. -1: the message could not be read. */
static int
fetch_one(struct imap_session *s, struct imap_fetch_job *job, uint32_t seq, struct evbuffer *tmp)
{
	const struct imap_fetch_spec *sp = &job->spec;
	const struct imap_msg *m = imap_mailbox_msg(s->mb, seq);
	enum imap_store_error err = IMAP_STORE_OK;
	char *msg = NULL;
	struct fetch_msgref *ref = NULL;
	size_t msglen = 0;
	struct imap_mime *mime = NULL, *hmime = NULL;
	bool need_msg = false, need_hdr = false, sp_ = false, flags_changed = false;
	unsigned items = sp->items;
	int rc = -1;

	if (m == NULL)
		return -1;
	if (sp->sets_seen && !s->readonly && !(m->flags & IMAP_FLAG_SEEN)) {
		if (imap_mailbox_store(s->mb, seq, IMAP_FLAGS_ADD, IMAP_FLAG_SEEN, NULL, &err) == 0) {
			flags_changed = true;
			m = imap_mailbox_msg(s->mb, seq);
			if (m == NULL)
				return -1;
		}
	}
	if (flags_changed)
		items |= IMAP_FETCH_FLAGS;
	if (s->condstore && (items & IMAP_FETCH_FLAGS))
		items |= IMAP_FETCH_MODSEQ;   /* RFC 7162 3.2 */
	need_msg = (items & (IMAP_FETCH_RFC822 | IMAP_FETCH_RFC822_TEXT)) != 0;
	need_hdr = (items & IMAP_FETCH_RFC822_HEADER) != 0;
	for (size_t i = 0; i < sp->nsecs; i++) {
		if (section_in_header(&sp->secs[i]))
			need_hdr = true;
		else
			need_msg = true;
	}
	if (need_msg) {
		if ((msg = imap_mailbox_read(s->mb, seq, &msglen, &err)) == NULL)
			goto out;
		if ((ref = malloc(sizeof(*ref))) != NULL) {
			ref->refs = 1;
			ref->data = msg;
		}
	}
	add_u64(tmp, "* ", seq);
	evbuffer_add(tmp, " FETCH (", 8);
#define SP() do { if (sp_) evbuffer_add(tmp, " ", 1); sp_ = true; } while (0)
	if (items & IMAP_FETCH_UID) {
		SP();
		add_u64(tmp, "UID ", m->uid);
	}
	if (items & IMAP_FETCH_FLAGS) {
		SP();
		evbuffer_add_printf(tmp, "FLAGS ");
		imap_write_flags(tmp, m->flags, m->keywords);
	}
	if (items & IMAP_FETCH_INTERNALDATE) {
		SP();
		evbuffer_add_printf(tmp, "INTERNALDATE ");
		imap_write_date(tmp, m->internaldate);
	}
	if (items & IMAP_FETCH_RFC822_SIZE) {
		SP();
		add_u64(tmp, "RFC822.SIZE ", m->size);
	}
	if (items & IMAP_FETCH_MODSEQ) {
		SP();
		evbuffer_add_printf(tmp, "MODSEQ (%" PRIu64 ")", m->modseq);
	}
	if (items & IMAP_FETCH_ENVELOPE) {
		const char *env = imap_mailbox_envelope(s->mb, seq, &err);

		if (env == NULL)
			goto out;
		SP();
		evbuffer_add_printf(tmp, "ENVELOPE %s", env);
	}
	if (items & IMAP_FETCH_BODY) {
		const char *bs = imap_mailbox_bodystructure(s->mb, seq, false, &err);

		if (bs == NULL)
			goto out;
		SP();
		evbuffer_add_printf(tmp, "BODY %s", bs);
	}
	if (items & IMAP_FETCH_BODYSTRUCTURE) {
		const char *bs = imap_mailbox_bodystructure(s->mb, seq, true, &err);

		if (bs == NULL)
			goto out;
		SP();
		evbuffer_add_printf(tmp, "BODYSTRUCTURE %s", bs);
	}
	if (need_hdr) {
		size_t hlen;
		const char *h = imap_mailbox_header(s->mb, seq, &hlen, &err);

		if (h == NULL || (hmime = imap_mime_parse(h, hlen)) == NULL)
			goto out;
		if (items & IMAP_FETCH_RFC822_HEADER) {
			SP();
			evbuffer_add_printf(tmp, "RFC822.HEADER ");
			fetch_literal(tmp, h, hlen, NULL, NULL);
		}
	}
	if (need_msg && (items & IMAP_FETCH_RFC822)) {
		SP();
		evbuffer_add_printf(tmp, "RFC822 ");
		fetch_literal(tmp, msg, msglen, NULL, ref);
	}
	{
		/* Parse only when a section needs the structure: BODY[] is the bytes. */
		bool need_mime = (items & IMAP_FETCH_RFC822_TEXT) != 0;

		for (size_t i = 0; i < sp->nsecs && !need_mime; i++)
			need_mime = !section_in_header(&sp->secs[i]) &&
			    !(sp->secs[i].sec.depth == 0 && sp->secs[i].sec.kind == IMAP_SECTION_ALL);
		if (need_mime && (mime = imap_mime_parse(msg, msglen)) == NULL)
			goto out;
	}
	if (items & IMAP_FETCH_RFC822_TEXT) {
		struct evbuffer *b = evbuffer_new();
		struct imap_section text = { .kind = IMAP_SECTION_TEXT };

		if (b == NULL || imap_mime_section(mime, &text, b) == -1) {
			if (b != NULL)
				evbuffer_free(b);
			goto out;
		}
		SP();
		evbuffer_add_printf(tmp, "RFC822.TEXT {%zu}\r\n", evbuffer_get_length(b));
		evbuffer_add_buffer(tmp, b);
		evbuffer_free(b);
	}
	for (size_t i = 0; i < sp->nsecs; i++) {
		const struct imap_fetch_section *fs = &sp->secs[i];

		SP();
		evbuffer_add_printf(tmp, "%s", fs->label);
		if (fs->partial)
			evbuffer_add_printf(tmp, "<%" PRIu32 ">", fs->offset);
		evbuffer_add(tmp, " ", 1);
		if (fs->sec.depth == 0 && fs->sec.kind == IMAP_SECTION_ALL) {
			fetch_literal(tmp, msg, msglen, fs, ref);
		} else {
			struct evbuffer *b = evbuffer_new();
			struct evbuffer_iovec v;

			if (b == NULL || imap_mime_section(section_in_header(fs) ? hmime : mime, &fs->sec,
			    b) == -1) {
				if (b != NULL)
					evbuffer_free(b);
				goto out;
			}
			if (evbuffer_get_length(b) == 0) {
				fetch_literal(tmp, "", 0, fs, NULL);
			} else {
				v.iov_base = evbuffer_pullup(b, -1);
				v.iov_len = evbuffer_get_length(b);
				fetch_literal(tmp, v.iov_base, v.iov_len, fs, NULL);
			}
			evbuffer_free(b);
		}
	}
#undef SP
	evbuffer_add_printf(tmp, ")\r\n");
	rc = 0;
out:
	if (rc == -1)
		log_info("event=imap.fetch_error session=%s client=%s account=%s seq=%" PRIu32 " error=%d",
		    s->id, s->ip, s->account, seq, (int)err);
	imap_mime_free(&mime);
	imap_mime_free(&hmime);
	if (ref != NULL)
		msgref_unref(ref);   /* the output buffer may still hold references */
	else
		free(msg);
	return rc;
}

bool
imap_fetch_continue(struct imap_session *s)
{
	struct imap_fetch_job *job = s->fetch;
	struct evbuffer *out, *tmp;
	struct timespec t0, t1;

	if (job == NULL || s->bev == NULL || s->closing)
		return true;
	out = imap_session_out(s);
	if ((tmp = evbuffer_new()) == NULL) {
		imap_session_schedule(s);
		return false;
	}
	clock_gettime(CLOCK_MONOTONIC, &t0);
	while (job->i < job->n && evbuffer_get_length(out) <= IMAP_OUTPUT_HIGH_WATER) {
		evbuffer_drain(tmp, evbuffer_get_length(tmp));
		if (fetch_one(s, job, job->seqs[job->i], tmp) == -1) {
			job->failed = true;
		} else if (evbuffer_get_length(tmp) <= FETCH_REF_MIN) {
			/* a short reply: copied after the last one, not a chain of
			 * its own (FETCH 1:* FLAGS made 10,000 chains, mostly empty) */
			size_t len = evbuffer_get_length(tmp);

			evbuffer_add(out, evbuffer_pullup(tmp, -1), len);
		} else {
			evbuffer_add_buffer(out, tmp);
		}
		job->i++;
		if ((job->i & 15) == 0 && job->i < job->n) {
			clock_gettime(CLOCK_MONOTONIC, &t1);
			if ((t1.tv_sec - t0.tv_sec) * 1000000 + (t1.tv_nsec - t0.tv_nsec) / 1000 >
			    IMAP_SLICE_US) {
				/* A slice is used up with little output (e.g. envelopes to
				 * compute): let the loop run, then go on. */
				evbuffer_free(tmp);
				if (evbuffer_get_length(out) <= IMAP_OUTPUT_HIGH_WATER)
					imap_session_schedule(s);
				return false;
			}
		}
	}
	evbuffer_free(tmp);
	if (job->i < job->n)
		return false;   /* over the high-water mark: the write callback goes on */
	/* RFC 3501 7.4.1: no EXPUNGE after FETCH, but after UID FETCH. */
	imap_session_sync(s, job->uid);
	if (job->failed)
		imap_session_tagged(s, job->tag, "NO [EXPUNGEISSUED] Some messages could not be fetched");
	else
		imap_session_tagged(s, job->tag, "OK %sFETCH completed", job->uid ? "UID " : "");
	imap_fetch_free(&s->fetch);
	s->input = IMAP_INPUT_COMMAND;
	return true;
}

void
imap_fetch_start(struct imap_session *s, const char *tag, bool uid, const struct imap_arg *args,
    size_t nargs)
{
	struct imap_fetch_job *job;
	struct imap_seqset set;
	const char *error;
	uint64_t changedsince = 0;
	bool changed = false;
	int r;

	if (nargs < 2 || nargs > 3 || args[0].type != IMAP_ARG_ATOM) {
		imap_session_error(s, tag, "BAD FETCH needs a set and attributes");
		return;
	}
	if (nargs == 3) {
		/* RFC 7162 3.1.4: FETCH set atts (CHANGEDSINCE n) */
		const struct imap_arg *m = &args[2];
		char *e = NULL;

		if (m->type != IMAP_ARG_LIST || m->n != 2 || !imap_arg_atom_is(&m->list[0], "CHANGEDSINCE") ||
		    m->list[1].type != IMAP_ARG_ATOM || m->list[1].str[0] < '0' ||
		    m->list[1].str[0] > '9' || (changedsince = strtoull(m->list[1].str, &e, 10), *e != '\0')) {
			imap_session_error(s, tag, "BAD Unknown FETCH modifier");
			return;
		}
		s->condstore = true;
		changed = true;
	}
	if (imap_seqset_parse(args[0].str, &set, &error) == -1) {
		imap_session_error(s, tag, "BAD %s", error);
		return;
	}
	if ((job = calloc(1, sizeof(*job))) == NULL) {
		imap_seqset_free(&set);
		imap_session_tagged(s, tag, "NO [SERVERBUG] Out of memory");
		return;
	}
	snprintf(job->tag, sizeof(job->tag), "%s", tag);
	job->uid = uid;
	if (imap_fetch_spec_parse(&args[1], 1, &job->spec, &error) == -1) {
		imap_seqset_free(&set);
		imap_fetch_free(&job);
		imap_session_error(s, tag, "BAD %s", error);
		return;
	}
	if (uid)
		job->spec.items |= IMAP_FETCH_UID;
	if (changed)
		job->spec.items |= IMAP_FETCH_MODSEQ;
	if (job->spec.items & IMAP_FETCH_MODSEQ)
		s->condstore = true;
	r = imap_session_seqs(s, &set, uid, &job->seqs, &job->n);
	imap_seqset_free(&set);
	if (r == 0 && changed) {
		size_t k = 0;

		for (size_t i = 0; i < job->n; i++) {
			const struct imap_msg *m = imap_mailbox_msg(s->mb, job->seqs[i]);

			if (m != NULL && m->modseq > changedsince)
				job->seqs[k++] = job->seqs[i];
		}
		job->n = k;
	}
	if (r < 0) {
		imap_fetch_free(&job);
		if (r == -2)
			imap_session_error(s, tag, "BAD Invalid sequence number");
		else
			imap_session_tagged(s, tag, "NO [SERVERBUG] Out of memory");
		return;
	}
	s->fetch = job;
	s->input = IMAP_INPUT_WAIT;
	/* libevent writes at most 16 KiB per writev by default: 80 writev and
	 * as many epoll_wait for 100 bodies (1.3 MB). Up to the high-water mark
	 * at once instead (the kernel takes what fits in the socket buffer). */
	if (s->bev != NULL)
		(void)bufferevent_set_max_single_write(s->bev, IMAP_OUTPUT_HIGH_WATER);
	(void)imap_fetch_continue(s);   /* the rest, if any, from the write callback */
}
