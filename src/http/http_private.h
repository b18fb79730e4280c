/*
 * http_private.h: pieces of the web side shared by its files and its unit
 * tests, not by other modules: HTML escaping and pages (http_page.c), and the
 * parser of small application/x-www-form-urlencoded bodies (http_form.c).
 */
#ifndef BULWARK_HTTP_PRIVATE_H
#define BULWARK_HTTP_PRIVATE_H

#include <stdbool.h>
#include <stddef.h>

#define HTTP_BODY_MAX 4096   /* bytes of a request body; more is 413 */

/*
 * Copy src into dst with & < > " ' as character references (safe in text
 * and in quoted attributes). Returns the length written; -1 (dst holds "")
 * if dst is too small. Worst case needs 6 * strlen(src) + 1 bytes.
 */
int http_page_escape(char *dst, size_t dstlen, const char *src);
/*
 * A whole HTML page (UTF-8, no script, inline style only) around title and
 * body, both already HTML: escape every value first. malloc'd, NULL on
 * out of memory.
 */
char *http_page_build(const char *title_html, const char *body_html, size_t *len_r);

/*
 * Find key in an application/x-www-form-urlencoded body (not NUL-terminated)
 * and percent-decode its value into value_r. 1 found, 0 absent, -1 with
 * *error_r when the body is malformed, the key repeats, the value does not
 * fit or decodes to a NUL byte.
 */
int http_form_value(const char *body, size_t len, const char *key,
    char *value_r, size_t valuelen, const char **error_r);

#endif
