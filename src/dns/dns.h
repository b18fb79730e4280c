/*
 * dns.h: asynchronous DNS for outbound mail (c-ares driven by the libevent
 * loop): MX with the RFC 5321 5.1 implicit MX and the RFC 7505 null MX,
 * A/AAAA, and TXT (for DKIM). Trusts no answer: names are checked, CNAME
 * chains and answer sizes are bounded. Never blocks the loop.
 * RFC 1035, RFC 2181, RFC 5321 5.1 and 5.3.4 (order, shuffling),
 * RFC 7505.
 */
#ifndef BULWARK_DNS_H
#define BULWARK_DNS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

struct event_base;
struct config;
struct dns;
struct dns_req;

#define DNS_NAME_MAX 255      /* presentation form, no trailing dot */
#define DNS_CNAME_MAX 8       /* aliases followed inside one answer */
#define DNS_ANSWER_RR_MAX 100 /* answer records looked at; the rest are ignored */
#define DNS_MX_MAX 16         /* MX hosts returned (the best ones) */
#define DNS_ADDR_MAX 16       /* addresses returned per family */
#define DNS_TXT_MAX 32        /* TXT records returned */

enum dns_status {
	DNS_OK = 0,
	DNS_NXDOMAIN,   /* the name does not exist: permanent */
	DNS_NODATA,     /* the name exists, without the records asked for
	                   (for MX: no MX and no A/AAAA): permanent */
	DNS_NULL_MX,    /* RFC 7505 "MX 0 .": the domain accepts no mail: permanent */
	DNS_TEMPFAIL,   /* SERVFAIL, timeout, refused, bad answer, no memory: retry later */
};

const char *dns_status_name(enum dns_status status);

struct dns_mx {
	char name[DNS_NAME_MAX + 1];   /* lower case, no trailing dot */
	unsigned preference;
	bool implicit;                 /* no MX: the domain itself (RFC 5321 5.1) */
};

/*
 * Results are valid only during the callback (copy what you keep). n is 0
 * unless status is DNS_OK. Callbacks run on the loop, never from inside the
 * dns_resolve_* call that started them.
 */
typedef void dns_mx_cb(void *arg, enum dns_status status,
    const struct dns_mx *hosts, size_t n);
/* Addresses with port 0: IPv4 first, then IPv6. */
typedef void dns_addr_cb(void *arg, enum dns_status status,
    const struct sockaddr_storage *addrs, size_t n);
/* Each TXT record's character-strings joined, NUL-terminated (records
 * holding a NUL are skipped). */
typedef void dns_txt_cb(void *arg, enum dns_status status,
    const char *const *txts, size_t n);

/*
 * A resolver on base. cfg->outbound.dns_servers ("IP:PORT", "[IPv6]:PORT")
 * replaces /etc/resolv.conf's servers when not empty. Only DNS is asked
 * (no /etc/hosts, no search domains: names are absolute).
 * NULL with a malloc'd *error_r on failure.
 */
struct dns *dns_new(struct event_base *base, const struct config *cfg, char **error_r);
/*
 * Drop every request without calling back, then free. Call it only from
 * outside a dns callback.
 */
void dns_free(struct dns **dns);

/*
 * Start a lookup. Returns a handle, or NULL when the request cannot even
 * be started (no memory, a name that is not a hostname): then cb is never
 * called and the caller treats it as DNS_TEMPFAIL (or a bad name).
 *
 * Lifetime rule: the handle is valid until its callback starts or until
 * dns_cancel(). A requester that goes away first must dns_cancel() its
 * handle: it is then never called back (the c-ares query finishes on its
 * own and is dropped). Inside the callback the handle is already gone; do
 * not cancel it there.
 *
 * dns_resolve_mx: the MX hosts of domain, best preference first, random
 * order within one preference, without duplicates or unusable names; with
 * no MX but an A/AAAA, the domain itself (implicit). A single MX whose
 * exchange is the root "." is DNS_NULL_MX; a root exchange among others is
 * ignored.
 */
struct dns_req *dns_resolve_mx(struct dns *dns, const char *domain, dns_mx_cb *cb, void *arg);
/* Both families, asked in parallel; DNS_OK when either has an address. */
struct dns_req *dns_resolve_addrs(struct dns *dns, const char *host, dns_addr_cb *cb, void *arg);
struct dns_req *dns_resolve_txt(struct dns *dns, const char *name, dns_txt_cb *cb, void *arg);
/* Forget a pending request (see the lifetime rule); sets *req to NULL. */
void dns_cancel(struct dns_req **req);
/* Requests started and not yet called back or cancelled (for tests and metrics). */
size_t dns_pending(const struct dns *dns);

/* ---- the answer walker (pure; exposed for tests and fuzzing) ---- */

enum dns_type {
	DNS_TYPE_A = 1,
	DNS_TYPE_CNAME = 5,
	DNS_TYPE_MX = 15,
	DNS_TYPE_TXT = 16,
	DNS_TYPE_AAAA = 28,
};

/* Called for each answer record of the asked type owned by the final name. */
typedef int dns_rr_fn(void *ctx, const unsigned char *msg, size_t msglen,
    const unsigned char *rdata, size_t rdlen);

struct dns_answer_info {
	int rcode;                          /* the header's RCODE */
	char name[DNS_NAME_MAX + 1];        /* qname after the CNAMEs */
	int ncname;                         /* aliases followed */
	size_t nrecords;                    /* records passed to fn */
};

/*
 * Walk a DNS reply to (qname, qtype): starting at qname, follow CNAMEs in
 * the answer section (at most DNS_CNAME_MAX; a loop or a longer chain is an
 * error), then call fn for every IN record of qtype owned by that name
 * (case-insensitive). Looks at the first DNS_ANSWER_RR_MAX answer records.
 * Returns 0, or -1 with *error_r (malformed packet, a chain too long, or fn
 * returned -1).
 */
int dns_answer_walk(const unsigned char *msg, size_t len, const char *qname,
    enum dns_type qtype, dns_rr_fn *fn, void *ctx, struct dns_answer_info *info_r,
    const char **error_r);

/* Is name a usable DNS name to ask for: LDH labels of 1..63 (and '_', for
 * DKIM's _domainkey), 1..253 in all, no trailing dot? */
bool dns_hostname_valid(const char *name);

#endif
