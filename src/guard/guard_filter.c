/*
 * guard_filter.c: the ban table as a classic BPF socket filter on every
 * listening socket, so the kernel drops SYNs from banned networks before
 * accept(), as fail2ban's DROP rule would, without a firewall or privileges.
 * Trusts the ban table; the kernel checks the program when it is attached.
 * guard_filter_compile() is pure; the rest keeps the list of listeners and
 * attaches the program again whenever the bans in force change.
 *
 * Where the program runs: tcp_v4_rcv()/tcp_v6_rcv() run a listener's socket
 * filter (tcp_filter()) on each segment addressed to it, with skb->data at
 * the TCP header, before a SYN creates a request socket. Accepted sockets
 * inherit the program, so anything that is not a SYN is let through after
 * three instructions.
 */
#include "guard/guard.h"
#include "guard/guard_private.h"

#include <errno.h>
#include <linux/filter.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "core/log.h"

#define GUARD_FILTER_ACCEPT 0xffffffffu   /* keep the whole packet */
#define GUARD_FILTER_DROP 0u
/* jeq's that share one "ret drop" after them: a jump offset is 8 bits */
#define GUARD_FILTER_CHUNK 255
/* the frame: SYN test, IP version dispatch, and one accept per family */
#define GUARD_FILTER_FRAME (9 + 1 + 1)
#define GUARD_TCP_FLAGS 13            /* offset of the flags in the TCP header */
#define GUARD_TCP_SYN 0x02
#define GUARD_IP4_SRC 12              /* offsets in the IP headers */
#define GUARD_IP6_SRC 8

/* ---- the compiler ---- */

static bool
guard_filter_is_v4(const struct guard_net *net)
{
	static const uint8_t v4mapped[12] = { [10] = 0xff, [11] = 0xff };

	return net->prefix >= 96 && memcmp(net->addr, v4mapped, 12) == 0;
}

static uint32_t
guard_filter_mask(unsigned bits)
{
	return bits == 0 ? 0 : bits >= 32 ? 0xffffffffu : 0xffffffffu << (32 - bits);
}

static uint32_t
guard_filter_word(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Instructions of the IPv4 group of one prefix length holding count networks. */
static size_t
guard_filter_v4_len(unsigned prefix, size_t count)
{
	if (count == 0)
		return 0;
	return 1 + (prefix < 32) + count +
	    2 * ((count + GUARD_FILTER_CHUNK - 1) / GUARD_FILTER_CHUNK);
}

/* Instructions that test one IPv6 network. */
static size_t
guard_filter_v6_len(unsigned prefix)
{
	unsigned words = (prefix + 31) / 32;

	return words == 0 ? 1 : 2 * words + (prefix % 32 != 0) + 1;
}

static void
guard_filter_emit(struct sock_filter *prog, size_t *pc, uint16_t code, uint8_t jt, uint8_t jf,
    uint32_t k)
{
	prog[*pc] = (struct sock_filter){ .code = code, .jt = jt, .jf = jf, .k = k };
	(*pc)++;
}

/*
 * The program:
 *
 *	ldb [13]; jset #SYN, +1, +0; ret #accept     not a SYN: let it through
 *	ldb [net+0]; rsh #4                           IP version
 *	jeq #6, +0, +1; ja v6
 *	jeq #4, +1, +0; ret #accept
 *  v4:	per prefix length: ld [net+12]; and #mask (unless /32)
 *	    then chunks of up to 255: jeq #a, drop_k, +0 ...; ja +1; drop_k: ret #0
 *	ret #accept
 *  v6:	per network: (ld [net+8+4i]; and #mask if partial; jeq #w, +0, next) ...
 *	    ret #0
 *	ret #accept
 *
 * Offsets relative to the network header use SKF_NET_OFF, so IP options and
 * IPv6 extension headers do not matter; IPv4 clients of a dual-stack IPv6
 * listener arrive as IPv4 packets and take the v4 branch.
 */
size_t
guard_filter_compile(const struct guard_net *nets, size_t n, struct sock_filter *prog,
    size_t max_insns, size_t *len_r)
{
	size_t v4count[33] = { 0 }, v4len = 0, v6len = 0, covered = 0, pc = 0, ja_v6;

	*len_r = 0;
	if (max_insns > BPF_MAXINSNS)
		max_insns = BPF_MAXINSNS;
	if (max_insns < GUARD_FILTER_FRAME)
		return 0;
	/* Take networks in order while the program still fits. */
	for (; covered < n; covered++) {
		const struct guard_net *net = &nets[covered];
		size_t grow;

		if (guard_filter_is_v4(net)) {
			unsigned p = net->prefix - 96u;

			grow = guard_filter_v4_len(p, v4count[p] + 1) - guard_filter_v4_len(p, v4count[p]);
			if (GUARD_FILTER_FRAME + v4len + v6len + grow > max_insns)
				break;
			v4count[p]++;
			v4len += grow;
		} else {
			grow = guard_filter_v6_len(net->prefix);
			if (GUARD_FILTER_FRAME + v4len + v6len + grow > max_insns)
				break;
			v6len += grow;
		}
	}

	guard_filter_emit(prog, &pc, BPF_LD | BPF_B | BPF_ABS, 0, 0, GUARD_TCP_FLAGS);
	guard_filter_emit(prog, &pc, BPF_JMP | BPF_JSET | BPF_K, 1, 0, GUARD_TCP_SYN);
	guard_filter_emit(prog, &pc, BPF_RET | BPF_K, 0, 0, GUARD_FILTER_ACCEPT);
	guard_filter_emit(prog, &pc, BPF_LD | BPF_B | BPF_ABS, 0, 0, (uint32_t)SKF_NET_OFF);
	guard_filter_emit(prog, &pc, BPF_ALU | BPF_RSH | BPF_K, 0, 0, 4);
	guard_filter_emit(prog, &pc, BPF_JMP | BPF_JEQ | BPF_K, 0, 1, 6);
	ja_v6 = pc;
	guard_filter_emit(prog, &pc, BPF_JMP | BPF_JA, 0, 0, 0);   /* patched below */
	guard_filter_emit(prog, &pc, BPF_JMP | BPF_JEQ | BPF_K, 1, 0, 4);
	guard_filter_emit(prog, &pc, BPF_RET | BPF_K, 0, 0, GUARD_FILTER_ACCEPT);

	/* IPv4: one group per prefix length, longest first. */
	for (int p = 32; p >= 0; p--) {
		size_t left = v4count[p], i = 0;

		if (left == 0)
			continue;
		guard_filter_emit(prog, &pc, BPF_LD | BPF_W | BPF_ABS, 0, 0,
		    (uint32_t)(SKF_NET_OFF + GUARD_IP4_SRC));
		if (p < 32)
			guard_filter_emit(prog, &pc, BPF_ALU | BPF_AND | BPF_K, 0, 0,
			    guard_filter_mask((unsigned)p));
		while (left > 0) {
			size_t chunk = left < GUARD_FILTER_CHUNK ? left : GUARD_FILTER_CHUNK;

			for (size_t j = 0; j < chunk; i++) {
				const struct guard_net *net = &nets[i];

				if (!guard_filter_is_v4(net) || net->prefix - 96 != p)
					continue;
				/* to the "ret drop" after this chunk's ja */
				guard_filter_emit(prog, &pc, BPF_JMP | BPF_JEQ | BPF_K,
				    (uint8_t)(chunk - j), 0,
				    guard_filter_word(net->addr + 12) & guard_filter_mask((unsigned)p));
				j++;
			}
			guard_filter_emit(prog, &pc, BPF_JMP | BPF_JA, 0, 0, 1);
			guard_filter_emit(prog, &pc, BPF_RET | BPF_K, 0, 0, GUARD_FILTER_DROP);
			left -= chunk;
		}
	}
	guard_filter_emit(prog, &pc, BPF_RET | BPF_K, 0, 0, GUARD_FILTER_ACCEPT);

	/* IPv6: each network word by word; a mismatch skips to the next one. */
	prog[ja_v6].k = (uint32_t)(pc - (ja_v6 + 1));
	for (size_t i = 0; i < covered; i++) {
		const struct guard_net *net = &nets[i];
		unsigned words = (net->prefix + 31u) / 32u, rest = net->prefix % 32u;
		size_t end = pc + guard_filter_v6_len(net->prefix);

		if (guard_filter_is_v4(net))
			continue;
		for (unsigned w = 0; w < words; w++) {
			bool partial = w + 1 == words && rest != 0;
			uint32_t mask = partial ? guard_filter_mask(rest) : 0xffffffffu;

			guard_filter_emit(prog, &pc, BPF_LD | BPF_W | BPF_ABS, 0, 0,
			    (uint32_t)(SKF_NET_OFF + GUARD_IP6_SRC + 4 * (int)w));
			if (partial)
				guard_filter_emit(prog, &pc, BPF_ALU | BPF_AND | BPF_K, 0, 0, mask);
			guard_filter_emit(prog, &pc, BPF_JMP | BPF_JEQ | BPF_K, 0,
			    (uint8_t)(end - (pc + 1)), guard_filter_word(net->addr + 4 * w) & mask);
		}
		guard_filter_emit(prog, &pc, BPF_RET | BPF_K, 0, 0, GUARD_FILTER_DROP);
	}
	guard_filter_emit(prog, &pc, BPF_RET | BPF_K, 0, 0, GUARD_FILTER_ACCEPT);
	*len_r = pc;
	return covered;
}

/* ---- the listeners ---- */

struct guard_filter_fd {
	int fd;
	bool holds;     /* a program of ours is attached */
	bool current;   /* ... and it is the current one */
};

struct guard_filter {
	struct guard_filter_fd *fds;
	size_t nfds, capfds;
	bool compiled;          /* prog is built (len 0: nothing to attach) */
	uint64_t gen;           /* the ban generation prog was built from */
	size_t len, networks, bans;
	bool warned_attach, warned_full;
	struct sock_filter prog[BPF_MAXINSNS];
};

void
guard_filter_state_free(struct guard_filter **fp)
{
	if (*fp == NULL)
		return;
	free((*fp)->fds);
	free(*fp);
	*fp = NULL;
}

/* Put the current program on one socket (or take ours off). 0 ok, -1 errno set. */
static int
guard_filter_put(struct guard_filter *f, struct guard_filter_fd *s)
{
	struct sock_fprog fp = { .len = (unsigned short)f->len, .filter = f->prog };
	int unused = 0;   /* the kernel wants an int-sized option even here */

	s->current = false;
	if (f->len == 0) {
		if (s->holds && setsockopt(s->fd, SOL_SOCKET, SO_DETACH_FILTER, &unused,
		    sizeof(unused)) == -1 &&
		    errno != ENOENT)
			return -1;
		s->holds = false;
	} else {
		if (setsockopt(s->fd, SOL_SOCKET, SO_ATTACH_FILTER, &fp, sizeof(fp)) == -1)
			return -1;
		s->holds = true;
	}
	s->current = true;
	return 0;
}

static void
guard_filter_warn_attach(struct guard_filter *f, int fd, int error)
{
	if (f->warned_attach)
		return;
	f->warned_attach = true;
	errno = error;
	log_warn("event=guard.filter_failed fd=%d networks=%zu instructions=%zu (logged once;"
	    " bans are refused at accept instead)", fd, f->networks, f->len);
}

/* Attach the current program everywhere; the kernel short of option memory gets half. */
static void
guard_filter_put_all(struct guard_filter *f, const struct guard_net *nets)
{
	for (size_t i = 0; i < f->nfds; i++) {
		if (guard_filter_put(f, &f->fds[i]) == 0)
			continue;
		if (errno == ENOMEM && f->networks > 1) {
			/* net.core.optmem_max too small for this program: halve it, start over */
			f->networks = guard_filter_compile(nets, f->networks / 2, f->prog,
			    BPF_MAXINSNS, &f->len);
			i = (size_t)-1;
			continue;
		}
		guard_filter_warn_attach(f, f->fds[i].fd, errno);
	}
}

int
guard_filter_attach(struct guard *guard, int fd)
{
	struct guard_filter *f;
	struct guard_filter_fd *s;

	if (guard == NULL)
		return 0;
	f = guard->filter;
	if (f == NULL && (f = guard->filter = calloc(1, sizeof(*f))) == NULL) {
		log_warn("event=guard.filter_failed fd=%d", fd);
		return -1;
	}
	if (f->nfds == f->capfds) {
		size_t cap = f->capfds == 0 ? 8 : f->capfds * 2;
		struct guard_filter_fd *fds = realloc(f->fds, cap * sizeof(*fds));

		if (fds == NULL) {
			log_warn("event=guard.filter_failed fd=%d", fd);
			return -1;
		}
		f->fds = fds;
		f->capfds = cap;
	}
	s = &f->fds[f->nfds++];
	*s = (struct guard_filter_fd){ .fd = fd };
	/* Before the first sync there is nothing to attach: the sync will. */
	if (f->compiled && guard_filter_put(f, s) == -1) {
		guard_filter_warn_attach(f, fd, errno);
		return -1;
	}
	return 0;
}

void
guard_filter_detach(struct guard *guard, int fd)
{
	struct guard_filter *f = guard != NULL ? guard->filter : NULL;

	if (f == NULL)
		return;
	for (size_t i = 0; i < f->nfds; i++) {
		if (f->fds[i].fd != fd)
			continue;
		f->fds[i] = f->fds[--f->nfds];
		return;
	}
}

void
guard_filter_sync(struct guard *guard, time_t now)
{
	struct guard_filter *f = guard->filter;
	struct guard_net *nets = NULL;
	uint64_t gen = guard_ban_generation(guard);
	ssize_t n;

	if (f == NULL || (f->compiled && f->gen == gen))
		return;
	if (!guard_ban_filter_wanted(guard)) {
		f->len = f->networks = f->bans = 0;
	} else {
		if ((n = guard_ban_active_nets(guard, now, &nets)) == -1) {
			log_warnx("event=guard.filter_failed error=\"out of memory\" (retried at the"
			    " next tick; bans are refused at accept meanwhile)");
			return;
		}
		f->bans = (size_t)n;
		f->networks = guard_filter_compile(nets, f->bans, f->prog, BPF_MAXINSNS, &f->len);
		if (f->bans == 0)
			f->len = 0;   /* nothing banned: no program at all */
	}
	f->compiled = true;
	f->gen = gen;
	guard_filter_put_all(f, nets);
	free(nets);
	if (f->networks < f->bans && !f->warned_full) {
		f->warned_full = true;
		log_warnx("event=guard.filter_full networks=%zu bans=%zu instructions=%zu (logged"
		    " once; the older bans are refused at accept)", f->networks, f->bans, f->len);
	}
	log_debug("event=guard.filter networks=%zu bans=%zu instructions=%zu listeners=%zu",
	    f->networks, f->bans, f->len, f->nfds);
}

void
guard_filter_stats(const struct guard *guard, struct guard_filter_stats *st_r)
{
	const struct guard_filter *f = guard->filter;

	memset(st_r, 0, sizeof(*st_r));
	if (f == NULL)
		return;
	st_r->listeners = f->nfds;
	st_r->instructions = f->len;
	st_r->bans = f->bans;
	for (size_t i = 0; i < f->nfds; i++)
		if (f->fds[i].current && f->fds[i].holds)
			st_r->attached++;
	st_r->networks = st_r->attached > 0 ? f->networks : 0;
}
