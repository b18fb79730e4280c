/*
 * ctl_dkim.c: bulwarkctl's dkim verbs: make a domain's keys and print their
 * DNS TXT records, sign the message on stdin, verify it with keys given by
 * --txt (never DNS). Trusts nothing on stdin: the message is read bounded.
 * Standards: RFC 6376 (DKIM), RFC 8463 (ed25519-sha256), RFC 1035 5.1 (the
 * quoted strings of a zone file's TXT record, for --txt).
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "cmd/ctl.h"
#include "core/config.h"
#include "dkim/dkim.h"

#define DKIM_STDIN_MAX (64 * 1024 * 1024)

/* DOMAIN must be one of ours; 0, or EXIT_FAIL after complaining. */
static int
dkim_local_domain(struct ctl *ctl, const char *domain)
{
	char b[300];

	if (!config_is_local_domain(ctl->cfg, domain))
		return complain(ctl, "domain %s is not a local domain (see domains: in %s)",
		    printable(b, sizeof(b), domain), ctl->cfg->path);
	return 0;
}

int
cmd_dkim_keygen(struct ctl *ctl, const struct args *a)
{
	const char *domain = a->pos[0];
	enum dkim_alg algs[2] = { DKIM_ALG_RSA_SHA256, DKIM_ALG_ED25519_SHA256 };
	char selectors[2][64], *record = NULL, *error = NULL;
	time_t now = time(NULL);
	struct tm tm;
	size_t n = 2;

	if (dkim_local_domain(ctl, domain) != 0)
		return EXIT_FAIL;
	if (a->algorithm != NULL) {
		if (dkim_alg_parse(a->algorithm, &algs[0]) != 0)
			return complain(ctl, "--algorithm: rsa or ed25519");
		n = 1;
	} else if (a->selector != NULL) {
		/* One selector names one key: RSA, which every verifier knows. */
		n = 1;
	}
	if (a->selector != NULL) {
		if (strlen(a->selector) >= sizeof(selectors[0]) ||
		    !dkim_key_name_valid(a->selector))
			return complain(ctl, "--selector: letters, digits, '-' and '_', "
			    "at most 63");
		snprintf(selectors[0], sizeof(selectors[0]), "%s", a->selector);
	} else {
		/* rsa-YYYYMM, ed25519-YYYYMM: a new pair each rotation. */
		gmtime_r(&now, &tm);
		for (size_t i = 0; i < n; i++)
			snprintf(selectors[i], sizeof(selectors[i]), "%s-%04d%02d",
			    dkim_alg_key_type(algs[i]), tm.tm_year + 1900, tm.tm_mon + 1);
	}
	for (size_t i = 0; i < n; i++) {
		if (dkim_keygen(ctl->cfg->data_dir, domain, selectors[i], algs[i], &record,
		    &error) != 0)
			return complain_error(ctl, error);
		printf("; DKIM %s key %s for %s: publish this record in DNS\n%s\n",
		    dkim_alg_name(algs[i]), selectors[i], domain, record);
		free(record);
	}
	return fflush(stdout) == 0 ? EXIT_OK : complain(ctl, "write: %s", strerror(errno));
}

int
cmd_dkim_records(struct ctl *ctl, const struct args *a)
{
	struct dkim_key **keys = NULL;
	size_t n = 0;
	char *error = NULL, b[300];

	if (dkim_local_domain(ctl, a->pos[0]) != 0)
		return EXIT_FAIL;
	if (dkim_keys_load(ctl->cfg->data_dir, a->pos[0], &keys, &n, &error) != 0)
		return complain_error(ctl, error);
	if (n == 0) {
		const char *domain = printable(b, sizeof(b), a->pos[0]);

		return complain(ctl, "no DKIM keys for %s (" PROG " dkim keygen %s)", domain,
		    domain);
	}
	for (size_t i = 0; i < n; i++) {
		char *record = dkim_key_record(keys[i]);

		if (record == NULL) {
			dkim_keys_free(&keys, n);
			return complain(ctl, "out of memory");
		}
		printf("; DKIM %s key %s\n%s\n", dkim_alg_name(dkim_key_alg(keys[i])),
		    dkim_key_path(keys[i]), record);
		free(record);
	}
	dkim_keys_free(&keys, n);
	return fflush(stdout) == 0 ? EXIT_OK : complain(ctl, "write: %s", strerror(errno));
}

/*
 * The message on stdin, bounded, every bare LF made CRLF (a file saved on
 * Unix; the wire and the spool use CRLF). NULL after complaining.
 */
static char *
dkim_read_message(struct ctl *ctl, size_t *len_r)
{
	char *in = NULL, *out;
	size_t len = 0, cap = 0, lf = 0, o = 0;

	for (;;) {
		size_t got;

		if (cap - len < 65536) {
			char *grown;

			if (cap >= DKIM_STDIN_MAX) {
				free(in);
				complain(ctl, "the message on stdin is over %d bytes", DKIM_STDIN_MAX);
				return NULL;
			}
			cap = cap == 0 ? 262144 : cap * 2;
			if ((grown = realloc(in, cap)) == NULL) {
				free(in);
				complain(ctl, "out of memory");
				return NULL;
			}
			in = grown;
		}
		got = fread(in + len, 1, cap - len, stdin);
		len += got;
		if (got == 0) {
			if (ferror(stdin)) {
				free(in);
				complain(ctl, "reading stdin: %s", strerror(errno));
				return NULL;
			}
			break;
		}
	}
	for (size_t i = 0; i < len; i++)
		lf += in[i] == '\n' && (i == 0 || in[i - 1] != '\r');
	if ((out = malloc(len + lf + 1)) == NULL) {
		free(in);
		complain(ctl, "out of memory");
		return NULL;
	}
	for (size_t i = 0; i < len; i++) {
		if (in[i] == '\n' && (i == 0 || in[i - 1] != '\r'))
			out[o++] = '\r';
		out[o++] = in[i];
	}
	out[o] = '\0';
	free(in);
	*len_r = o;
	return out;
}

int
cmd_dkim_sign(struct ctl *ctl, const struct args *a)
{
	struct dkim_key **keys = NULL;
	size_t n = 0, use = 0, len;
	char *msg = NULL, *headers = NULL, *error = NULL, b[300];
	int rc = EXIT_FAIL;

	if (dkim_local_domain(ctl, a->pos[0]) != 0)
		return EXIT_FAIL;
	if (dkim_keys_load(ctl->cfg->data_dir, a->pos[0], &keys, &n, &error) != 0)
		return complain_error(ctl, error);
	/* The keys to use, moved to the front: all, or the one --selector names. */
	for (size_t i = 0; i < n; i++) {
		if (a->selector == NULL || strcmp(dkim_key_selector(keys[i]), a->selector) == 0) {
			struct dkim_key *k = keys[use];

			keys[use++] = keys[i];
			keys[i] = k;
		}
	}
	if (use == 0) {
		complain(ctl, "no DKIM key%s%s for %s (" PROG " dkim keygen)",
		    a->selector != NULL ? " with selector " : "",
		    a->selector != NULL ? printable(b, sizeof(b), a->selector) : "", a->pos[0]);
		goto out;
	}
	if ((msg = dkim_read_message(ctl, &len)) == NULL)
		goto out;
	if (dkim_sign_keys(keys, use, msg, len, time(NULL), &headers, &error) != 0) {
		rc = complain_error(ctl, error);
		goto out;
	}
	if (fwrite(headers, 1, strlen(headers), stdout) != strlen(headers) ||
	    fwrite(msg, 1, len, stdout) != len || fflush(stdout) != 0) {
		complain(ctl, "write: %s", strerror(errno));
		goto out;
	}
	rc = EXIT_OK;
out:
	free(headers);
	free(msg);
	dkim_keys_free(&keys, n);
	return rc;
}

/*
 * A TXT record as given to --txt: its text, or zone-file quoted strings
 * ("v=DKIM1; k=rsa; " "p=...") joined. Malloc'd; NULL if malformed.
 */
static char *
dkim_txt_text(const char *s, size_t *len_r)
{
	char *out = malloc(strlen(s) + 1);
	size_t o = 0;

	if (out == NULL)
		return NULL;
	while (*s == ' ' || *s == '\t')
		s++;
	if (*s != '"' && *s != '(') {
		strcpy(out, s);
		*len_r = strlen(out);
		return out;
	}
	for (; *s != '\0'; s++) {
		if (*s == ' ' || *s == '\t' || *s == '(' || *s == ')')
			continue;
		if (*s != '"')
			goto bad;
		for (s++; *s != '"'; s++) {
			if (*s == '\0')
				goto bad;
			if (*s == '\\' && s[1] >= '0' && s[1] <= '9' && s[2] >= '0' &&
			    s[2] <= '9' && s[3] >= '0' && s[3] <= '9') {
				int v = (s[1] - '0') * 100 + (s[2] - '0') * 10 + (s[3] - '0');

				if (v > 255)
					goto bad;
				out[o++] = (char)v;
				s += 3;
			} else if (*s == '\\' && s[1] != '\0') {
				out[o++] = *++s;
			} else {
				out[o++] = *s;
			}
		}
	}
	out[o] = '\0';
	*len_r = o;
	return out;
bad:
	free(out);
	return NULL;
}

/* Same DNS name, any case, a final dot or not. */
static bool
dkim_name_eq(const char *a, size_t alen, const char *b)
{
	size_t blen = strlen(b);

	if (alen > 0 && a[alen - 1] == '.')
		alen--;
	if (blen > 0 && b[blen - 1] == '.')
		blen--;
	return alen == blen && strncasecmp(a, b, alen) == 0;
}

int
cmd_dkim_verify(struct ctl *ctl, const struct args *a)
{
	struct dkim_verify *v = NULL;
	char *msg, *results;
	size_t len;
	int rc;

	for (int k = 0; k < a->ntxt; k++)
		if (strchr(a->txt[k], '=') == NULL)
			return complain(ctl, "--txt: NAME=RECORD");
	if ((msg = dkim_read_message(ctl, &len)) == NULL)
		return EXIT_FAIL;
	rc = dkim_verify_begin(msg, len, time(NULL), &v);
	free(msg);
	if (rc != 0)
		return complain(ctl, "out of memory");
	for (size_t i = 0; i < dkim_verify_count(v); i++) {
		const char *name = dkim_verify_query(v, i);
		enum dkim_dns dns = DKIM_DNS_NONE;
		char *txt = NULL;
		size_t txt_len = 0;

		if (name == NULL)
			continue;
		for (int k = 0; k < a->ntxt && txt == NULL; k++) {
			const char *eq = strchr(a->txt[k], '=');

			if (!dkim_name_eq(a->txt[k], (size_t)(eq - a->txt[k]), name))
				continue;
			if ((txt = dkim_txt_text(eq + 1, &txt_len)) == NULL) {
				dkim_verify_free(&v);
				return complain(ctl, "--txt %.*s: a malformed record",
				    (int)(eq - a->txt[k]), a->txt[k]);
			}
			dns = DKIM_DNS_FOUND;
		}
		dkim_verify_answer(v, i, dns, txt, txt_len);
		free(txt);
	}
	if ((results = dkim_auth_results(v, "\n")) == NULL) {
		dkim_verify_free(&v);
		return complain(ctl, "out of memory");
	}
	printf("%s\n", results);
	free(results);
	rc = dkim_verify_pass(v) ? EXIT_OK : EXIT_FAIL;
	dkim_verify_free(&v);
	if (fflush(stdout) != 0)
		return complain(ctl, "write: %s", strerror(errno));
	return rc;
}
