/*
 * dkim_auth.c: the dkim= clauses of an Authentication-Results field
 * (RFC 8601 2.2, 2.7.1) from a finished verification. What it prints comes
 * from checked fields only: d= and s= passed the DNS name syntax, i= the
 * atext check, reasons are our own fixed text; header.b is quoted when it
 * holds a character a token cannot.
 */
#include "dkim/dkim_private.h"

#include <string.h>

#include "dkim/dkim.h"

/* A property value: as a token, or quoted if it holds tspecials (RFC 2045). */
static void
add_value(struct dkim_buf *b, const char *v)
{
	if (strpbrk(v, "()<>,;:\\\"/[]?= ") == NULL) {
		dkim_buf_adds(b, v);
		return;
	}
	dkim_buf_addc(b, '"');
	for (; *v != '\0'; v++) {
		if (*v == '"' || *v == '\\')
			dkim_buf_addc(b, '\\');
		dkim_buf_addc(b, *v);
	}
	dkim_buf_addc(b, '"');
}

char *
dkim_auth_results(const struct dkim_verify *v, const char *sep)
{
	struct dkim_buf b = { 0 };
	size_t n = dkim_verify_count(v);

	if (n == 0)
		dkim_buf_adds(&b, "dkim=none");
	for (size_t i = 0; i < n; i++) {
		struct dkim_result r;

		dkim_verify_result(v, i, &r);
		if (i > 0)
			dkim_buf_adds(&b, sep);
		dkim_buf_addf(&b, "dkim=%s", dkim_status_name(r.status));
		if (r.reason != NULL) {
			dkim_buf_adds(&b, " reason=");
			add_value(&b, r.reason);
		}
		if (r.domain != NULL)
			dkim_buf_addf(&b, " header.d=%s", r.domain);
		if (r.selector != NULL)
			dkim_buf_addf(&b, " header.s=%s", r.selector);
		if (r.identity != NULL) {
			/* local-part "@" domain is a pvalue of its own (RFC 8601 2.2). */
			dkim_buf_addf(&b, " header.i=%s", r.identity);
		}
		if (r.algorithm != NULL)
			dkim_buf_addf(&b, " header.a=%s", r.algorithm);
		if (r.b != NULL) {
			dkim_buf_adds(&b, " header.b=");
			add_value(&b, r.b);
		}
	}
	return dkim_buf_steal(&b);
}
