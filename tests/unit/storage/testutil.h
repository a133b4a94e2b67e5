/*
 * testutil.h - helpers shared by the storage unit tests (header-only, one
 * copy per test executable): temporary directories under $TMPDIR or /tmp,
 * removed recursively, and small file helpers.
 */
#pragma once

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Creates a fresh directory; returns a malloc'd path. */
static inline char *tu_mkdtemp(void)
{
    const char *base = getenv("TMPDIR");
    if (base == NULL || *base == 0)
        base = "/tmp";
    char *p = malloc(strlen(base) + 32);
    sprintf(p, "%s/strata-st-XXXXXX", base);
    if (mkdtemp(p) == NULL) {
        free(p);
        return NULL;
    }
    return p;
}

static inline void tu_rmrf(const char *path)
{
    DIR *d = opendir(path);
    if (d != NULL) {
        struct dirent *e;
        while ((e = readdir(d)) != NULL) {
            if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
                continue;
            char sub[4096 + 512];
            if ((size_t)snprintf(sub, sizeof(sub), "%s/%s", path, e->d_name) >= sizeof(sub))
                continue;
            struct stat st;
            if (lstat(sub, &st) == 0 && S_ISDIR(st.st_mode))
                tu_rmrf(sub);
            else
                unlink(sub);
        }
        closedir(d);
    }
    rmdir(path);
}

static inline void tu_rmtemp(char **p)
{
    if (*p != NULL) {
        tu_rmrf(*p);
        free(*p);
        *p = NULL;
    }
}

/* Reads a whole file; returns malloc'd bytes and *len, NULL if missing. */
static inline unsigned char *tu_read_file(const char *path, size_t *len)
{
    *len = 0;
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc(n > 0 ? (size_t)n : 1);
    size_t got = fread(b, 1, (size_t)n, f);
    fclose(f);
    *len = got;
    return b;
}

static inline void tu_write_file(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    if (f != NULL) {
        if (len > 0)
            fwrite(data, 1, len, f);
        fclose(f);
    }
}

/* Counts directory entries whose name ends with `suffix`. */
static inline int tu_count_suffix(const char *dir, const char *suffix)
{
    int n = 0;
    DIR *d = opendir(dir);
    if (d == NULL)
        return 0;
    struct dirent *e;
    size_t sl = strlen(suffix);
    while ((e = readdir(d)) != NULL) {
        size_t l = strlen(e->d_name);
        if (l >= sl && strcmp(e->d_name + l - sl, suffix) == 0)
            n++;
    }
    closedir(d);
    return n;
}

/* Finds the first entry ending with `suffix`; writes its full path. */
static inline int tu_find_suffix(const char *dir, const char *suffix, char *out, size_t cap)
{
    DIR *d = opendir(dir);
    if (d == NULL)
        return 0;
    struct dirent *e;
    size_t sl = strlen(suffix);
    int found = 0;
    while ((e = readdir(d)) != NULL) {
        size_t l = strlen(e->d_name);
        if (l >= sl && strcmp(e->d_name + l - sl, suffix) == 0) {
            if ((size_t)snprintf(out, cap, "%s/%s", dir, e->d_name) >= cap)
                continue;
            found = 1;
            break;
        }
    }
    closedir(d);
    return found;
}
