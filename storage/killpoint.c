/*
 * killpoint.c - named crash points (killpoint.h). The armed point comes from
 * the environment (read once per process) or from killpoint_arm; hits are
 * counted atomically from any thread.
 */
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "storage/killpoint.h"

static pthread_once_t kp_once = PTHREAD_ONCE_INIT;
static pthread_mutex_t kp_mu = PTHREAD_MUTEX_INITIALIZER;
static char kp_name[64];
static long kp_hit_at = 1;
static atomic_bool kp_armed;
static atomic_long kp_hits;

static void kp_init(void)
{
    const char *name = getenv("STRATA_KILL_POINT");
    const char *n = getenv("STRATA_KILL_POINT_HIT");
    if (name != NULL)
        killpoint_arm(name, n != NULL ? atol(n) : 1);
}

void killpoint_arm(const char *name, long hit)
{
    pthread_mutex_lock(&kp_mu);
    if (name == NULL || strlen(name) >= sizeof(kp_name)) {
        atomic_store(&kp_armed, false);
    } else {
        strcpy(kp_name, name);
        kp_hit_at = hit > 0 ? hit : 1;
        atomic_store(&kp_hits, 0);
        atomic_store(&kp_armed, true);
    }
    pthread_mutex_unlock(&kp_mu);
}

void killpoint_hit(const char *name)
{
    pthread_once(&kp_once, kp_init);
    if (!atomic_load_explicit(&kp_armed, memory_order_relaxed))
        return;
    pthread_mutex_lock(&kp_mu);
    bool due = strcmp(kp_name, name) == 0 && atomic_fetch_add(&kp_hits, 1) + 1 == kp_hit_at;
    pthread_mutex_unlock(&kp_mu);
    if (due)
        raise(SIGKILL);
}

bool killpoint_enabled(void)
{
#ifdef STRATA_KILL_POINTS
    return true;
#else
    return false;
#endif
}
