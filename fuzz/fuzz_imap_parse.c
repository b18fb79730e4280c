/*
 * fuzz_imap_parse.c: libFuzzer target for src/imap/imap_parse.c. The input
 * is what an IMAP client could send. Byte 0 picks small or default limits,
 * bytes 1..4 seed the chunk sizes; the rest is fed to the command parser in
 * those chunks, and every command's arguments go through the argument
 * parsers (sequence sets, FETCH attributes, SEARCH keys, flags, dates).
 * Beyond the sanitizers it checks that a chunked run gives the same events
 * as a whole one (trickle) and that results are well formed.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "imap/imap_parse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond) do { \
	if (!(cond)) { \
		fprintf(stderr, "%s:%d: invariant failed: %s\n", __FILE__, __LINE__, #cond); \
		abort(); \
	} \
} while (0)

static uint32_t
xorshift32(uint32_t *state)
{
	uint32_t x = *state;

	x ^= x << 13;
	x ^= x >> 17;
	x ^= x << 5;
	*state = x;
	return x;
}

static void
digest_add(uint64_t *h, const void *p, size_t len)
{
	const unsigned char *s = p;

	for (size_t i = 0; i < len; i++) {
		*h ^= s[i];
		*h *= 1099511628211ULL;
	}
}

static void
digest_arg(uint64_t *h, const struct imap_arg *a, int depth)
{
	CHECK(depth <= IMAP_PARSE_DEPTH_MAX + 1);
	digest_add(h, &a->type, sizeof(a->type));
	if (a->type == IMAP_ARG_LIST) {
		digest_add(h, &a->n, sizeof(a->n));
		for (size_t i = 0; i < a->n; i++)
			digest_arg(h, &a->list[i], depth + 1);
		return;
	}
	CHECK(a->str != NULL && a->str[a->len] == '\0');
	if (a->type != IMAP_ARG_LITERAL)
		CHECK(strlen(a->str) == a->len);
	digest_add(h, a->str, a->len);
}

static void
check_args(struct imap_arg *args, size_t n)
{
	const char *err;

	for (size_t i = 0; i < n; i++) {
		struct imap_seqset set;
		uint32_t flags;
		char **kw;

		if (args[i].type == IMAP_ARG_ATOM && imap_seqset_parse(args[i].str, &set, &err) == 0) {
			imap_seqset_normalize(&set, 100);
			for (size_t k = 1; k < set.n; k++)
				CHECK(set.v[k].lo > set.v[k - 1].hi);
			(void)imap_seqset_has(&set, 50);
			imap_seqset_free(&set);
		}
		if (imap_flags_parse(&args[i], &flags, &kw, &err) == 0)
			imap_keywords_free(&kw);
		if (imap_arg_is_string(&args[i])) {
			(void)imap_datetime_parse(args[i].str);
			(void)imap_date_parse(args[i].str);
		}
	}
	for (size_t i = 0; i < n; i++) {
		struct imap_fetch_spec spec;
		struct imap_search_node root;
		const char *bad;

		if (imap_fetch_spec_parse(&args[i], 1, &spec, &err) == 0) {
			for (size_t k = 0; k < spec.nsecs; k++)
				CHECK(strncmp(spec.secs[k].label, "BODY[", 5) == 0);
			imap_fetch_spec_free(&spec);
		}
		if (imap_search_parse(&args[i], n - i, &root, &bad, &err) == 0)
			imap_search_node_free(&root);
	}
}

static uint64_t
run(const char *stream, size_t len, const struct imap_parser_limits *lim, uint32_t seed,
    bool deep, size_t *events_r)
{
	struct imap_parser p;
	uint64_t h = 14695981039346656037ULL;
	size_t off = 0;

	*events_r = 0;
	imap_parser_init(&p, lim);
	while (off < len) {
		size_t chunk = len - off, consumed;
		const char *err;
		bool cont;
		int r;

		if (seed != 0) {
			uint32_t x = xorshift32(&seed);

			chunk = (x & 7) == 0 ? 1 + (x >> 3) % 2048 : 1 + (x >> 3) % 8;
			if (chunk > len - off)
				chunk = len - off;
		}
		r = imap_parser_feed(&p, stream + off, chunk, &consumed, &cont, &err);
		CHECK(consumed <= chunk);
		off += consumed;
		if (r == 0 && !cont) {
			CHECK(consumed == chunk);
			continue;
		}
		(*events_r)++;
		digest_add(&h, &r, sizeof(r));
		digest_add(&h, &cont, sizeof(cont));
		if (r == 1) {
			CHECK(p.tag[0] != '\0' && p.name[0] != '\0');
			digest_add(&h, p.tag, strlen(p.tag));
			digest_add(&h, p.name, strlen(p.name));
			digest_arg(&h, &p.root, 0);
			if (deep)
				check_args(p.root.list, p.root.n);
		} else if (r == -1) {
			CHECK(err != NULL && p.error != IMAP_PARSE_OK);
			digest_add(&h, &p.error, sizeof(p.error));
			digest_add(&h, p.tag, strlen(p.tag));
			if (p.fatal)
				break;
		}
	}
	imap_parser_clear(&p);
	return h;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct imap_parser_limits lim;
	size_t n1, n2;
	uint32_t seed;
	uint64_t h1, h2;
	char *stream;

	if (size < 5)
		return 0;
	if (data[0] & 0x80)
		lim = (struct imap_parser_limits){ 65536, 1 << 20, 1 << 22 };
	else
		lim = (struct imap_parser_limits){ 8 + (size_t)(data[0] & 0x7f) * 4, 64, 256 };
	seed = (uint32_t)data[1] | (uint32_t)data[2] << 8 | (uint32_t)data[3] << 16 |
	    (uint32_t)data[4] << 24;
	if (seed == 0)
		seed = 1;
	stream = malloc(size - 5 + 1);
	if (stream == NULL)
		return 0;
	memcpy(stream, data + 5, size - 5);
	h1 = run(stream, size - 5, &lim, seed, true, &n1);
	h2 = run(stream, size - 5, &lim, 0, false, &n2);
	CHECK(n1 == n2 && h1 == h2);
	free(stream);
	return 0;
}
