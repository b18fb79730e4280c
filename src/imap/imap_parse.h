/*
 * imap_parse.h: the IMAP command parser (RFC 3501 section 9 grammar, RFC 7888
 * LITERAL+) and the parsers of command arguments (sequence sets, FETCH
 * attributes, SEARCH keys, flag lists, date-times). Pure and incremental:
 * bytes in, a command out, never a socket. Trusts nothing it is given:
 * every size is bounded before it is stored.
 */
#ifndef BULWARK_IMAP_PARSE_H
#define BULWARK_IMAP_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "imap/imap_mime.h"

#define IMAP_TAG_MAX 64
#define IMAP_NAME_MAX 32
#define IMAP_PARSE_DEPTH_MAX 16   /* nested parenthesised lists */

enum imap_arg_type {
	IMAP_ARG_ATOM = 0,   /* includes NIL, numbers, \Flags, BODY[...]<...> */
	IMAP_ARG_QUOTED,
	IMAP_ARG_LITERAL,
	IMAP_ARG_LIST,
};

struct imap_arg {
	enum imap_arg_type type;
	char *str;                 /* ATOM, QUOTED, LITERAL: NUL-terminated copy */
	size_t len;
	struct imap_arg *list;     /* LIST: its members */
	size_t n, cap;
};

/* An atom, a quoted string or a literal (RFC 3501 astring). */
bool imap_arg_is_string(const struct imap_arg *a);
/* astring text, or NULL for a list. */
const char *imap_arg_str(const struct imap_arg *a);
bool imap_arg_atom_is(const struct imap_arg *a, const char *word);  /* case-insensitive */

enum imap_parse_error {
	IMAP_PARSE_OK = 0,
	IMAP_PARSE_ERR_SYNTAX,            /* -> BAD */
	IMAP_PARSE_ERR_LINE_TOO_LONG,     /* -> BAD; the line is skipped */
	IMAP_PARSE_ERR_LITERAL_TOO_BIG,   /* -> NO [TOOBIG]; fatal after LITERAL+ */
	IMAP_PARSE_ERR_NOMEM,             /* -> NO, try again */
};

struct imap_parser_limits {
	size_t max_line;            /* octets outside literals, per command */
	size_t max_literal;         /* octets of all literals of one command */
	size_t max_append_literal;  /* the same for APPEND */
};

struct imap_parser {
	struct imap_parser_limits lim;
	int state;
	bool done;                  /* a command was returned: reset at next feed */
	char tag[IMAP_TAG_MAX + 1];
	size_t taglen;
	char name[IMAP_NAME_MAX + 1];   /* upper case */
	size_t namelen;
	struct imap_arg root;       /* LIST of the arguments */
	struct imap_arg *stack[IMAP_PARSE_DEPTH_MAX + 1];
	size_t depth;
	char *tok;                  /* token being read */
	size_t toklen, tokcap;
	size_t linelen;             /* octets outside literals so far */
	size_t literal_total;       /* octets of literals so far */
	uint64_t literal_len;       /* announced size of the literal being read */
	size_t literal_got;
	bool literal_plus;
	bool literal_too_big;
	bool bracket;               /* inside [...] of an atom */
	bool after_cr;
	/* after an error */
	enum imap_parse_error error;
	bool fatal;                 /* the stream cannot be resynchronised: close */
};

int imap_parser_init(struct imap_parser *p, const struct imap_parser_limits *lim);
void imap_parser_clear(struct imap_parser *p);
/*
 * Feed len bytes. Returns:
 *   1: a command is complete: p->tag, p->name, p->root.list[0..n) valid until
 *      the next call; *consumed_r says how much of data it used.
 *   0: need more; all of data consumed, unless *continue_r is true: a
 *      synchronizing literal was announced and accepted, send "+ " now and
 *      feed the rest (*consumed_r bytes were used).
 *  -1: a bad command: p->error, *error_r (text for the reply), p->tag the
 *      tag if one was read ("" if not), p->fatal when the connection must be
 *      closed (a LITERAL+ too big). The parser skips the rest of the line
 *      by itself; keep feeding it (*consumed_r bytes were used).
 */
int imap_parser_feed(struct imap_parser *p, const char *data, size_t len, size_t *consumed_r,
    bool *continue_r, const char **error_r);

/* ---- sequence sets (RFC 3501 9 sequence-set; RFC 5182 "$") ---- */

#define IMAP_SEQ_STAR UINT32_MAX

struct imap_seqrange {
	uint32_t lo, hi;     /* IMAP_SEQ_STAR for '*' */
};

struct imap_seqset {
	struct imap_seqrange *v;
	size_t n;
	bool saved;          /* "$": the last SEARCH result */
};

int imap_seqset_parse(const char *s, struct imap_seqset *set_r, const char **error_r);
/* Resolve '*' to star, order each range, sort and merge: then _has works. */
void imap_seqset_normalize(struct imap_seqset *set, uint32_t star);
bool imap_seqset_has(const struct imap_seqset *set, uint32_t v);
void imap_seqset_free(struct imap_seqset *set);

/* ---- FETCH attributes (RFC 3501 6.4.5) ---- */

enum {
	IMAP_FETCH_FLAGS = 1 << 0,
	IMAP_FETCH_INTERNALDATE = 1 << 1,
	IMAP_FETCH_RFC822_SIZE = 1 << 2,
	IMAP_FETCH_ENVELOPE = 1 << 3,
	IMAP_FETCH_BODY = 1 << 4,           /* non-extensible BODYSTRUCTURE */
	IMAP_FETCH_BODYSTRUCTURE = 1 << 5,
	IMAP_FETCH_UID = 1 << 6,
	IMAP_FETCH_RFC822 = 1 << 7,
	IMAP_FETCH_RFC822_HEADER = 1 << 8,
	IMAP_FETCH_RFC822_TEXT = 1 << 9,
	IMAP_FETCH_MODSEQ = 1 << 10,
};

struct imap_fetch_section {
	bool peek;
	struct imap_section sec;   /* fields point into names below */
	char **names;              /* HEADER.FIELDS names, upper case */
	char *label;               /* "BODY[1.HEADER.FIELDS (FROM TO)]" as replied */
	bool partial;
	uint32_t offset, count;
};

struct imap_fetch_spec {
	unsigned items;            /* IMAP_FETCH_* */
	struct imap_fetch_section *secs;
	size_t nsecs;
	bool sets_seen;            /* BODY[...] without PEEK, RFC822, RFC822.TEXT */
};

/* args: the FETCH arguments after the sequence set (a macro, one item or a list). */
int imap_fetch_spec_parse(const struct imap_arg *args, size_t nargs,
    struct imap_fetch_spec *spec_r, const char **error_r);
void imap_fetch_spec_free(struct imap_fetch_spec *spec);

/* ---- SEARCH keys (RFC 3501 6.4.4) ---- */

enum imap_search_key {
	IMAP_SK_AND = 0,       /* children all match (a parenthesised list, the top) */
	IMAP_SK_OR,            /* two children */
	IMAP_SK_NOT,           /* one child */
	IMAP_SK_ALL,
	IMAP_SK_FLAG,          /* flags all set: num = IMAP_FLAG_* */
	IMAP_SK_UNFLAG,        /* flags all clear */
	IMAP_SK_KEYWORD,
	IMAP_SK_UNKEYWORD,
	IMAP_SK_NEW,           /* RECENT UNSEEN */
	IMAP_SK_OLD,           /* NOT RECENT */
	IMAP_SK_BEFORE, IMAP_SK_ON, IMAP_SK_SINCE,                  /* internal date, day */
	IMAP_SK_SENTBEFORE, IMAP_SK_SENTON, IMAP_SK_SENTSINCE,      /* Date: header, day */
	IMAP_SK_LARGER, IMAP_SK_SMALLER,
	IMAP_SK_HEADER,        /* str = field, str2 = value */
	IMAP_SK_BODY, IMAP_SK_TEXT,
	IMAP_SK_SEQSET, IMAP_SK_UIDSET,
	IMAP_SK_MODSEQ,
};

struct imap_search_node {
	enum imap_search_key key;
	char *str, *str2;
	int64_t day;           /* dates: days since 1970-01-01 */
	uint64_t num;
	struct imap_seqset set;
	struct imap_search_node *kids;
	size_t nkids;
};

/*
 * Parse SEARCH arguments after an optional "CHARSET name": *charset_r is the
 * name (pointing into args) or NULL. Strings are kept as sent: the caller
 * converts them from the charset. root_r: an AND node.
 */
int imap_search_parse(const struct imap_arg *args, size_t nargs, struct imap_search_node *root_r,
    const char **charset_r, const char **error_r);
void imap_search_node_free(struct imap_search_node *n);

/* ---- flags, dates ---- */

/* "(\Seen $Label)" or a single flag; keywords_r NULL-terminated (malloc'd, free
 * with imap_keywords_free). \Recent is refused, as is an unknown \Flag. */
int imap_flags_parse(const struct imap_arg *a, uint32_t *flags_r, char ***keywords_r,
    const char **error_r);
void imap_keywords_free(char ***kw);
/* RFC 3501 date-time "17-Jul-1996 02:44:25 -0700" -> Unix time. -1 if bad. */
int64_t imap_datetime_parse(const char *s);
/* RFC 3501 date "1-Feb-1994" -> days since 1970-01-01; -1 if bad. */
int64_t imap_date_parse(const char *s);

#endif
