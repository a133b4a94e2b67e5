/*
 * version.h - the version strata-proxy reports. `version` and `stats`
 * answer MC_COMPAT_VERSION "-strata-" STRATA_VERSION: the memcached release
 * whose protocol we follow comes first, so clients that parse
 * major.minor.micro to enable features (libmemcached does) keep working.
 */
#pragma once

#ifndef STRATA_VERSION
#define STRATA_VERSION "0.0.0-dev"
#endif
#define MC_COMPAT_VERSION "1.6.18"
#define PROXY_VERSION_STRING MC_COMPAT_VERSION "-strata-" STRATA_VERSION
