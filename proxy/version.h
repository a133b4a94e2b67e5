/*
 * version.h - the versions strata-proxy reports. Wherever memcached reports
 * its version (text `version`, binary VERSION, `stats` version) strata
 * answers the plain memcached release whose behaviour it matches: clients
 * parse that string as a number (Perl's version.pm dies on anything else)
 * and gate features on it. Strata's own version has fields of its own:
 * `stats` strata_version, `--version` and the start-up log line.
 */
#pragma once

#include "common/mc_text.h" /* MC_COMPAT_VERSION */

#ifndef STRATA_VERSION
#define STRATA_VERSION "0.0.0-dev"
#endif
