/*
 * http_page.c: the HTML of the confirmation pages. Every value put in a page
 * is escaped here first; pages carry no script and no external resource, so
 * the server's Content-Security-Policy (default-src 'none') can stay strict.
 */
#include "http/http_private.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int
http_page_escape(char *dst, size_t dstlen, const char *src)
{
	size_t n = 0;

	if (dstlen == 0)
		return -1;
	for (; *src != '\0'; src++) {
		const char *rep;
		char one[2] = { *src, '\0' };
		size_t rlen;

		switch (*src) {
		case '&': rep = "&amp;"; break;
		case '<': rep = "&lt;"; break;
		case '>': rep = "&gt;"; break;
		case '"': rep = "&quot;"; break;
		case '\'': rep = "&#39;"; break;
		default: rep = one; break;
		}
		rlen = strlen(rep);
		if (n + rlen >= dstlen) {
			dst[0] = '\0';
			return -1;
		}
		memcpy(dst + n, rep, rlen);
		n += rlen;
	}
	dst[n] = '\0';
	return (int)n;
}

static const char page_head[] =
    "<!DOCTYPE html>\n"
    "<html lang=\"en\">\n"
    "<head>\n"
    "<meta charset=\"utf-8\">\n"
    "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
    "<meta name=\"referrer\" content=\"no-referrer\">\n"
    "<title>%s</title>\n"
    "<style>body{font-family:sans-serif;max-width:36em;margin:4em auto;padding:0 1em;"
    "line-height:1.5}button{font-size:1.1em;padding:.4em 1.2em}</style>\n"
    "</head>\n"
    "<body>\n"
    "<h1>%s</h1>\n"
    "%s\n"
    "</body>\n"
    "</html>\n";

char *
http_page_build(const char *title_html, const char *body_html, size_t *len_r)
{
	int n = snprintf(NULL, 0, page_head, title_html, title_html, body_html);
	char *page;

	if (n < 0 || (page = malloc((size_t)n + 1)) == NULL)
		return NULL;
	snprintf(page, (size_t)n + 1, page_head, title_html, title_html, body_html);
	if (len_r != NULL)
		*len_r = (size_t)n;
	return page;
}
