/*
 * dkim_tag.c: tag=value lists (RFC 6376 3.2), the syntax of DKIM-Signature
 * fields and of key records. Trusts nothing: names are ALPHA *(ALNUM / "_"),
 * values VALCHARs (%x21-3A / %x3C-7E) with folding white space between them,
 * a tag appears once, the count is bounded. Unknown tags are kept; the
 * callers ignore them.
 */
#include "dkim/dkim_private.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

static bool
is_fws(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static bool
is_alpha(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

/*
 * Folding white space: SP/HTAB, and CRLF only when SP/HTAB follows. A bare
 * CR or LF, or a CRLF that ends the text, is not white space but an error.
 */
static size_t
skip_fws(const char *s, size_t i, size_t end)
{
	while (i < end) {
		if (s[i] == ' ' || s[i] == '\t')
			i++;
		else if (s[i] == '\r' && i + 2 < end && s[i + 1] == '\n' &&
		    (s[i + 2] == ' ' || s[i + 2] == '\t'))
			i += 3;
		else
			break;
	}
	return i;
}

int
dkim_tag_parse(const char *s, size_t len, struct dkim_tags *tags, const char **error_r)
{
	size_t i = 0;

	tags->n = 0;
	while (i < len) {
		struct dkim_tag *t;
		size_t name_start, name_len, eq, vstart, vend, last;

		i = skip_fws(s, i, len);
		if (i == len) {
			/* Only an empty list, or white space after a final ';'. */
			break;
		}
		name_start = i;
		if (!is_alpha(s[i])) {
			*error_r = s[i] == ';' ? "empty tag" : "bad tag name";
			return -1;
		}
		while (i < len && (is_alpha(s[i]) || (s[i] >= '0' && s[i] <= '9') || s[i] == '_'))
			i++;
		name_len = i - name_start;
		if (name_len > DKIM_MAX_TAG_NAME) {
			*error_r = "tag name too long";
			return -1;
		}
		i = skip_fws(s, i, len);
		if (i == len || s[i] != '=') {
			*error_r = "tag without '='";
			return -1;
		}
		eq = ++i;
		i = skip_fws(s, i, len);
		if (tags->n == DKIM_MAX_TAGS) {
			*error_r = "too many tags";
			return -1;
		}
		t = &tags->t[tags->n];
		memcpy(t->name, s + name_start, name_len);
		t->name[name_len] = '\0';
		for (size_t k = 0; k < tags->n; k++) {
			if (strcmp(tags->t[k].name, t->name) == 0) {
				*error_r = "duplicate tag";
				return -1;
			}
		}
		/* The value: VALCHARs and the folding white space between them. */
		t->start = eq;
		vstart = last = i;
		while (i < len && s[i] != ';') {
			unsigned char c = (unsigned char)s[i];

			if (is_fws((char)c)) {
				size_t j = skip_fws(s, i, len);

				if (j == i) {
					*error_r = "bare CR or LF in a tag value";
					return -1;
				}
				i = j;
				continue;
			}
			if (c < 0x21 || c > 0x7e) {
				*error_r = "bad character in a tag value";
				return -1;
			}
			i++;
			last = i;
		}
		vend = last;
		t->value = s + vstart;
		t->value_len = vend - vstart;
		t->end = vend;
		tags->n++;
		if (i < len)
			i++;          /* the ';' */
	}
	return 0;
}

const struct dkim_tag *
dkim_tag_get(const struct dkim_tags *tags, const char *name)
{
	for (size_t i = 0; i < tags->n; i++)
		if (strcmp(tags->t[i].name, name) == 0)
			return &tags->t[i];
	return NULL;
}

char *
dkim_tag_compact(const struct dkim_tag *t)
{
	char *out = malloc(t->value_len + 1);
	size_t o = 0;

	if (out == NULL)
		return NULL;
	for (size_t i = 0; i < t->value_len; i++)
		if (!is_fws(t->value[i]))
			out[o++] = t->value[i];
	out[o] = '\0';
	return out;
}

bool
dkim_tag_list_has(const char *value, size_t len, const char *word, bool nocase)
{
	size_t wlen = strlen(word), i = 0;

	while (i <= len) {
		size_t start, end;

		while (i < len && is_fws(value[i]))
			i++;
		start = i;
		while (i < len && value[i] != ':')
			i++;
		end = i;
		while (end > start && is_fws(value[end - 1]))
			end--;
		if (end - start == wlen && (nocase ? strncasecmp(value + start, word, wlen) :
		    strncmp(value + start, word, wlen)) == 0)
			return true;
		i++;
	}
	return false;
}
