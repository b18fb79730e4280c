/*
 * config_private.h: what config.c (the loader) and config_audit.c share. Not
 * a door: other modules use config.h.
 */
#ifndef BULWARK_CORE_CONFIG_PRIVATE_H
#define BULWARK_CORE_CONFIG_PRIVATE_H

/* NULL if s is a host name by RFC 1123 (and not an IP address), else why not. */
const char *config_hostname_problem(const char *s);

#endif
