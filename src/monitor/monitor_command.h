/*
 * monitor_command.h: the queue monitor's alert_command runner (see
 * monitor_command.c). Private to src/monitor.
 */
#ifndef BULWARK_MONITOR_COMMAND_H
#define BULWARK_MONITOR_COMMAND_H

#include <stdbool.h>
#include <stddef.h>

struct event_base;
struct monitor_commands;

struct monitor_commands *monitor_commands_new(struct event_base *base);
/* Kill (SIGKILL, the process group) and reap what still runs. */
void monitor_commands_free(struct monitor_commands **set);
/*
 * Start command (an absolute path and arguments, split on spaces) with
 * input on its stdin; its output and exit status are logged when it ends,
 * and it is killed after timeout seconds. alert names it in the log.
 * 0 started, -1 not (logged).
 */
int monitor_command_run(struct monitor_commands *set, const char *command, int timeout,
    const char *alert, const char *input, size_t inlen);

#endif
