/*
 * dns_answer.c: the pure part of the resolver: walking a DNS reply (header,
 * questions, answer records, CNAME chains) and checking host names. Trusts
 * nothing in the packet: every length is checked against the buffer, names
 * are expanded by c-ares (which refuses compression loops), CNAME chains
 * and record counts are bounded. RFC 1035 4.1, RFC 2181 10.1.
 */
#include <ares.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "dns/dns.h"

#define DNS_HEADER_LEN 12
#define DNS_CLASS_IN 1

struct dns_rr {
	char *owner;                  /* expanded, from c-ares */
	uint16_t type, class;
	const unsigned char *rdata;
	uint16_t rdlen;
};

static uint16_t
get16(const unsigned char *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

/* Names compare without case and without a trailing dot. */
static bool
dns_name_equal(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);

	if (la > 0 && a[la - 1] == '.')
		la--;
	if (lb > 0 && b[lb - 1] == '.')
		lb--;
	return la == lb && strncasecmp(a, b, la) == 0;
}

/* Skip a (possibly compressed) name at *off; -1 when it runs off the end. */
static int
dns_skip_name(const unsigned char *msg, size_t len, size_t *off)
{
	char *name = NULL;
	long enclen = 0;

	if (*off >= len || ares_expand_name(msg + *off, msg, (int)len, &name, &enclen) != ARES_SUCCESS)
		return -1;
	ares_free_string(name);
	*off += (size_t)enclen;
	return *off <= len ? 0 : -1;
}

int
dns_answer_walk(const unsigned char *msg, size_t len, const char *qname,
    enum dns_type qtype, dns_rr_fn *fn, void *ctx, struct dns_answer_info *info_r,
    const char **error_r)
{
	struct dns_rr *rrs = NULL;
	size_t nrr = 0, off = DNS_HEADER_LEN, i;
	unsigned qdcount, ancount;
	const char *name = qname;
	int ret = -1;

	memset(info_r, 0, sizeof(*info_r));
	if (len < DNS_HEADER_LEN || len > 65535) {
		*error_r = "short packet";
		return -1;
	}
	if (!(msg[2] & 0x80)) {
		*error_r = "not a response";
		return -1;
	}
	info_r->rcode = msg[3] & 0x0f;
	qdcount = get16(msg + 4);
	ancount = get16(msg + 6);
	for (i = 0; i < qdcount; i++) {
		if (dns_skip_name(msg, len, &off) == -1 || len - off < 4) {
			*error_r = "bad question";
			return -1;
		}
		off += 4;
	}
	if (ancount > DNS_ANSWER_RR_MAX)
		ancount = DNS_ANSWER_RR_MAX;   /* the rest is ignored, not trusted */
	if (ancount > 0 && (rrs = calloc(ancount, sizeof(*rrs))) == NULL) {
		*error_r = "out of memory";
		return -1;
	}
	for (nrr = 0; nrr < ancount; nrr++) {
		struct dns_rr *rr = &rrs[nrr];
		long enclen = 0;

		if (off >= len || ares_expand_name(msg + off, msg, (int)len, &rr->owner,
		    &enclen) != ARES_SUCCESS) {
			rr->owner = NULL;
			*error_r = "bad record name";
			goto out;
		}
		off += (size_t)enclen;
		if (off > len || len - off < 10) {
			nrr++;
			*error_r = "truncated record";
			goto out;
		}
		rr->type = get16(msg + off);
		rr->class = get16(msg + off + 2);
		rr->rdlen = get16(msg + off + 8);
		off += 10;
		if (len - off < rr->rdlen) {
			nrr++;
			*error_r = "truncated record data";
			goto out;
		}
		rr->rdata = msg + off;
		off += rr->rdlen;
	}

	/* Follow the aliases of qname, then take the records of the last name. */
	for (;;) {
		bool have = false;
		const struct dns_rr *cname = NULL;

		for (i = 0; i < nrr; i++) {
			if (rrs[i].class != DNS_CLASS_IN || !dns_name_equal(rrs[i].owner, name))
				continue;
			if (rrs[i].type == qtype)
				have = true;
			else if (rrs[i].type == DNS_TYPE_CNAME && cname == NULL)
				cname = &rrs[i];
		}
		if (have || cname == NULL || qtype == DNS_TYPE_CNAME)
			break;
		if (info_r->ncname >= DNS_CNAME_MAX) {
			*error_r = "CNAME chain too long (or a loop)";
			goto out;
		}
		{
			char *target = NULL;
			long enclen = 0;
			size_t tlen;

			if (ares_expand_name(cname->rdata, msg, (int)len, &target, &enclen) != ARES_SUCCESS ||
			    (size_t)enclen > cname->rdlen) {
				ares_free_string(target);
				*error_r = "bad CNAME";
				goto out;
			}
			tlen = strlen(target);
			if (tlen > DNS_NAME_MAX) {
				ares_free_string(target);
				*error_r = "CNAME target too long";
				goto out;
			}
			memcpy(info_r->name, target, tlen + 1);
			ares_free_string(target);
		}
		name = info_r->name;
		info_r->ncname++;
	}
	if (name != info_r->name) {
		size_t qlen = strlen(qname);

		if (qlen > DNS_NAME_MAX) {
			*error_r = "name too long";
			goto out;
		}
		memcpy(info_r->name, qname, qlen + 1);
	}
	for (i = 0; i < nrr; i++) {
		if (rrs[i].class != DNS_CLASS_IN || rrs[i].type != qtype ||
		    !dns_name_equal(rrs[i].owner, name))
			continue;
		if (fn != NULL && fn(ctx, msg, len, rrs[i].rdata, rrs[i].rdlen) == -1) {
			*error_r = "bad record data";
			goto out;
		}
		info_r->nrecords++;
	}
	ret = 0;
out:
	for (i = 0; i < nrr; i++)
		ares_free_string(rrs[i].owner);
	free(rrs);
	return ret;
}

bool
dns_hostname_valid(const char *name)
{
	size_t total = 0, label = 0;
	const char *p;

	for (p = name; *p != '\0'; p++, total++) {
		unsigned char ch = (unsigned char)*p;

		if (ch == '.') {
			if (label == 0 || p[-1] == '-')
				return false;
			label = 0;
			continue;
		}
		if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		    (ch >= '0' && ch <= '9') || ch == '-' || ch == '_'))
			return false;
		if (label == 0 && ch == '-')
			return false;
		if (++label > 63)
			return false;
	}
	return total > 0 && total <= 253 && label > 0 && p[-1] != '-';
}
