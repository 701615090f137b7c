/* Spawner side: turn a position-independent spec blob back into a `struct cjail_spec`.
 *
 * The daemon (Swift, CSpecBlob.swift) lays out one spec and everything it points to in a single
 * buffer, with every pointer field holding an offset from the start of the buffer (0 = NULL),
 * and hands it to the spawner process in a memfd. This file checks every offset against the
 * buffer before turning it into a pointer: a string must end inside the buffer, an array must
 * fit, NULL-terminated vectors must be terminated. The blob itself is only read: arrays are
 * copied out and fixed up in private memory (fuzz-specblob found that fixing pointers in place
 * let overlapping regions of a malformed blob undo a check already made). The daemon is trusted, but a bounds error here
 * would turn a daemon bug into memory corruption in the process that creates every jail, so the
 * blob is treated like any other input. */
#define _GNU_SOURCE
#include "include/cjail.h"
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct blob {
    const char *base;
    size_t len;
    int bad;
};

/* The pointer for offset `off` of an object of `size` bytes aligned to `align`, or NULL (and
 * b->bad set) when it does not fit. Offset 0 is NULL. */
static const void *at(struct blob *b, uintptr_t off, size_t size, size_t align) {
    if (off == 0) return NULL;
    if (off >= b->len || size > b->len - off || (align > 1 && off % align != 0)) {
        b->bad = 1;
        return NULL;
    }
    return b->base + off;
}

static size_t array_bytes(struct blob *b, size_t count, size_t elem) {
    if (elem != 0 && count > SIZE_MAX / elem) {
        b->bad = 1;
        return 0;
    }
    return count * elem;
}

/* A NUL-terminated string at `off` (NULL stays NULL). The blob is never written, so a string
 * checked here stays terminated. */
static const char *str(struct blob *b, const void *field) {
    uintptr_t off = (uintptr_t)field;
    if (off == 0) return NULL;
    const char *s = at(b, off, 1, 1);
    if (!s) return NULL;
    if (!memchr(s, 0, b->len - off)) {
        b->bad = 1;
        return NULL;
    }
    return s;
}

/* A private copy of the array of `count` items of `elem` bytes at `off` (NULL when count is
 * 0). Copies, not views: the items are then fixed up without writing into the blob, so regions
 * that overlap (a malformed blob) cannot invalidate a check already made. */
static void *copy_array(struct blob *b, const void *field, size_t count, size_t elem) {
    uintptr_t off = (uintptr_t)field;
    if (count == 0) return NULL;
    const void *src = at(b, off, array_bytes(b, count, elem), 8);
    if (!src) {
        b->bad = 1;
        return NULL;
    }
    void *dst = malloc(count * elem);
    if (!dst) {
        b->bad = 1;
        return NULL;
    }
    memcpy(dst, src, count * elem);
    return dst;
}

/* A NULL-terminated vector of string offsets → a private vector of pointers. */
static char **vec(struct blob *b, const void *field) {
    uintptr_t off = (uintptr_t)field;
    const uint64_t *v = at(b, off, sizeof(uint64_t), 8);
    if (!v) {
        b->bad = 1; /* argv and envp are required */
        return NULL;
    }
    size_t max = (b->len - off) / sizeof(uint64_t), n = 0;
    while (n < max && v[n] != 0) n++;
    if (n == max) {
        b->bad = 1; /* no terminator inside the blob */
        return NULL;
    }
    char **out = calloc(n + 1, sizeof(char *));
    if (!out) {
        b->bad = 1;
        return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        out[i] = (char *)str(b, (const void *)(uintptr_t)v[i]);
        if (!out[i]) b->bad = 1;
    }
    return out;
}

static void fix_mounts(struct blob *b, struct cjail_spec *s) {
    struct cjail_mount_op *m = copy_array(b, s->mounts, s->mount_count, sizeof *m);
    s->mounts = m;
    for (uint32_t i = 0; m && i < s->mount_count; i++) {
        m[i].source = str(b, m[i].source);
        m[i].target = str(b, m[i].target);
        m[i].source_fd = -1; /* the spawner's own, after it resolved the source: never from a blob */
        if (m[i].kind == CJAIL_MNT_FILE) {
            m[i].data = at(b, (uintptr_t)m[i].data, m[i].data_len ? m[i].data_len : 1, 1);
            if (!m[i].data) b->bad = 1;
        } else {
            m[i].data = str(b, m[i].data);
        }
        if (!m[i].target) b->bad = 1;
    }
}

static void fix_lists(struct blob *b, struct cjail_spec *s) {
    s->rlimits = copy_array(b, s->rlimits, s->rlimit_count, sizeof *s->rlimits);
    struct cjail_landlock_rule *r = copy_array(b, s->landlock_rules, s->landlock_rule_count, sizeof *r);
    s->landlock_rules = r;
    for (uint32_t i = 0; r && i < s->landlock_rule_count; i++) {
        r[i].path = str(b, r[i].path);
        if (!r[i].path) b->bad = 1;
    }
    struct cjail_filter *f = copy_array(b, s->filters, s->filter_count, sizeof *f);
    s->filters = f;
    for (uint32_t i = 0; f && i < s->filter_count; i++) {
        f[i].insns = f[i].count == 0 ? NULL : at(b, (uintptr_t)f[i].insns, array_bytes(b, f[i].count, 8), 1);
        if (!f[i].insns) b->bad = 1;
    }
    const char **e = copy_array(b, s->exec_paths, s->exec_path_count, sizeof(char *));
    s->exec_paths = e;
    for (uint32_t i = 0; e && i < s->exec_path_count; i++) {
        e[i] = str(b, e[i]);
        if (!e[i]) b->bad = 1;
    }
}

void cjail_spec_release(struct cjail_spec *s) {
    free((void *)s->mounts);
    free((void *)s->rlimits);
    free((void *)s->landlock_rules);
    free((void *)s->filters);
    free((void *)s->exec_paths);
    free((void *)s->argv);
    free((void *)s->envp);
    memset(s, 0, sizeof *s);
}

int cjail_spec_unpack(const void *base, size_t len, struct cjail_spec *out) {
    struct blob b = {(const char *)base, len, 0};
    memset(out, 0, sizeof *out);
    if (len < sizeof(struct cjail_spec) || ((uintptr_t)base % 8) != 0) return -EINVAL;
    struct cjail_spec s;
    memcpy(&s, base, sizeof s);
    s.late_unshare = 0; /* the spawner's own, for warm jails: never from a blob */
    /* Every array pointer is replaced (copy or NULL) before anything can fail, so that
     * cjail_spec_release frees only what was allocated here. */
    struct cjail_spec raw = s;
    s.mounts = NULL; s.rlimits = NULL; s.landlock_rules = NULL; s.filters = NULL;
    s.exec_paths = NULL; s.argv = NULL; s.envp = NULL; s.trace = NULL; /* slots arrive as an fd */
    s.root_path = str(&b, raw.root_path);
    s.root_options = str(&b, raw.root_options);
    s.hostname = str(&b, raw.hostname);
    s.workdir = str(&b, raw.workdir);
    s.mounts = raw.mounts;
    fix_mounts(&b, &s);
    s.rlimits = raw.rlimits; s.landlock_rules = raw.landlock_rules; s.filters = raw.filters; s.exec_paths = raw.exec_paths;
    fix_lists(&b, &s);
    s.argv = vec(&b, raw.argv);
    s.envp = vec(&b, raw.envp);
    *out = s;
    if (b.bad || !s.root_path || s.exec_path_count == 0 || s.static_mount_count > s.mount_count) {
        cjail_spec_release(out);
        return -EINVAL;
    }
    return 0;
}
