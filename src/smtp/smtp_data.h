/*
 * smtp_data.h: the message-content parser for DATA (RFC 5321 4.1.1.4,
 * 4.5.2 dot-stuffing) and BDAT (RFC 3030) bodies. Pure and incremental:
 * feed it bytes in any split, it emits the stored message (CRLF line ends
 * only) through a callback and says when DATA ended.
 *
 * SECURITY: end of DATA is CRLF "." CRLF and nothing else. Any other line
 * holding a lone "." (after a bare LF, or ended by a bare LF/CR) is an
 * end-of-data look-alike (the SMTP smuggling class, CVE-2023-51764): the
 * message is refused, and parsing goes on to the real end so those bytes are
 * never read as commands. A bare CR is always refused; a bare LF is
 * normalised to CRLF or refused, per smtp.bare_lf.
 */
#ifndef BULWARK_SMTP_DATA_H
#define BULWARK_SMTP_DATA_H

#include <stdbool.h>
#include <stddef.h>

enum smtp_data_flag {
	SMTP_DATA_BARE_LF = 1 << 0,         /* seen; an error only in reject mode */
	SMTP_DATA_BARE_CR = 1 << 1,
	SMTP_DATA_LOOKALIKE = 1 << 2,
	SMTP_DATA_LINE_TOO_LONG = 1 << 3,
	SMTP_DATA_TOO_BIG = 1 << 4,
};

typedef void smtp_data_emit_fn(void *ctx, const char *data, size_t len);

struct smtp_data_parser {
	int state;
	bool bdat;               /* no dot handling and no end marker */
	bool reject_bare_lf;
	size_t max_line;         /* octets including CRLF, 0 = no limit */
	size_t max_size;         /* octets of output, 0 = no limit */
	size_t line_len;
	size_t size;             /* octets emitted (or that would have been) */
	unsigned flags;          /* SMTP_DATA_* */
	smtp_data_emit_fn *emit;
	void *ctx;
};

void smtp_data_init(struct smtp_data_parser *p, bool bdat, bool reject_bare_lf,
    size_t max_line, size_t max_size, smtp_data_emit_fn *emit, void *ctx);
/*
 * Feed len bytes. Returns 1 when DATA's end marker was consumed (*consumed_r
 * says how many bytes that took; the rest belongs to the next command),
 * 0 when all bytes were consumed and more are needed. BDAT never returns 1.
 */
int smtp_data_feed(struct smtp_data_parser *p, const char *data, size_t len,
    size_t *consumed_r);
/* BDAT LAST: settle a trailing CR and end the message with CRLF. */
void smtp_data_finish_bdat(struct smtp_data_parser *p);
/*
 * The reply for a refused message, or NULL when it may be accepted.
 * ("552 5.3.4 ...", "500 5.5.2 ...", "550 5.6.0 ...")
 */
const char *smtp_data_error(const struct smtp_data_parser *p);

#endif
