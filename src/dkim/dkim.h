/*
 * dkim.h: DomainKeys Identified Mail, the module's door. Key files and their
 * DNS records, signing of outbound mail, verification of inbound mail in two
 * steps (parse now, finish when the DNS answer comes) and the
 * Authentication-Results clauses. Trusts its own key files (after checking
 * their mode); trusts nothing in a message or in a DNS answer.
 * Standards: RFC 6376 (DKIM), RFC 8463 (ed25519-sha256), RFC 8301 (no
 * rsa-sha1, RSA keys of 1024 bits at least), RFC 8601 (Authentication-Results).
 */
#ifndef BULWARK_DKIM_H
#define BULWARK_DKIM_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#define DKIM_MAX_SIGNATURES 8      /* verified per message; the rest are ignored */
#define DKIM_MAX_KEYS 16           /* key files per domain */
#define DKIM_RSA_BITS 2048         /* what dkim_keygen makes */

enum dkim_alg {
	DKIM_ALG_RSA_SHA256,
	DKIM_ALG_ED25519_SHA256,
};

/* "rsa-sha256" or "ed25519-sha256", the a= value. */
const char *dkim_alg_name(enum dkim_alg alg);
/* "rsa" or "ed25519", the k= value (and the --algorithm word). */
const char *dkim_alg_key_type(enum dkim_alg alg);
/* Parse a key type ("rsa", "ed25519"); 0, or -1 if unknown. */
int dkim_alg_parse(const char *name, enum dkim_alg *alg_r);

/* ---- keys: data_dir/dkim/DOMAIN/SELECTOR.pem, PKCS#8 PEM, mode 0600 ---- */

struct dkim_key;

/* True for a DNS name of letters, digits, '-' and '_' labels (a selector or a domain). */
bool dkim_key_name_valid(const char *name);
/*
 * Make a key for domain (lower-cased) under selector and write it durably
 * (directories 0700, file 0600); an existing key is never overwritten. On
 * success *record_r is the malloc'd zone-file line to publish, as
 * dkim_key_record() gives it. 0, or -1 with a malloc'd *error_r (NULL when
 * out of memory, as everywhere in this header).
 */
int dkim_keygen(const char *data_dir, const char *domain, const char *selector,
    enum dkim_alg alg, char **record_r, char **error_r);
/*
 * Load every key of domain: each data_dir/dkim/DOMAIN/SELECTOR.pem (names
 * starting with '.' and not ending in .pem are skipped), RSA keys first,
 * then by selector. No directory or no key file: 0 keys, *keys_r NULL. A
 * file that cannot be read, is readable by others than its owner or is not
 * a usable key is an error naming its path. 0, or -1 with a malloc'd
 * *error_r (NULL when out of memory).
 */
int dkim_keys_load(const char *data_dir, const char *domain,
    struct dkim_key ***keys_r, size_t *nkeys_r, char **error_r);
/* Free what dkim_keys_load() gave and set *keys to NULL. */
void dkim_keys_free(struct dkim_key ***keys, size_t nkeys);
/* Load one private key file for domain and selector (checks as above). */
int dkim_key_load_file(const char *path, const char *domain, const char *selector,
    struct dkim_key **key_r, char **error_r);
void dkim_key_free(struct dkim_key **key);
const char *dkim_key_domain(const struct dkim_key *key);
const char *dkim_key_selector(const struct dkim_key *key);
const char *dkim_key_path(const struct dkim_key *key);
enum dkim_alg dkim_key_alg(const struct dkim_key *key);
/* The malloc'd TXT text "v=DKIM1; k=rsa; p=BASE64" (one string). NULL: no memory. */
char *dkim_key_txt(const struct dkim_key *key);
/*
 * The malloc'd zone-file line: SELECTOR._domainkey.DOMAIN. IN TXT "..."
 * with the text cut into quoted strings of at most 255 characters (no
 * newline at the end). NULL: no memory.
 */
char *dkim_key_record(const struct dkim_key *key);

/* ---- signing ---- */

/*
 * Sign msg (the wire message, CRLF line ends) with key at time now:
 * relaxed/relaxed, the RFC 6376 5.4.1 header fields that are present, From
 * once more than it occurs (over-signed), t=, no l= and no x=. *header_r is
 * the malloc'd DKIM-Signature field, folded, ending in CRLF, to put in front
 * of the message. 0, or -1 with a malloc'd *error_r (no From, too many
 * header fields, out of memory, a failing key).
 */
int dkim_sign(const struct dkim_key *key, const char *msg, size_t len, time_t now,
    char **header_r, char **error_r);
/*
 * The same with several keys at once (the body is hashed once): each key
 * signs the original message independently; *headers_r holds the fields
 * in the order of keys, to put in front of the message as they are.
 */
int dkim_sign_keys(struct dkim_key *const *keys, size_t nkeys, const char *msg,
    size_t len, time_t now, char **headers_r, char **error_r);

/* ---- verification ---- */

/* RFC 8601 result names; "none" is the absence of any signature. */
enum dkim_status {
	DKIM_STATUS_PASS,
	DKIM_STATUS_FAIL,
	DKIM_STATUS_NEUTRAL,
	DKIM_STATUS_TEMPERROR,
	DKIM_STATUS_PERMERROR,
};

/* How the key lookup ended. */
enum dkim_dns {
	DKIM_DNS_FOUND,        /* a TXT record: its strings joined, nothing between */
	DKIM_DNS_NONE,         /* NXDOMAIN or no TXT record */
	DKIM_DNS_TEMPFAIL,     /* SERVFAIL, timeout */
};

/* One signature's outcome; the strings live as long as the verification. */
struct dkim_result {
	enum dkim_status status;
	const char *reason;      /* NULL on pass; fixed ASCII text otherwise */
	const char *domain;      /* d=, NULL if unreadable */
	const char *selector;    /* s=, NULL if unreadable */
	const char *identity;    /* i= as signed, NULL if absent or unprintable */
	const char *algorithm;   /* a=, NULL if unknown */
	const char *b;           /* the first 8 characters of b=, NULL if unreadable */
	bool testing;            /* the key record says t=y */
};

struct dkim_verify;

/* "pass", "fail", "neutral", "temperror", "permerror". */
const char *dkim_status_name(enum dkim_status status);
/*
 * Step one: read the DKIM-Signature fields of msg (CRLF line ends), check
 * each one's syntax, time and body hash, and hash its header fields, so msg
 * is not needed afterwards. 0, or -1 when out of memory.
 */
int dkim_verify_begin(const char *msg, size_t len, time_t now,
    struct dkim_verify **v_r);
/* Signatures read (at most DKIM_MAX_SIGNATURES). */
size_t dkim_verify_count(const struct dkim_verify *v);
/* Signatures beyond DKIM_MAX_SIGNATURES, not verified. */
size_t dkim_verify_ignored(const struct dkim_verify *v);
/*
 * The TXT name to look up for signature i (SELECTOR._domainkey.DOMAIN, no
 * final dot), or NULL when its result is already known (an error, expiry,
 * a body hash mismatch) or was answered.
 */
const char *dkim_verify_query(const struct dkim_verify *v, size_t i);
/* Step two: the lookup's outcome for signature i; txt is used for DKIM_DNS_FOUND. */
void dkim_verify_answer(struct dkim_verify *v, size_t i, enum dkim_dns dns,
    const char *txt, size_t txt_len);
/* Signature i's outcome (a signature never answered is a temperror). */
void dkim_verify_result(const struct dkim_verify *v, size_t i, struct dkim_result *r);
/* True if any signature passed. */
bool dkim_verify_pass(const struct dkim_verify *v);
void dkim_verify_free(struct dkim_verify **v);

/*
 * The RFC 8601 resinfo clauses, one per signature, joined by sep (say
 * ";\r\n\t"): dkim=pass header.d=example.org header.s=sel
 * header.a=rsa-sha256 header.b=abcdefgh, with reason="..." when it did not
 * pass; "dkim=none" without signatures. Malloc'd; NULL: no memory.
 */
char *dkim_auth_results(const struct dkim_verify *v, const char *sep);

#endif
