/*
 * dkim_verify.c: verification of received DKIM signatures (RFC 6376 6), in
 * two steps so the caller can look keys up asynchronously: begin() reads
 * every DKIM-Signature field, checks its tags, its time and its body hash and
 * hashes the header fields it covers; answer() takes the key record and
 * checks the signature. Trusts nothing in the message or the DNS: every
 * size is bounded, every tag checked, rsa-sha1 and RSA keys under 1024 bits
 * refused (RFC 8301); ed25519-sha256 per RFC 8463; result names per RFC 8601.
 */
#include "dkim/dkim_private.h"

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "dkim/dkim.h"

#define MAX_FIELD (16 * 1024)     /* one DKIM-Signature field */
#define MAX_H 256                 /* names in h= */
#define MAX_SIG_BYTES 1024        /* b= of an 8192-bit RSA key */
#define MAX_RECORD 8192           /* a key record */
#define RSA_MIN_BITS 1024
#define RSA_MAX_BITS 8192
#define SHA256_LEN 32
#define REASON_MAX 96

struct sig {
	enum dkim_status status;
	bool decided;                 /* status is final: no lookup, or answered */
	char reason[REASON_MAX];      /* empty on pass */
	char *domain, *selector;      /* lower case d=, s= as given */
	char *identity;               /* i=, NULL if absent */
	const char *i_domain;         /* in identity, after '@' */
	char b8[9];                   /* the start of b=, for header.b */
	bool alg_known;
	enum dkim_alg alg;
	bool testing;                 /* the key said t=y */
	char query[256];              /* SELECTOR._domainkey.DOMAIN */
	unsigned char hash[SHA256_LEN];   /* of the header data */
	unsigned char *sig;
	size_t siglen;
};

struct dkim_verify {
	struct sig sigs[DKIM_MAX_SIGNATURES];
	size_t n, ignored;
};

/* Body hashes computed so far: signatures often share one. */
struct body_hash {
	enum dkim_canon canon;
	uint64_t limit;
	uint64_t total;               /* the whole canonical body's length */
	unsigned char hash[SHA256_LEN];
};

struct body_cache {
	struct body_hash h[DKIM_MAX_SIGNATURES];
	size_t n;
};

const char *
dkim_status_name(enum dkim_status status)
{
	switch (status) {
	case DKIM_STATUS_PASS: return "pass";
	case DKIM_STATUS_FAIL: return "fail";
	case DKIM_STATUS_NEUTRAL: return "neutral";
	case DKIM_STATUS_TEMPERROR: return "temperror";
	case DKIM_STATUS_PERMERROR: return "permerror";
	}
	return "permerror";
}

static void
decide(struct sig *s, enum dkim_status status, const char *fmt, ...) LOG_PRINTF(3, 4);

static void
decide(struct sig *s, enum dkim_status status, const char *fmt, ...)
{
	va_list ap;

	s->status = status;
	s->decided = true;
	s->reason[0] = '\0';
	if (fmt != NULL) {
		va_start(ap, fmt);
		vsnprintf(s->reason, sizeof(s->reason), fmt, ap);
		va_end(ap);
	}
}

static void
sink_digest(void *ctx, const void *p, size_t n)
{
	(void)EVP_DigestUpdate(ctx, p, n);
}

/* The body hash for (canon, limit), computed once per message. NULL: no memory. */
static const struct body_hash *
body_hash(struct body_cache *cache, const struct dkim_msg *m, enum dkim_canon canon,
    uint64_t limit)
{
	struct dkim_canon_body body;
	struct body_hash *bh;
	EVP_MD_CTX *md;

	for (size_t i = 0; i < cache->n; i++)
		if (cache->h[i].canon == canon && cache->h[i].limit == limit)
			return &cache->h[i];
	if (cache->n == DKIM_MAX_SIGNATURES || (md = EVP_MD_CTX_new()) == NULL)
		return NULL;
	bh = &cache->h[cache->n];
	if (EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1) {
		EVP_MD_CTX_free(md);
		return NULL;
	}
	dkim_canon_body_init(&body, canon, limit, sink_digest, md);
	dkim_canon_body_update(&body, m->body, m->body_len);
	dkim_canon_body_final(&body);
	if (EVP_DigestFinal_ex(md, bh->hash, NULL) != 1) {
		EVP_MD_CTX_free(md);
		return NULL;
	}
	EVP_MD_CTX_free(md);
	bh->canon = canon;
	bh->limit = limit;
	bh->total = body.total;
	cache->n++;
	return bh;
}

/* Decimal digits only, at most 18 of them (no overflow). 0, or -1. */
static int
parse_number(const struct dkim_tag *t, uint64_t *n_r)
{
	uint64_t n = 0;

	if (t->value_len == 0 || t->value_len > 18)
		return -1;
	for (size_t i = 0; i < t->value_len; i++) {
		if (t->value[i] < '0' || t->value[i] > '9')
			return -1;
		n = n * 10 + (uint64_t)(t->value[i] - '0');
	}
	*n_r = n;
	return 0;
}

static int
parse_canon(const char *s, size_t n, enum dkim_canon *c_r)
{
	if (n == 6 && strncmp(s, "simple", 6) == 0)
		*c_r = DKIM_CANON_SIMPLE;
	else if (n == 7 && strncmp(s, "relaxed", 7) == 0)
		*c_r = DKIM_CANON_RELAXED;
	else
		return -1;
	return 0;
}

/* A d= or i= domain: a DNS name of two labels at least. */
static bool
domain_valid(const char *d)
{
	return dkim_key_name_valid(d) && strchr(d, '.') != NULL;
}

/* i= is d= or a subdomain of it. */
static bool
identity_in_domain(const char *idomain, const char *domain)
{
	size_t il = strlen(idomain), dl = strlen(domain);

	if (il == dl)
		return strcasecmp(idomain, domain) == 0;
	return il > dl && idomain[il - dl - 1] == '.' &&
	    strcasecmp(idomain + il - dl, domain) == 0;
}

static void
lower(char *s)
{
	for (; *s != '\0'; s++)
		if (*s >= 'A' && *s <= 'Z')
			*s = (char)(*s - 'A' + 'a');
}

/*
 * h=: colon-separated field names (ftext: %d33-57 / %d59-126). Fills names
 * (pointing into hbuf, which is the compacted value). 0, or -1.
 */
static int
parse_h(char *hbuf, const char **h, size_t *hlen, size_t *nh_r)
{
	size_t nh = 0;
	char *p = hbuf;

	for (;;) {
		char *end = strchr(p, ':');
		size_t n = end != NULL ? (size_t)(end - p) : strlen(p);

		if (n == 0 || nh == MAX_H)
			return -1;
		for (size_t i = 0; i < n; i++)
			if ((unsigned char)p[i] < 33 || (unsigned char)p[i] > 126)
				return -1;
		h[nh] = p;
		hlen[nh++] = n;
		if (end == NULL)
			break;
		p = end + 1;
	}
	*nh_r = nh;
	return 0;
}

/* Step one for the signature in field f. Out of memory: -1. */
static int
sig_begin(struct sig *s, const struct dkim_msg *m, const struct dkim_field *f,
    time_t now, struct body_cache *cache)
{
	struct dkim_tags tags;
	const struct dkim_tag *tv, *ta, *tb, *tbh, *tc, *td, *th, *ti, *tl, *tq, *ts, *tt,
	    *tx;
	const struct body_hash *bh;
	const char *value, *err, *h[MAX_H], *slash;
	char *compact = NULL, *hbuf = NULL;
	unsigned char *bhraw = NULL;
	size_t vlen, voff, nh, hlen[MAX_H], bhlen;
	enum dkim_canon hcanon = DKIM_CANON_SIMPLE, bcanon = DKIM_CANON_SIMPLE;
	uint64_t l = UINT64_MAX, t = 0, x = 0;
	struct dkim_buf data = { 0 };
	int rc = -1;

	decide(s, DKIM_STATUS_TEMPERROR, "no key lookup");
	s->decided = false;
	if (f->len > MAX_FIELD) {
		decide(s, DKIM_STATUS_PERMERROR, "signature field too long");
		return 0;
	}
	voff = (size_t)((const char *)memchr(f->p, ':', f->len) - f->p) + 1;
	value = f->p + voff;
	vlen = f->len - voff;
	if (vlen >= 2 && value[vlen - 2] == '\r' && value[vlen - 1] == '\n')
		vlen -= 2;
	if (dkim_tag_parse(value, vlen, &tags, &err) != 0) {
		decide(s, DKIM_STATUS_PERMERROR, "signature syntax: %s", err);
		return 0;
	}
	tv = dkim_tag_get(&tags, "v");
	ta = dkim_tag_get(&tags, "a");
	tb = dkim_tag_get(&tags, "b");
	tbh = dkim_tag_get(&tags, "bh");
	tc = dkim_tag_get(&tags, "c");
	td = dkim_tag_get(&tags, "d");
	th = dkim_tag_get(&tags, "h");
	ti = dkim_tag_get(&tags, "i");
	tl = dkim_tag_get(&tags, "l");
	tq = dkim_tag_get(&tags, "q");
	ts = dkim_tag_get(&tags, "s");
	tt = dkim_tag_get(&tags, "t");
	tx = dkim_tag_get(&tags, "x");

	/* What a report names, first, so even a broken signature shows them. */
	if (td != NULL) {
		if ((s->domain = strndup(td->value, td->value_len)) == NULL)
			goto out;
		if (!domain_valid(s->domain)) {
			free(s->domain);
			s->domain = NULL;
		} else {
			lower(s->domain);
		}
	}
	if (ts != NULL) {
		if ((s->selector = strndup(ts->value, ts->value_len)) == NULL)
			goto out;
		if (!dkim_key_name_valid(s->selector)) {
			free(s->selector);
			s->selector = NULL;
		}
	}
	if (tb != NULL) {
		size_t o = 0;

		for (size_t i = 0; i < tb->value_len && o < 8; i++) {
			char c = tb->value[i];

			if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
			    (c >= '0' && c <= '9') || c == '+' || c == '/' || c == '=')
				s->b8[o++] = c;
		}
		s->b8[o] = '\0';
	}
	if (ta != NULL) {
		if (ta->value_len == 10 && strncmp(ta->value, "rsa-sha256", 10) == 0) {
			s->alg = DKIM_ALG_RSA_SHA256;
			s->alg_known = true;
		} else if (ta->value_len == 14 && strncmp(ta->value, "ed25519-sha256", 14) == 0) {
			s->alg = DKIM_ALG_ED25519_SHA256;
			s->alg_known = true;
		}
	}

	if (tv == NULL || ta == NULL || tb == NULL || tbh == NULL || td == NULL ||
	    th == NULL || ts == NULL) {
		decide(s, DKIM_STATUS_PERMERROR, "signature lacks a required tag (%s=)",
		    tv == NULL ? "v" : ta == NULL ? "a" : tb == NULL ? "b" : tbh == NULL ?
		    "bh" : td == NULL ? "d" : th == NULL ? "h" : "s");
		rc = 0;
		goto out;
	}
	if (tv->value_len != 1 || tv->value[0] != '1') {
		decide(s, DKIM_STATUS_PERMERROR, "unsupported signature version");
		rc = 0;
		goto out;
	}
	if (!s->alg_known) {
		bool sha1 = ta->value_len == 8 && strncmp(ta->value, "rsa-sha1", 8) == 0;

		decide(s, DKIM_STATUS_PERMERROR, "%s", sha1 ?
		    "rsa-sha1 is not accepted (RFC 8301)" : "unknown signature algorithm");
		rc = 0;
		goto out;
	}
	if (s->domain == NULL) {
		decide(s, DKIM_STATUS_PERMERROR, "bad d= domain");
		rc = 0;
		goto out;
	}
	if (s->selector == NULL) {
		decide(s, DKIM_STATUS_PERMERROR, "bad s= selector");
		rc = 0;
		goto out;
	}
	if (tc != NULL) {
		slash = memchr(tc->value, '/', tc->value_len);
		if (parse_canon(tc->value, slash != NULL ? (size_t)(slash - tc->value) :
		    tc->value_len, &hcanon) != 0 || (slash != NULL &&
		    parse_canon(slash + 1, tc->value_len - (size_t)(slash + 1 - tc->value),
		    &bcanon) != 0)) {
			decide(s, DKIM_STATUS_PERMERROR, "unknown canonicalization");
			rc = 0;
			goto out;
		}
	}
	if ((hbuf = dkim_tag_compact(th)) == NULL)
		goto out;
	if (parse_h(hbuf, h, hlen, &nh) != 0) {
		decide(s, DKIM_STATUS_PERMERROR, "bad h= list");
		rc = 0;
		goto out;
	}
	{
		bool from = false;

		for (size_t i = 0; i < nh; i++)
			from |= hlen[i] == 4 && strncasecmp(h[i], "from", 4) == 0;
		if (!from) {
			decide(s, DKIM_STATUS_PERMERROR, "From is not signed");
			rc = 0;
			goto out;
		}
	}
	if (ti != NULL) {
		const char *at;

		if ((s->identity = strndup(ti->value, ti->value_len)) == NULL)
			goto out;
		at = strrchr(s->identity, '@');
		if (at == NULL || !domain_valid(at + 1)) {
			decide(s, DKIM_STATUS_PERMERROR, "bad i= identity");
			rc = 0;
			goto out;
		}
		s->i_domain = at + 1;
		if (!identity_in_domain(s->i_domain, s->domain)) {
			decide(s, DKIM_STATUS_PERMERROR, "i= is not within d=");
			rc = 0;
			goto out;
		}
	}
	if (tl != NULL && parse_number(tl, &l) != 0) {
		decide(s, DKIM_STATUS_PERMERROR, "bad l= length");
		rc = 0;
		goto out;
	}
	if (tq != NULL && !dkim_tag_list_has(tq->value, tq->value_len, "dns/txt", true)) {
		decide(s, DKIM_STATUS_PERMERROR, "no usable q= query method");
		rc = 0;
		goto out;
	}
	if ((tt != NULL && parse_number(tt, &t) != 0) || (tx != NULL && parse_number(tx, &x) != 0)) {
		decide(s, DKIM_STATUS_PERMERROR, "bad t= or x= time");
		rc = 0;
		goto out;
	}
	if (tt != NULL && tx != NULL && x < t) {
		decide(s, DKIM_STATUS_PERMERROR, "x= is before t=");
		rc = 0;
		goto out;
	}
	if (tx != NULL && now > 0 && (uint64_t)now > x) {
		decide(s, DKIM_STATUS_FAIL, "signature expired");
		rc = 0;
		goto out;
	}
	if (dkim_buf_base64_decode(tbh->value, tbh->value_len, &bhraw, &bhlen) != 0 ||
	    bhlen != SHA256_LEN) {
		decide(s, DKIM_STATUS_PERMERROR, "bh= is not a SHA-256 hash in base64");
		rc = 0;
		goto out;
	}
	if (dkim_buf_base64_decode(tb->value, tb->value_len, &s->sig, &s->siglen) != 0 ||
	    s->siglen == 0 || s->siglen > MAX_SIG_BYTES) {
		free(s->sig);
		s->sig = NULL;
		decide(s, DKIM_STATUS_PERMERROR, "b= is not a signature in base64");
		rc = 0;
		goto out;
	}
	if ((size_t)snprintf(s->query, sizeof(s->query), "%s._domainkey.%s", s->selector,
	    s->domain) >= sizeof(s->query) || strlen(s->query) > 253) {
		decide(s, DKIM_STATUS_PERMERROR, "key name too long");
		rc = 0;
		goto out;
	}
	if (m->truncated) {
		decide(s, DKIM_STATUS_PERMERROR, "more than %d header fields", DKIM_MAX_FIELDS);
		rc = 0;
		goto out;
	}

	/* The body. */
	if ((bh = body_hash(cache, m, bcanon, l)) == NULL)
		goto out;
	if (tl != NULL && l > bh->total) {
		decide(s, DKIM_STATUS_PERMERROR, "l= is longer than the body");
		rc = 0;
		goto out;
	}
	if (CRYPTO_memcmp(bh->hash, bhraw, SHA256_LEN) != 0) {
		decide(s, DKIM_STATUS_FAIL, "body hash did not verify");
		rc = 0;
		goto out;
	}

	/* The header: the fields of h=, then this one without b='s value. */
	dkim_msg_canon_fields(m, hcanon, h, hlen, nh, &data);
	if ((compact = malloc(f->len)) == NULL)
		goto out;
	memcpy(compact, f->p, voff + tb->start);
	memcpy(compact + voff + tb->start, f->p + voff + tb->end, f->len - voff - tb->end);
	dkim_canon_header(hcanon, compact, f->len - (tb->end - tb->start), false, &data);
	if (data.oom || EVP_Digest(data.p, data.len, s->hash, NULL, EVP_sha256(), NULL) != 1)
		goto out;
	rc = 0;
out:
	ERR_clear_error();
	free(compact);
	free(hbuf);
	free(bhraw);
	dkim_buf_free(&data);
	return rc;
}

int
dkim_verify_begin(const char *msg, size_t len, time_t now, struct dkim_verify **v_r)
{
	struct dkim_verify *v;
	struct body_cache cache = { .n = 0 };
	struct dkim_msg m;

	*v_r = NULL;
	if ((v = calloc(1, sizeof(*v))) == NULL)
		return -1;
	if (dkim_msg_parse(msg, len, &m) != 0) {
		free(v);
		return -1;
	}
	for (size_t i = 0; i < m.nfields; i++) {
		if (!dkim_msg_field_is(&m.fields[i], "DKIM-Signature", 14))
			continue;
		if (v->n == DKIM_MAX_SIGNATURES) {
			v->ignored++;
			continue;
		}
		if (sig_begin(&v->sigs[v->n++], &m, &m.fields[i], now, &cache) != 0) {
			dkim_msg_clear(&m);
			dkim_verify_free(&v);
			return -1;
		}
	}
	dkim_msg_clear(&m);
	*v_r = v;
	return 0;
}

size_t
dkim_verify_count(const struct dkim_verify *v)
{
	return v->n;
}

size_t
dkim_verify_ignored(const struct dkim_verify *v)
{
	return v->ignored;
}

const char *
dkim_verify_query(const struct dkim_verify *v, size_t i)
{
	if (i >= v->n || v->sigs[i].decided)
		return NULL;
	return v->sigs[i].query;
}

/* The public key of a record's p= for alg; NULL with a reason. */
static EVP_PKEY *
record_key(const unsigned char *p, size_t plen, enum dkim_alg alg, const char **why_r)
{
	const unsigned char *q = p;
	EVP_PKEY *pkey = NULL;

	*why_r = "bad key data";
	if (alg == DKIM_ALG_ED25519_SHA256) {
		if (plen == 32)
			pkey = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, p, plen);
		return pkey;
	}
	/* SubjectPublicKeyInfo (usual), or a bare RSAPublicKey (RFC 6376 3.6.1). */
	if (plen > LONG_MAX)
		return NULL;
	pkey = d2i_PUBKEY(NULL, &q, (long)plen);
	if (pkey == NULL || q != p + plen) {
		EVP_PKEY_free(pkey);
		q = p;
		pkey = d2i_PublicKey(EVP_PKEY_RSA, NULL, &q, (long)plen);
		if (pkey == NULL || q != p + plen) {
			EVP_PKEY_free(pkey);
			return NULL;
		}
	}
	if (EVP_PKEY_get_base_id(pkey) != EVP_PKEY_RSA) {
		*why_r = "key type does not match the signature's algorithm";
	} else if (EVP_PKEY_get_bits(pkey) < RSA_MIN_BITS) {
		*why_r = "RSA key shorter than 1024 bits (RFC 8301)";
	} else if (EVP_PKEY_get_bits(pkey) > RSA_MAX_BITS) {
		*why_r = "RSA key longer than 8192 bits";
	} else {
		return pkey;
	}
	EVP_PKEY_free(pkey);
	return NULL;
}

/* 1 when sig is hash's signature under pkey, else 0. */
static int
check_signature(EVP_PKEY *pkey, enum dkim_alg alg, const unsigned char *hash,
    const unsigned char *sig, size_t siglen)
{
	int ok = 0;

	if (alg == DKIM_ALG_ED25519_SHA256) {
		EVP_MD_CTX *md = EVP_MD_CTX_new();

		ok = md != NULL && siglen == 64 &&
		    EVP_DigestVerifyInit(md, NULL, NULL, NULL, pkey) == 1 &&
		    EVP_DigestVerify(md, sig, siglen, hash, SHA256_LEN) == 1;
		EVP_MD_CTX_free(md);
	} else {
		EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new(pkey, NULL);

		ok = ctx != NULL && EVP_PKEY_verify_init(ctx) == 1 &&
		    EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_PADDING) == 1 &&
		    EVP_PKEY_CTX_set_signature_md(ctx, EVP_sha256()) == 1 &&
		    EVP_PKEY_verify(ctx, sig, siglen, hash, SHA256_LEN) == 1;
		EVP_PKEY_CTX_free(ctx);
	}
	ERR_clear_error();
	return ok;
}

void
dkim_verify_answer(struct dkim_verify *v, size_t i, enum dkim_dns dns, const char *txt,
    size_t txt_len)
{
	struct dkim_tags tags;
	const struct dkim_tag *tv, *th, *tk, *ts, *tt, *tp;
	struct sig *s;
	const char *err, *ktype;
	unsigned char *p = NULL;
	size_t plen;
	EVP_PKEY *pkey = NULL;
	char *pc = NULL;

	if (i >= v->n || v->sigs[i].decided)
		return;
	s = &v->sigs[i];
	if (dns == DKIM_DNS_TEMPFAIL) {
		decide(s, DKIM_STATUS_TEMPERROR, "key lookup failed");
		return;
	}
	if (dns != DKIM_DNS_FOUND || txt == NULL) {
		decide(s, DKIM_STATUS_PERMERROR, "no key for signature");
		return;
	}
	if (txt_len > MAX_RECORD) {
		decide(s, DKIM_STATUS_PERMERROR, "key record too long");
		return;
	}
	if (dkim_tag_parse(txt, txt_len, &tags, &err) != 0) {
		decide(s, DKIM_STATUS_PERMERROR, "key record syntax: %s", err);
		return;
	}
	tv = dkim_tag_get(&tags, "v");
	th = dkim_tag_get(&tags, "h");
	tk = dkim_tag_get(&tags, "k");
	ts = dkim_tag_get(&tags, "s");
	tt = dkim_tag_get(&tags, "t");
	tp = dkim_tag_get(&tags, "p");
	if (tv != NULL && (tv != &tags.t[0] || tv->value_len != 5 ||
	    strncmp(tv->value, "DKIM1", 5) != 0)) {
		decide(s, DKIM_STATUS_PERMERROR, "bad key record version");
		return;
	}
	if (th != NULL && !dkim_tag_list_has(th->value, th->value_len, "sha256", false)) {
		decide(s, DKIM_STATUS_PERMERROR, "key does not allow sha256");
		return;
	}
	ktype = dkim_alg_key_type(s->alg);
	if (tk != NULL && (tk->value_len != strlen(ktype) ||
	    strncmp(tk->value, ktype, tk->value_len) != 0)) {
		bool known = (tk->value_len == 3 && strncmp(tk->value, "rsa", 3) == 0) ||
		    (tk->value_len == 7 && strncmp(tk->value, "ed25519", 7) == 0);

		decide(s, DKIM_STATUS_PERMERROR, "%s", known ?
		    "key type does not match the signature's algorithm" : "unknown key type");
		return;
	}
	if (tk == NULL && s->alg != DKIM_ALG_RSA_SHA256) {
		decide(s, DKIM_STATUS_PERMERROR, "key type does not match the signature's "
		    "algorithm");
		return;
	}
	if (ts != NULL && !dkim_tag_list_has(ts->value, ts->value_len, "*", false) &&
	    !dkim_tag_list_has(ts->value, ts->value_len, "email", false)) {
		decide(s, DKIM_STATUS_PERMERROR, "key is not for email");
		return;
	}
	if (tt != NULL) {
		s->testing = dkim_tag_list_has(tt->value, tt->value_len, "y", false);
		if (dkim_tag_list_has(tt->value, tt->value_len, "s", false) &&
		    s->i_domain != NULL && strcasecmp(s->i_domain, s->domain) != 0) {
			decide(s, DKIM_STATUS_PERMERROR, "i= must be d= itself (key t=s)");
			return;
		}
	}
	if (tp == NULL) {
		decide(s, DKIM_STATUS_PERMERROR, "key record has no p=");
		return;
	}
	if ((pc = dkim_tag_compact(tp)) == NULL) {
		decide(s, DKIM_STATUS_TEMPERROR, "out of memory");
		return;
	}
	if (pc[0] == '\0') {
		decide(s, DKIM_STATUS_FAIL, "key revoked");
	} else if (dkim_buf_base64_decode(pc, strlen(pc), &p, &plen) != 0) {
		decide(s, DKIM_STATUS_PERMERROR, "bad key data");
	} else if ((pkey = record_key(p, plen, s->alg, &err)) == NULL) {
		decide(s, DKIM_STATUS_PERMERROR, "%s", err);
	} else if (check_signature(pkey, s->alg, s->hash, s->sig, s->siglen)) {
		decide(s, DKIM_STATUS_PASS, NULL);
	} else {
		decide(s, DKIM_STATUS_FAIL, "signature did not verify");
	}
	/* RFC 6376 3.6.1 t=y: a failure counts as no signature at all. */
	if (s->testing && s->status == DKIM_STATUS_FAIL) {
		s->status = DKIM_STATUS_NEUTRAL;
		strncat(s->reason, " (key in testing mode)",
		    sizeof(s->reason) - strlen(s->reason) - 1);
	}
	ERR_clear_error();
	EVP_PKEY_free(pkey);
	free(p);
	free(pc);
}

/* i= as it may appear in Authentication-Results: local-part@domain, atext only. */
static bool
identity_printable(const char *s)
{
	for (; *s != '\0'; s++) {
		unsigned char c = (unsigned char)*s;

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9') || strchr("!#$%&'*+-/=?^_`{|}~.@", c) != NULL))
			return false;
	}
	return true;
}

void
dkim_verify_result(const struct dkim_verify *v, size_t i, struct dkim_result *r)
{
	const struct sig *s = &v->sigs[i];

	*r = (struct dkim_result){
		.status = s->status,
		.reason = s->reason[0] != '\0' ? s->reason : NULL,
		.domain = s->domain,
		.selector = s->selector,
		.identity = s->identity != NULL && identity_printable(s->identity) ?
		    s->identity : NULL,
		.algorithm = s->alg_known ? dkim_alg_name(s->alg) : NULL,
		.b = s->b8[0] != '\0' ? s->b8 : NULL,
		.testing = s->testing,
	};
	if (r->status == DKIM_STATUS_PASS)
		r->reason = NULL;
}

bool
dkim_verify_pass(const struct dkim_verify *v)
{
	for (size_t i = 0; i < v->n; i++)
		if (v->sigs[i].decided && v->sigs[i].status == DKIM_STATUS_PASS)
			return true;
	return false;
}

void
dkim_verify_free(struct dkim_verify **vp)
{
	struct dkim_verify *v = *vp;

	if (v == NULL)
		return;
	for (size_t i = 0; i < v->n; i++) {
		free(v->sigs[i].domain);
		free(v->sigs[i].selector);
		free(v->sigs[i].identity);
		free(v->sigs[i].sig);
	}
	free(v);
	*vp = NULL;
}
