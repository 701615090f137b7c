/* Spawner side: turn a position-independent spec blob back into a `struct cjail_spec`.
 *
 * The daemon (Swift, CSpecBlob.swift) lays out one spec and everything it points to in a single
 * buffer, with every pointer field holding an offset from the start of the buffer (0 = NULL),
 * and hands it to the spawner process in a memfd. This file checks every offset against the
 * buffer before turning it into a pointer: a string must end inside the buffer, an array must
 * fit, NULL-terminated vectors must be terminated. The daemon is trusted, but a bounds error here
 * would turn a daemon bug into memory corruption in the process that creates every jail, so the
 * blob is treated like any other input. */
#define _GNU_SOURCE
#include "include/cjail.h"
#include <errno.h>
#include <stdint.h>
#include <string.h>

struct blob {
    char *base;
    size_t len;
    int bad;
};

/* The pointer for offset `off` of an object of `size` bytes aligned to `align`, or NULL (and
 * b->bad set) when it does not fit. Offset 0 is NULL. */
static void *at(struct blob *b, uintptr_t off, size_t size, size_t align) {
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

/* A NUL-terminated string at `off` (NULL stays NULL). */
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

static void *arr(struct blob *b, const void *field, size_t count, size_t elem) {
    uintptr_t off = (uintptr_t)field;
    if (off == 0) {
        if (count != 0) b->bad = 1; /* a count without its array */
        return NULL;
    }
    return at(b, off, array_bytes(b, count, elem), 8);
}

/* A NULL-terminated vector of string offsets, fixed in place. */
static char *const *vec(struct blob *b, const void *field) {
    uintptr_t off = (uintptr_t)field;
    char **v = at(b, off, sizeof(char *), 8);
    if (!v) {
        b->bad = 1; /* argv and envp are required */
        return NULL;
    }
    size_t max = (b->len - off) / sizeof(char *);
    for (size_t i = 0; i < max; i++) {
        if (v[i] == NULL) return v;
        v[i] = (char *)str(b, v[i]);
        if (!v[i]) {
            b->bad = 1;
            return NULL;
        }
    }
    b->bad = 1; /* no terminator inside the blob */
    return NULL;
}

static void fix_mounts(struct blob *b, struct cjail_spec *s) {
    struct cjail_mount_op *m = arr(b, s->mounts, s->mount_count, sizeof *m);
    s->mounts = m;
    for (uint32_t i = 0; m && i < s->mount_count; i++) {
        m[i].source = str(b, m[i].source);
        m[i].target = str(b, m[i].target);
        if (m[i].kind == CJAIL_MNT_FILE) {
            m[i].data = at(b, (uintptr_t)m[i].data, m[i].data_len ? m[i].data_len : 1, 1);
        } else {
            m[i].data = str(b, m[i].data);
        }
        if (!m[i].target) b->bad = 1;
    }
}

static void fix_lists(struct blob *b, struct cjail_spec *s) {
    s->rlimits = arr(b, s->rlimits, s->rlimit_count, sizeof *s->rlimits);
    struct cjail_landlock_rule *r = arr(b, s->landlock_rules, s->landlock_rule_count, sizeof *r);
    s->landlock_rules = r;
    for (uint32_t i = 0; r && i < s->landlock_rule_count; i++) {
        r[i].path = str(b, r[i].path);
        if (!r[i].path) b->bad = 1;
    }
    struct cjail_filter *f = arr(b, s->filters, s->filter_count, sizeof *f);
    s->filters = f;
    for (uint32_t i = 0; f && i < s->filter_count; i++) {
        f[i].insns = at(b, (uintptr_t)f[i].insns, array_bytes(b, f[i].count, 8), 1);
        if (!f[i].insns || f[i].count == 0) b->bad = 1;
    }
    const char **e = arr(b, s->exec_paths, s->exec_path_count, sizeof(char *));
    s->exec_paths = e;
    for (uint32_t i = 0; e && i < s->exec_path_count; i++) {
        e[i] = str(b, e[i]);
        if (!e[i]) b->bad = 1;
    }
}

int cjail_spec_unpack(void *base, size_t len, struct cjail_spec **out) {
    struct blob b = {base, len, 0};
    if (len < sizeof(struct cjail_spec) || ((uintptr_t)base % 8) != 0) return -EINVAL;
    struct cjail_spec *s = base;
    s->root_path = str(&b, s->root_path);
    s->root_options = str(&b, s->root_options);
    s->hostname = str(&b, s->hostname);
    s->workdir = str(&b, s->workdir);
    fix_mounts(&b, s);
    fix_lists(&b, s);
    s->argv = vec(&b, s->argv);
    s->envp = vec(&b, s->envp);
    s->trace = NULL; /* profiling slots arrive as their own fd */
    if (b.bad || !s->root_path || s->exec_path_count == 0) return -EINVAL;
    *out = s;
    return 0;
}
