/*
 * killpoint.h - named crash points for the crash tests (STYLE.md "Tests").
 *
 * KILL_POINT("wal.after_sync") raises SIGKILL in the calling process when
 * the environment variable STRATA_KILL_POINT names that point, on its Nth
 * hit (STRATA_KILL_POINT_HIT=N, default 1), or when killpoint_arm armed
 * it. Active in debug and sanitizer
 * builds and in any build compiled with -DSTRATA_KILL_POINTS; compiled
 * away in release builds otherwise. Any thread. Points (kept in
 * docs/STORAGE.md): wal.before_append, wal.after_append, wal.after_sync,
 * sst.before_rename, sst.after_rename, manifest.before_sync,
 * manifest.after_sync, current.before_rename, current.after_rename,
 * flush.before_install, flush.after_install, compaction.before_install,
 * compaction.after_install, delete.obsolete.
 */
#pragma once

#include <stdbool.h>

#if !defined(NDEBUG) && !defined(STRATA_KILL_POINTS)
#define STRATA_KILL_POINTS 1
#endif

/* Kills the process if `name` is the armed point and its hit count is due. */
void killpoint_hit(const char *name);
/* Arms `name` (at most 63 bytes) to kill on its `hit`th hit from now
 * (overrides the environment); NULL disarms. Any thread. */
void killpoint_arm(const char *name, long hit);
/* Whether KILL_POINT is compiled in (tests skip themselves otherwise). */
bool killpoint_enabled(void);

#ifdef STRATA_KILL_POINTS
#define KILL_POINT(name) killpoint_hit(name)
#else
#define KILL_POINT(name) ((void)0)
#endif
