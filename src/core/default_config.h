/* default_config.h: etc/bulwark.yaml, compiled in (see CMakeLists.txt). */
#ifndef BULWARK_DEFAULT_CONFIG_H
#define BULWARK_DEFAULT_CONFIG_H
#include <stddef.h>
extern const char *const bulwark_default_config_yaml;
extern const size_t bulwark_default_config_len;
#endif
