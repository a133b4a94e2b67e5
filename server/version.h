/*
 * version.h - strata's own version (stats strata_version, --version, the
 * start-up log). Wherever memcached reports its version a node answers
 * MC_COMPAT_VERSION, as strata-proxy does.
 */
#pragma once

#ifndef STRATA_VERSION
#define STRATA_VERSION "0.0.0-dev"
#endif
