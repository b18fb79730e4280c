/*
 * fuzz_queue_envelope.c: libFuzzer target for the spool file header parser
 * in src/queue/queue_spool.c (queue_envelope_parse) and its writer
 * (queue_envelope_format). Spool files are ours, but a disk, a crash or an
 * admin's editor can leave anything in them, and bulwarkctl reads them too.
 * The input is the start of a spool file, in an exact-size copy.
 *
 * Beyond the sanitizers it checks: what parses is well formed (a hex id, a
 * sender, at least one recipient, known flags, the body offset just past
 * "data\n"); format(parse(x)) parses back to the same envelope, with the
 * body offset at its end, and formats to the same bytes again.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "queue/queue.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond) do { \
	if (!(cond)) { \
		fprintf(stderr, "%s:%d: invariant failed: %s\n", __FILE__, __LINE__, #cond); \
		abort(); \
	} \
} while (0)

static const char *
str(const char *s)
{
	return s != NULL ? s : "";
}

static void
check_envelope(const struct queue_envelope *env)
{
	CHECK(strlen(env->id) == QUEUE_ID_LEN);
	CHECK(strspn(env->id, "0123456789abcdef") == QUEUE_ID_LEN);
	CHECK(env->sender != NULL);
	CHECK(env->nrcpts >= 1 && env->rcpts != NULL);
	CHECK((env->flags & ~(unsigned)(QUEUE_FLAG_8BITMIME | QUEUE_FLAG_SMTPUTF8)) == 0);
	for (size_t i = 0; i < env->nrcpts; i++) {
		CHECK(env->rcpts[i].address != NULL);
		CHECK(!env->rcpts[i].done);
	}
}

static void
check_same(const struct queue_envelope *a, const struct queue_envelope *b)
{
	CHECK(strcmp(a->id, b->id) == 0);
	CHECK(a->ctime == b->ctime);
	CHECK(strcmp(str(a->sender), str(b->sender)) == 0);
	CHECK(strcmp(str(a->client_ip), str(b->client_ip)) == 0);
	CHECK(strcmp(str(a->helo), str(b->helo)) == 0);
	CHECK(a->flags == b->flags);
	CHECK(a->nrcpts == b->nrcpts);
	for (size_t i = 0; i < a->nrcpts; i++) {
		CHECK(strcmp(a->rcpts[i].address, b->rcpts[i].address) == 0);
		CHECK(a->rcpts[i].local == b->rcpts[i].local);
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct queue_envelope env, env2;
	size_t body_off = (size_t)-1, body_off2 = (size_t)-1, flen, flen2;
	char *buf, *fmt, *fmt2, *withbody;
	int ret;

	buf = malloc(size > 0 ? size : 1);
	if (buf == NULL)
		return 0;
	memcpy(buf, data, size);

	memset(&env, 0xa5, sizeof(env));
	ret = queue_envelope_parse(buf, size, &env, &body_off);
	CHECK(ret == 0 || ret == -1);
	if (ret == -1) {
		/* cleared: nothing to free, nothing left dangling */
		CHECK(env.sender == NULL && env.client_ip == NULL && env.helo == NULL);
		CHECK(env.rcpts == NULL && env.nrcpts == 0);
		queue_envelope_clear(&env);
		free(buf);
		return 0;
	}
	check_envelope(&env);
	CHECK(body_off >= 5 && body_off <= size);
	CHECK(memcmp(buf + body_off - 5, "data\n", 5) == 0);
	CHECK(body_off == 5 || buf[body_off - 6] == '\n');

	/* format(parse(x)) parses back to the same envelope */
	fmt = queue_envelope_format(&env, &flen);
	CHECK(fmt != NULL);
	CHECK(flen == strlen(fmt));
	ret = queue_envelope_parse(fmt, flen, &env2, &body_off2);
	if (ret != 0) {
		fprintf(stderr, "queue_envelope_format wrote what queue_envelope_parse refuses:\n%s",
		    fmt);
		abort();
	}
	CHECK(body_off2 == flen);
	check_envelope(&env2);
	check_same(&env, &env2);

	/* ... formats to the same bytes again, and a body after it is untouched */
	fmt2 = queue_envelope_format(&env2, &flen2);
	CHECK(fmt2 != NULL && flen2 == flen && memcmp(fmt, fmt2, flen) == 0);
	queue_envelope_clear(&env2);
	withbody = malloc(flen + (size - body_off) + 1);
	CHECK(withbody != NULL);
	memcpy(withbody, fmt, flen);
	memcpy(withbody + flen, buf + body_off, size - body_off);
	ret = queue_envelope_parse(withbody, flen + (size - body_off), &env2, &body_off2);
	CHECK(ret == 0 && body_off2 == flen);
	check_same(&env, &env2);
	queue_envelope_clear(&env2);
	free(withbody);

	free(fmt);
	free(fmt2);
	queue_envelope_clear(&env);
	CHECK(env.sender == NULL && env.rcpts == NULL && env.nrcpts == 0);
	free(buf);
	return 0;
}
