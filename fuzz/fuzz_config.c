/*
 * fuzz_config.c: libFuzzer target for the YAML config loader and its audit
 * (core/config.h). Any input must load or fail with a message, never crash
 * or leak; a loaded config must audit without trouble.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Touch what the audit hands out, so ASan sees a bad pointer. */
static void
audit_cb(void *ctx, enum config_audit_severity sev, const char *key,
    const char *message)
{
	size_t *total = ctx;

	if (sev != CONFIG_AUDIT_WARNING && sev != CONFIG_AUDIT_ERROR)
		abort();
	*total += strlen(key) + strlen(message);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct config *cfg = NULL;
	char *error = NULL;
	size_t total = 0;

	if (config_load_string("fuzz.yaml", (const char *)data, size, &cfg,
	    &error) < 0) {
		if (cfg != NULL || error == NULL || strncmp(error, "fuzz.yaml", 9) != 0)
			abort();
		free(error);
		return 0;
	}
	if (cfg == NULL || error != NULL)
		abort();
	if (config_audit(cfg, audit_cb, &total) < 0)
		abort();
	for (size_t i = 0; i < cfg->ndomains; i++)
		(void)config_is_local_domain(cfg, cfg->domains[i]);
	config_free(&cfg);
	return 0;
}
