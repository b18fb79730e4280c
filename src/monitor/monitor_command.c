/*
 * monitor_command.c: run queue_monitor.alert_command for one alert, off the
 * loop's back: fork + execv (no shell: the command line is split on spaces
 * once, from the config, and alert data only ever reaches the child on its
 * stdin), the JSON summary written to a pipe, stdout and stderr read back
 * without blocking and logged, the exit status polled, and the child killed
 * (its whole process group) after alert_command_timeout seconds.
 * Trusts the config's command; trusts nothing the command prints.
 */
#include "monitor/monitor_command.h"

#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "core/log.h"
#include "monitor/metrics.h"

#define COMMAND_ARGS_MAX 32
#define COMMAND_OUTPUT_MAX 2048   /* bytes of output kept for the log */
#define COMMAND_INPUT_MAX 60000   /* fits a pipe's buffer: the write never blocks */
#define COMMAND_RUNNING_MAX 4     /* more alerts at once: the command is skipped, logged */

struct monitor_command {
	struct monitor_command *next;
	struct monitor_commands *set;
	pid_t pid;
	int out_fd;
	struct event *out_ev, *poll_ev;
	char output[COMMAND_OUTPUT_MAX];
	size_t outlen;
	bool eof;
	time_t deadline;
	bool killed;
	char alert[64];      /* what it was for, for the log */
};

struct monitor_commands {
	struct event_base *base;
	struct monitor_command *running;
	size_t nrunning;
};

struct monitor_commands *
monitor_commands_new(struct event_base *base)
{
	struct monitor_commands *set = calloc(1, sizeof(*set));

	if (set != NULL)
		set->base = base;
	return set;
}

static void
command_unlist(struct monitor_command *c)
{
	struct monitor_command **pp = &c->set->running;

	while (*pp != NULL && *pp != c)
		pp = &(*pp)->next;
	if (*pp == c) {
		*pp = c->next;
		c->set->nrunning--;
	}
}

static void
command_free(struct monitor_command *c)
{
	if (c->out_ev != NULL)
		event_free(c->out_ev);
	if (c->poll_ev != NULL)
		event_free(c->poll_ev);
	if (c->out_fd >= 0)
		close(c->out_fd);
	free(c);
}

/* The output as one log-safe value (newlines become \n by log_escape). */
static void
command_log_end(struct monitor_command *c, int status)
{
	char esc[COMMAND_OUTPUT_MAX * 4 + 1];
	const char *result;

	log_escape(esc, sizeof(esc), c->output, c->outlen);
	if (c->killed) {
		result = "timeout";
		log_warnx("event=monitor.command alert=%s pid=%d result=timeout output=\"%s\"",
		    c->alert, (int)c->pid, esc);
	} else if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
		result = "ok";
		log_info("event=monitor.command alert=%s pid=%d result=ok exit=0 output=\"%s\"",
		    c->alert, (int)c->pid, esc);
	} else {
		result = "failed";
		if (WIFEXITED(status))
			log_warnx("event=monitor.command alert=%s pid=%d result=failed exit=%d output=\"%s\"",
			    c->alert, (int)c->pid, WEXITSTATUS(status), esc);
		else
			log_warnx("event=monitor.command alert=%s pid=%d result=failed signal=%d output=\"%s\"",
			    c->alert, (int)c->pid, WIFSIGNALED(status) ? WTERMSIG(status) : 0, esc);
	}
	metrics_add("bulwark_alert_commands_total",
	    strcmp(result, "ok") == 0 ? "result=\"ok\"" :
	    strcmp(result, "timeout") == 0 ? "result=\"timeout\"" : "result=\"failed\"", 1);
}

/* Every 50 ms: has the child ended? Past the deadline, kill its group. */
static void
command_poll_cb(evutil_socket_t fd, short what, void *arg)
{
	struct monitor_command *c = arg;
	struct timeval tv = { .tv_usec = 50000 };
	int status = 0;
	pid_t r = waitpid(c->pid, &status, WNOHANG);

	(void)fd;
	(void)what;
	if (r == c->pid || (r == -1 && errno == ECHILD)) {
		command_log_end(c, status);
		command_unlist(c);
		command_free(c);
		return;
	}
	if (!c->killed && time(NULL) >= c->deadline) {
		c->killed = true;
		(void)kill(-c->pid, SIGKILL);
		(void)kill(c->pid, SIGKILL);
	}
	evtimer_add(c->poll_ev, &tv);
}

static void
command_read_cb(evutil_socket_t fd, short what, void *arg)
{
	struct monitor_command *c = arg;
	char buf[1024];
	ssize_t n;

	(void)what;
	for (;;) {
		n = read(fd, buf, sizeof(buf));
		if (n > 0) {
			size_t take = (size_t)n;

			if (take > sizeof(c->output) - c->outlen)
				take = sizeof(c->output) - c->outlen;
			memcpy(c->output + c->outlen, buf, take);
			c->outlen += take;
			continue;
		}
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		break;   /* EOF or error: stop reading */
	}
	event_del(c->out_ev);
	close(c->out_fd);
	c->out_fd = -1;
}

/* Split the configured command line on spaces into argv (no quoting, no shell). */
static int
command_split(char *line, char *argv[COMMAND_ARGS_MAX + 1])
{
	int n = 0;

	for (char *save = NULL, *w = strtok_r(line, " ", &save); w != NULL;
	    w = strtok_r(NULL, " ", &save)) {
		if (n == COMMAND_ARGS_MAX)
			return -1;
		argv[n++] = w;
	}
	argv[n] = NULL;
	return n > 0 ? 0 : -1;
}

int
monitor_command_run(struct monitor_commands *set, const char *command, int timeout,
    const char *alert, const char *input, size_t inlen)
{
	char *line = NULL, *argv[COMMAND_ARGS_MAX + 1];
	int in[2] = { -1, -1 }, out[2] = { -1, -1 };
	struct monitor_command *c = NULL;
	struct timeval tv = { .tv_usec = 50000 };
	pid_t pid;

	if (set->nrunning >= COMMAND_RUNNING_MAX) {
		log_warnx("event=monitor.command alert=%s result=skipped reason=\"%d commands still running\"",
		    alert, COMMAND_RUNNING_MAX);
		metrics_add("bulwark_alert_commands_total", "result=\"skipped\"", 1);
		return -1;
	}
	if (inlen > COMMAND_INPUT_MAX)
		inlen = COMMAND_INPUT_MAX;
	if ((line = strdup(command)) == NULL || command_split(line, argv) == -1 ||
	    (c = calloc(1, sizeof(*c))) == NULL)
		goto fail;
	c->out_fd = -1;
	if (pipe2(in, O_CLOEXEC) == -1 || pipe2(out, O_CLOEXEC) == -1)
		goto fail;
	/* Everything the child needs is ready: after fork it only dup2s and execs. */
	if ((pid = fork()) == -1)
		goto fail;
	if (pid == 0) {
		(void)setpgid(0, 0);
		if (dup2(in[0], 0) == -1 || dup2(out[1], 1) == -1 || dup2(out[1], 2) == -1)
			_exit(126);
		/* pipe2's O_CLOEXEC closes the pipes and every other descriptor of
		 * ours that has it; signal dispositions go back to default. */
		(void)signal(SIGPIPE, SIG_DFL);
		execv(argv[0], argv);
		_exit(127);
	}
	(void)setpgid(pid, pid);   /* also from here: no race with kill(-pid) */
	close(in[0]);
	in[0] = -1;
	close(out[1]);
	out[1] = -1;
	/* Small and fits the pipe: written at once; a child that never reads it
	 * cannot block us (non-blocking, the rest is dropped). */
	(void)fcntl(in[1], F_SETFL, O_NONBLOCK);
	if (write(in[1], input, inlen) != (ssize_t)inlen)
		log_warnx("event=monitor.command alert=%s pid=%d reason=\"stdin not fully written\"",
		    alert, (int)pid);
	close(in[1]);
	in[1] = -1;
	c->set = set;
	c->pid = pid;
	c->out_fd = out[0];
	c->deadline = time(NULL) + timeout;
	snprintf(c->alert, sizeof(c->alert), "%s", alert);
	(void)fcntl(c->out_fd, F_SETFL, O_NONBLOCK);
	c->out_ev = event_new(set->base, c->out_fd, EV_READ | EV_PERSIST, command_read_cb, c);
	c->poll_ev = evtimer_new(set->base, command_poll_cb, c);
	if (c->out_ev == NULL || c->poll_ev == NULL || event_add(c->out_ev, NULL) == -1 ||
	    evtimer_add(c->poll_ev, &tv) == -1) {
		/* Cannot watch it: let it run to its end unwatched, but reap it. */
		(void)kill(-pid, SIGKILL);
		(void)waitpid(pid, NULL, 0);
		command_free(c);
		free(line);
		return -1;
	}
	c->next = set->running;
	set->running = c;
	set->nrunning++;
	log_info("event=monitor.command alert=%s pid=%d program=%s started=yes", alert, (int)pid,
	    argv[0]);
	free(line);
	return 0;
fail:
	log_warn("event=monitor.command alert=%s result=failed reason=\"cannot start\"", alert);
	metrics_add("bulwark_alert_commands_total", "result=\"failed\"", 1);
	for (int i = 0; i < 2; i++) {
		if (in[i] >= 0)
			close(in[i]);
		if (out[i] >= 0)
			close(out[i]);
	}
	free(c);
	free(line);
	return -1;
}

void
monitor_commands_free(struct monitor_commands **setp)
{
	struct monitor_commands *set = *setp;

	if (set == NULL)
		return;
	*setp = NULL;
	while (set->running != NULL) {
		struct monitor_command *c = set->running;

		set->running = c->next;
		(void)kill(-c->pid, SIGKILL);
		(void)kill(c->pid, SIGKILL);
		(void)waitpid(c->pid, NULL, 0);
		log_warnx("event=monitor.command alert=%s pid=%d result=killed reason=shutdown",
		    c->alert, (int)c->pid);
		command_free(c);
	}
	free(set);
}
