/* The spawner's check of a launch against its template (cjail.h, "Templates", lists the rules).
 *
 * Why: the spawner is the privileged part (root in privileged mode) and the daemon that sends
 * launches is not trusted to be honest: it parses untrusted bytes all day (the Bridge, partner
 * packages, HTTP replies), so one memory bug there must not become "clone a process as uid 0
 * with / bound read-write and no seccomp filter". Everything that makes a jail a jail is in the
 * template, fixed by whoever started the spawner; a launch only chooses what its program is
 * (argv, env, exec paths, workdir), which program directories it gets (checked to resolve
 * beneath the roots) and which program uid it runs as (inside the range).
 *
 * Pure: no system calls, so the fuzz target (Sources/Fuzz/spawnrequest) runs it as is. */
#define _GNU_SOURCE
#include "include/cjail.h"
#include <errno.h>
#include <sched.h>
#include <string.h>

#define MAX_FILE_BYTES 65536 /* a generated /etc file (passwd, group, hosts) */

static int eq_str(const char *a, const char *b) {
    if (!a || !b) return a == b;
    return strcmp(a, b) == 0;
}

/* The same op, field for field (what the warm-jail key compares for the static part). */
static int same_op(const struct cjail_mount_op *a, const struct cjail_mount_op *b) {
    if (a->kind != b->kind || a->source_is_dir != b->source_is_dir || a->mode != b->mode || a->attr_set != b->attr_set) return 0;
    if (!eq_str(a->source, b->source) || !eq_str(a->target, b->target)) return 0;
    if (a->kind == CJAIL_MNT_FILE) {
        if (a->data_len != b->data_len) return 0;
        return a->data_len == 0 || (a->data && b->data && memcmp(a->data, b->data, a->data_len) == 0);
    }
    return eq_str(a->data, b->data);
}

static int refuse(struct cjail_check *out, int why, int index) {
    out->refused = why;
    out->index = index;
    return -EPERM;
}

/* `rel` is a relative path of plain components: not empty, no "", ".", ".." component, no
 * leading or trailing '/'. (openat2 with RESOLVE_BENEATH would refuse ".." escapes anyway; this
 * keeps the rule visible and the fuzz target honest.) */
static int plain_relative(const char *rel) {
    if (!rel || !*rel || *rel == '/') return 0;
    const char *p = rel;
    while (*p) {
        const char *slash = strchr(p, '/');
        size_t n = slash ? (size_t)(slash - p) : strlen(p);
        if (n == 0 || (n == 1 && p[0] == '.') || (n == 2 && p[0] == '.' && p[1] == '.')) return 0;
        if (!slash) break;
        p = slash + 1;
        if (!*p) return 0; /* trailing '/' */
    }
    return 1;
}

/* `source` beneath `root` (a template's bind source): the part after it, or NULL. */
static const char *beneath(const char *source, const char *root) {
    if (!source || !root) return NULL;
    size_t n = strlen(root);
    if (n == 1 && root[0] == '/') return source[0] == '/' ? source + 1 : NULL;
    if (strncmp(source, root, n) != 0 || source[n] != '/') return NULL;
    return source + n + 1;
}

/* Which root a target is bound from: 0 (/app), 1 (/data), -1 (neither). */
static int root_of(const struct cjail_spec *t, const char *target) {
    size_t n = strlen(t->root_path);
    if (!target || strncmp(target, t->root_path, n) != 0) return -1;
    if (strcmp(target + n, "/app") == 0) return 0;
    if (strcmp(target + n, "/data") == 0) return 1;
    return -1;
}

static int check_policy(const struct cjail_spec *t, const struct cjail_template_request *tr, const struct cjail_spec *s,
                        int netns_fd, struct cjail_check *out) {
    uint64_t flags = s->clone_flags;
    if (netns_fd) {
        /* A pooled namespace replaces CLONE_NEWNET: only when the template allows it. */
        if (!(tr->flags & CJAIL_TEMPLATE_NETNS_FD) || (flags & CLONE_NEWNET) || !(t->clone_flags & CLONE_NEWNET))
            return refuse(out, CJAIL_REFUSE_NAMESPACES, -1);
        flags |= CLONE_NEWNET;
    }
    if (flags != t->clone_flags || s->user_ns != t->user_ns || s->unshare_cgroup != t->unshare_cgroup ||
        s->skip_setgroups != t->skip_setgroups)
        return refuse(out, CJAIL_REFUSE_NAMESPACES, -1);
    if (!eq_str(s->root_path, t->root_path) || !eq_str(s->root_options, t->root_options) ||
        s->root_readonly != t->root_readonly || !eq_str(s->hostname, t->hostname))
        return refuse(out, CJAIL_REFUSE_ROOT, -1);
    if (s->static_mount_count != t->static_mount_count) return refuse(out, CJAIL_REFUSE_STATIC, -1);
    for (uint32_t i = 0; i < t->static_mount_count; i++)
        if (!same_op(&s->mounts[i], &t->mounts[i])) return refuse(out, CJAIL_REFUSE_STATIC, (int)i);
    if (s->pdeathsig != t->pdeathsig || s->reaper != t->reaper) return refuse(out, CJAIL_REFUSE_LIFETIME, -1);
    return 0;
}

static int check_identity(const struct cjail_template_request *tr, const struct cjail_spawn_request *req,
                          const struct cjail_spec *s, struct cjail_check *out) {
    uint64_t lo = tr->uid_min, hi = (uint64_t)tr->uid_min + tr->uid_count;
    if (s->uid < lo || s->uid >= hi || s->gid < lo || s->gid >= hi) return refuse(out, CJAIL_REFUSE_IDENTITY, -1);
    int idmap = (req->flags & CJAIL_SPAWN_IDMAP) != 0;
    if (idmap != ((tr->flags & CJAIL_TEMPLATE_IDMAP) != 0)) return refuse(out, CJAIL_REFUSE_IDENTITY, -1);
    if (idmap && (req->inside_uid != s->uid || req->inside_gid != s->gid || req->outside_uid != tr->outside_uid ||
                  req->outside_gid != tr->outside_gid))
        return refuse(out, CJAIL_REFUSE_IDENTITY, -1);
    /* Privileged: the ids are host ids; a range holding root is refused at registration. */
    return 0;
}

static int check_limits(const struct cjail_spec *t, const struct cjail_spec *s, struct cjail_check *out) {
    /* Every rlimit of the template, once, no higher: the child sets them as root, so one the
     * template does not name could be raised (RLIMIT_MEMLOCK, RLIMIT_NPROC…). */
    if (s->rlimit_count != t->rlimit_count) return refuse(out, CJAIL_REFUSE_RLIMIT, -1);
    for (uint32_t i = 0; i < s->rlimit_count; i++) {
        const struct cjail_rlimit *r = &s->rlimits[i];
        int ok = 0;
        for (uint32_t j = 0; j < t->rlimit_count && !ok; j++) {
            const struct cjail_rlimit *m = &t->rlimits[j];
            ok = m->resource == r->resource && r->soft <= m->soft && r->hard <= m->hard && r->soft <= r->hard;
        }
        for (uint32_t k = 0; k < i && ok; k++) ok = s->rlimits[k].resource != r->resource;
        if (!ok) return refuse(out, CJAIL_REFUSE_RLIMIT, (int)i);
    }
    return 0;
}

static int check_landlock(const struct cjail_spec *t, const struct cjail_spec *s, struct cjail_check *out) {
    if (s->landlock_abi != t->landlock_abi || s->landlock_handled_fs != t->landlock_handled_fs ||
        s->landlock_handled_net != t->landlock_handled_net || s->landlock_scoped != t->landlock_scoped)
        return refuse(out, CJAIL_REFUSE_LANDLOCK, -1);
    /* Rules grant access: a launch may have fewer (no /sdk), never another. */
    for (uint32_t i = 0; i < s->landlock_rule_count; i++) {
        int ok = 0;
        for (uint32_t j = 0; j < t->landlock_rule_count && !ok; j++)
            ok = s->landlock_rules[i].access == t->landlock_rules[j].access && eq_str(s->landlock_rules[i].path, t->landlock_rules[j].path);
        if (!ok) return refuse(out, CJAIL_REFUSE_LANDLOCK, (int)i);
    }
    return 0;
}

static int check_seccomp(const struct cjail_spec *t, const struct cjail_spec *s, struct cjail_check *out) {
    if (s->filter_count != t->filter_count) return refuse(out, CJAIL_REFUSE_SECCOMP, -1);
    for (uint32_t i = 0; i < s->filter_count; i++) {
        const struct cjail_filter *a = &s->filters[i], *b = &t->filters[i];
        if (a->count != b->count || (a->count && memcmp(a->insns, b->insns, (size_t)a->count * 8) != 0))
            return refuse(out, CJAIL_REFUSE_SECCOMP, (int)i);
    }
    return 0;
}

/* One launch-dependent op against the template's launch-dependent ops. */
static int check_op(const struct cjail_spec *t, const struct cjail_spec *s, uint32_t i, struct cjail_check *out, int *trees) {
    const struct cjail_mount_op *op = &s->mounts[i], *m = NULL;
    for (uint32_t j = t->static_mount_count; j < t->mount_count && !m; j++)
        if (eq_str(t->mounts[j].target, op->target)) m = &t->mounts[j];
    if (!m) return refuse(out, CJAIL_REFUSE_MOUNT, (int)i);
    switch (op->kind) {
    case CJAIL_MNT_FILE:
        if (m->kind != CJAIL_MNT_FILE || op->mode != m->mode || op->data_len > MAX_FILE_BYTES) return refuse(out, CJAIL_REFUSE_MOUNT, (int)i);
        return 0;
    case CJAIL_MNT_DIR:
        if (m->kind == CJAIL_MNT_DIR ? op->mode != m->mode : (m->kind != CJAIL_MNT_BIND || op->mode != 0755))
            return refuse(out, CJAIL_REFUSE_MOUNT, (int)i);
        return 0;
    case CJAIL_MNT_BIND: {
        int root = root_of(t, op->target);
        if (root < 0) return same_op(op, m) ? 0 : refuse(out, CJAIL_REFUSE_MOUNT, (int)i);
        const char *rel = beneath(op->source, m->source);
        if (m->kind != CJAIL_MNT_BIND || op->attr_set != m->attr_set || op->source_is_dir != 1 || m->source_is_dir != 1 ||
            !plain_relative(rel) || *trees >= CJAIL_MAX_TREES)
            return refuse(out, CJAIL_REFUSE_MOUNT, (int)i);
        out->tree_op[*trees] = (int32_t)i;
        out->tree_rel[*trees] = rel;
        out->tree_root[*trees] = root;
        (*trees)++;
        return 0;
    }
    default:
        return same_op(op, m) ? 0 : refuse(out, CJAIL_REFUSE_MOUNT, (int)i);
    }
}

int cjail_template_check(const struct cjail_spec *t, const struct cjail_template_request *tr,
                         const struct cjail_spawn_request *req, const struct cjail_spec *s, int netns_fd,
                         struct cjail_check *out) {
    memset(out, 0, sizeof *out);
    out->index = -1;
    for (int k = 0; k < CJAIL_MAX_TREES; k++) out->tree_op[k] = -1;
    int e;
    if ((e = check_policy(t, tr, s, netns_fd, out)) || (e = check_identity(tr, req, s, out)) ||
        (e = check_limits(t, s, out)) || (e = check_landlock(t, s, out)) || (e = check_seccomp(t, s, out)))
        return e;
    int trees = 0;
    for (uint32_t i = s->static_mount_count; i < s->mount_count; i++)
        if ((e = check_op(t, s, i, out, &trees))) return e;
    return 0;
}

int cjail_name_valid(const char name[CJAIL_NAME_MAX]) {
    size_t n = strnlen(name, CJAIL_NAME_MAX);
    if (n == 0 || n == CJAIL_NAME_MAX || name[0] == '.') return 0;
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
        if (!ok) return 0;
    }
    return 1;
}
