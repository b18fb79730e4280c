/*
 * metrics.h: the metrics registry, rendered as Prometheus text (exposition
 * format 0.0.4) on /metrics and by `bulwarkctl stats`. Counters and gauges
 * are named once here; labels are short fixed tokens chosen by the code,
 * never client text. Thread-safe (the HTTP server renders from its thread).
 */
#ifndef BULWARK_METRICS_H
#define BULWARK_METRICS_H

#include <stddef.h>
#include <stdio.h>

/*
 * Add delta to the counter name{labels} ("protocol=\"smtp\",reason=\"x\"" or
 * NULL). name must be one of the documented metrics (a static string).
 * Labels are preformatted: name="value" pairs joined by ',' in a fixed order,
 * values with '\\', '"' and newline escaped as the exposition format wants;
 * anything else (or a bad name, a counter going down) is refused, logged once.
 */
void metrics_add(const char *name, const char *labels, double delta);
#define metrics_inc(name, labels) metrics_add((name), (labels), 1)
/* Set the gauge name{labels}. */
void metrics_set(const char *name, const char *labels, double value);
/* A gauge computed when rendering (runs on the rendering thread). */
typedef double metrics_gauge_fn(void *ctx);
void metrics_register_gauge(const char *name, const char *help, metrics_gauge_fn *fn, void *ctx);
/* Describe a metric (HELP and TYPE lines); counters end in _total. */
void metrics_describe(const char *name, const char *type, const char *help);
/* The whole registry as Prometheus text; malloc'd, NUL-terminated. */
char *metrics_render(size_t *len_r);
/* Value of name{labels}, 0 if never set (for tests and bulwarkctl). */
double metrics_get(const char *name, const char *labels);
/* Forget everything: series, descriptions, callbacks (tests). */
void metrics_reset(void);
/*
 * Describe every metric of docs/metrics.md (the security list) and
 * show the unlabelled ones as 0 until they move. Call once at start.
 */
void metrics_describe_defaults(void);

#endif
