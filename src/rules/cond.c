/*
 * cond.c - compiles a condition's JSON AST into a flat program
 * (cond_internal.h) and owns its lifetime.
 *
 * All the cost that does not depend on the event is paid here, once per
 * journey publish: names are interned, literals typed (numbers, "C3"
 * levels, datetimes), regexes compiled, `in` lists sorted, durations parsed,
 * and every did-clause turned into a counter spec whose key is canonical
 * JSON, so identical clauses in different journeys share one counter.
 *
 * Errors carry the JSON path of the offending member ("$.all[1].value") and
 * say what was expected; the journey editor shows them next to the field.
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rules/cond_internal.h"
#include "waymark/alloc.h"
#include "waymark/buf.h"
#include "waymark/error.h"
#include "waymark/strmap.h"

typedef struct cc {
    wm_cond_t *c;
    wm_cond_error_t *err;
    wm_strmap_t interned;
    char path[160];
    size_t plen;
    int depth;
    bool event_only;        /* where-clauses: event properties only */
    uint32_t cap_nodes, cap_dids, cap_seqs, cap_lists, cap_res, cap_specs, cap_subs;
} cc_t;

/* ------------------------------------------------------------ helpers */

static int fail(cc_t *cc, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail(cc_t *cc, const char *fmt, ...)
{
    if (cc->err) {
        snprintf(cc->err->path, sizeof cc->err->path, "%s", cc->path);
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(cc->err->msg, sizeof cc->err->msg, fmt, ap);
        va_end(ap);
    }
    return WM_EINVAL;
}

/* Appends ".key" or "[i]" to the path; returns the length to restore. */
static size_t path_key(cc_t *cc, const char *key)
{
    size_t old = cc->plen;
    int n = snprintf(cc->path + old, sizeof cc->path - old, ".%s", key);
    if (n > 0)
        cc->plen = old + (size_t)n < sizeof cc->path ? old + (size_t)n : sizeof cc->path - 1;
    return old;
}

static size_t path_idx(cc_t *cc, uint32_t i)
{
    size_t old = cc->plen;
    int n = snprintf(cc->path + old, sizeof cc->path - old, "[%u]", i);
    if (n > 0)
        cc->plen = old + (size_t)n < sizeof cc->path ? old + (size_t)n : sizeof cc->path - 1;
    return old;
}

static void path_pop(cc_t *cc, size_t old)
{
    cc->plen = old;
    cc->path[old] = '\0';
}

static int grow(void **arr, uint32_t n, uint32_t *cap, size_t elem)
{
    if (n < *cap)
        return 0;
    uint32_t nc = *cap ? *cap * 2 : 8;
    void *p = wm_realloc(*arr, (size_t)nc * elem);
    if (!p)
        return WM_ENOMEM;
    memset((char *)p + (size_t)*cap * elem, 0, (size_t)(nc - *cap) * elem);
    *arr = p;
    *cap = nc;
    return 0;
}

static const char *intern(cc_t *cc, const char *s, size_t n)
{
    uint64_t v;
    if (wm_strmap_get(&cc->interned, s, n, &v))
        return (const char *)(uintptr_t)v;
    char *copy = wm_arena_strndup(&cc->c->arena, s, n);
    if (!copy || wm_strmap_put(&cc->interned, s, n, (uint64_t)(uintptr_t)copy) != 0)
        return NULL;
    return copy;
}

/* Checks that every member of obj is one of the NULL-terminated keys. */
static int only_keys(cc_t *cc, const wm_json_t *obj, const char *const *keys)
{
    for (const wm_json_t *m = obj->u.child; m; m = m->next) {
        bool ok = false;
        for (const char *const *k = keys; *k && !ok; k++)
            ok = strcmp(m->key, *k) == 0;
        if (!ok) {
            size_t old = path_key(cc, m->key);
            int rc = fail(cc, "unknown key \"%.60s\"", m->key);
            path_pop(cc, old);
            return rc;
        }
    }
    return 0;
}

static int name_of(cc_t *cc, const wm_json_t *obj, const char *key, const char **out)
{
    const wm_json_t *v = wm_json_get(obj, key);
    size_t old = path_key(cc, key);
    int rc = 0;
    if (!v || v->type != WM_JSON_STRING || v->len == 0 || strlen(v->u.str) != v->len)
        rc = fail(cc, "\"%s\" needs a non-empty name", key);
    else if (!(*out = intern(cc, v->u.str, v->len)))
        rc = WM_ENOMEM;
    path_pop(cc, old);
    return rc;
}

static int new_node(cc_t *cc, uint8_t kind, uint32_t *idx)
{
    wm_cond_t *c = cc->c;
    if (c->n_nodes >= WM_COND_NODES_MAX)
        return fail(cc, "condition too large (more than %d nodes)", WM_COND_NODES_MAX);
    if (grow((void **)&c->nodes, c->n_nodes, &cc->cap_nodes, sizeof(cnode_t)))
        return WM_ENOMEM;
    *idx = c->n_nodes++;
    memset(&c->nodes[*idx], 0, sizeof(cnode_t));
    c->nodes[*idx].kind = kind;
    return 0;
}

/* ------------------------------------------------------------ literals */

/* A scalar literal, typed. Strings are interned. */
static int typed_scalar(cc_t *cc, const wm_json_t *j, wm__val_t *out, const char *what)
{
    if (!j || (j->type != WM_JSON_NUMBER && j->type != WM_JSON_STRING &&
               j->type != WM_JSON_TRUE && j->type != WM_JSON_FALSE))
        return fail(cc, "%s must be a string, number or boolean", what);
    wm__val_from_json(j, out);
    if (out->kind == WM__V_STR) {
        out->s = intern(cc, j->u.str, j->len);
        if (!out->s)
            return WM_ENOMEM;
    }
    return 0;
}

static int typed_orderable(cc_t *cc, const wm_json_t *j, wm__val_t *out, const char *what)
{
    if (!j || (j->type != WM_JSON_NUMBER && j->type != WM_JSON_STRING))
        return fail(cc, "%s must be a number or a string (level, date or text)", what);
    return typed_scalar(cc, j, out, what);
}

static int cmp_lstr(const void *a, const void *b)
{
    const lstr_t *x = a, *y = b;
    int r = memcmp(x->s, y->s, x->len < y->len ? x->len : y->len);
    if (r)
        return r;
    return (x->len > y->len) - (x->len < y->len);
}

static int cmp_dbl(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static int build_list(cc_t *cc, const wm_json_t *arr, inlist_t *L)
{
    L->strs = wm_arena_alloc(&cc->c->arena, sizeof(lstr_t) * (arr->len + 1));
    L->nums = wm_arena_alloc(&cc->c->arena, sizeof(double) * (arr->len + 1));
    if (!L->strs || !L->nums)
        return WM_ENOMEM;
    uint32_t i = 0;
    for (const wm_json_t *e = arr->u.child; e; e = e->next, i++) {
        size_t old = path_idx(cc, i);
        wm__val_t v;
        int rc = typed_scalar(cc, e, &v, "a list element");
        path_pop(cc, old);
        if (rc)
            return rc;
        if (v.kind == WM__V_BOOL)
            L->bools |= v.b ? 2 : 1;
        if (v.kind == WM__V_NUM || (v.kind == WM__V_STR && (v.flags & WM__VF_NUM)))
            L->nums[L->n_nums++] = v.num;
        if (v.kind == WM__V_STR)
            L->strs[L->n_strs++] = (lstr_t){v.s, v.len};
    }
    qsort(L->strs, L->n_strs, sizeof(lstr_t), cmp_lstr);
    qsort(L->nums, L->n_nums, sizeof(double), cmp_dbl);
    return 0;
}

static int compile_in(cc_t *cc, uint32_t node, const wm_json_t *val)
{
    if (!val || val->type != WM_JSON_ARRAY)
        return fail(cc, "%s needs a list of values", cc->c->nodes[node].op == OP_IN ? "in" : "not_in");
    if (val->len > WM_COND_LIST_MAX)
        return fail(cc, "list longer than %d values", WM_COND_LIST_MAX);
    wm_cond_t *c = cc->c;
    if (grow((void **)&c->lists, c->n_lists, &cc->cap_lists, sizeof(inlist_t)))
        return WM_ENOMEM;
    uint32_t li = c->n_lists++;
    memset(&c->lists[li], 0, sizeof(inlist_t));
    c->nodes[node].aux = li;
    return build_list(cc, val, &c->lists[li]);
}

static int compile_regex(cc_t *cc, uint32_t node, const wm_json_t *val)
{
    if (!val || val->type != WM_JSON_STRING)
        return fail(cc, "matches needs a regular expression string");
    if (val->len > WM_COND_REGEX_LEN_MAX || strlen(val->u.str) != val->len)
        return fail(cc, "regular expression too long or contains NUL");
    wm_cond_t *c = cc->c;
    if (grow((void **)&c->res, c->n_res, &cc->cap_res, sizeof(regex_t *)))
        return WM_ENOMEM;
    regex_t *re = wm_malloc(sizeof *re);
    if (!re)
        return WM_ENOMEM;
    int r = regcomp(re, val->u.str, REG_EXTENDED | REG_NOSUB);
    if (r != 0) {
        char msg[128];
        regerror(r, re, msg, sizeof msg);
        wm_free(re);
        return fail(cc, "bad regular expression: %s", msg);
    }
    c->res[c->n_res] = re;
    c->nodes[node].aux = c->n_res++;
    return 0;
}

static int duration_of(cc_t *cc, const wm_json_t *v, int64_t *ms, const char *what)
{
    if (!v || v->type != WM_JSON_STRING || wm_duration_parse(v->u.str, ms) != 0)
        return fail(cc, "bad duration for %s (expected e.g. \"30d\", \"12h\", \"1d12h\")", what);
    return 0;
}

/* before / after: a signed duration from now, or an absolute date. */
static int compile_date_bound(cc_t *cc, uint32_t node, const wm_json_t *val)
{
    cnode_t *n = &cc->c->nodes[node];
    int64_t ms;
    if (val && val->type == WM_JSON_STRING && wm_duration_parse(val->u.str, &ms) == 0) {
        n->relative = true;
        n->dur_ms = ms;
        return 0;
    }
    if (val && val->type == WM_JSON_NUMBER && isfinite(val->u.num)) {
        wm__val_from_json(val, &n->lit);
        return 0;
    }
    if (val && val->type == WM_JSON_STRING &&
        wm__parse_datetime(val->u.str, val->len, &n->lit.date_naive)) {
        return typed_scalar(cc, val, &n->lit, "value");
    }
    return fail(cc, "before/after need a duration (\"-7d\"), a date (\"2026-10-01\") or epoch ms");
}

/* value: {"profile": name}, {"prop": name} or {"trigger": name} */
static int compile_ref(cc_t *cc, uint32_t node, const wm_json_t *val)
{
    static const char *const keys[] = {"profile", "prop", "trigger", NULL};
    int rc = only_keys(cc, val, keys);
    if (rc)
        return rc;
    if (val->len != 1)
        return fail(cc, "a reference is {\"profile\": name}, {\"prop\": name} or {\"trigger\": name}");
    const char *key = val->u.child->key;
    if (cc->event_only && strcmp(key, "profile") == 0)
        return fail(cc, "a where clause can only reference event properties");
    cnode_t *n = &cc->c->nodes[node];
    n->ref_src = !strcmp(key, "profile") ? S_PROFILE : !strcmp(key, "trigger") ? S_TRIGGER : S_PROP;
    return name_of(cc, val, key, &n->ref_name);
}

static bool refs_trigger(const wm_cond_t *c)
{
    for (uint32_t i = 0; c && i < c->n_nodes; i++)
        if (c->nodes[i].ref_src == S_TRIGGER)
            return true;
    return false;
}

static int compile_compare(cc_t *cc, uint32_t node, const wm_json_t *val)
{
    cnode_t *n = &cc->c->nodes[node];
    if (val && val->type == WM_JSON_OBJECT)
        return compile_ref(cc, node, val);
    if (val && val->type == WM_JSON_ARRAY)
        return fail(cc, "a list value needs in / not_in");
    if (n->op == OP_EQ || n->op == OP_NE)
        return typed_scalar(cc, val, &n->lit, "value");
    return typed_orderable(cc, val, &n->lit, "value");
}

static int compile_between(cc_t *cc, uint32_t node, const wm_json_t *val)
{
    if (!val || val->type != WM_JSON_ARRAY || val->len != 2)
        return fail(cc, "between needs [lo, hi]");
    cnode_t *n = &cc->c->nodes[node];
    int rc = typed_orderable(cc, val->u.child, &n->lit, "between's lo");
    if (rc == 0)
        rc = typed_orderable(cc, val->u.child->next, &n->hi, "between's hi");
    return rc;
}

static const struct {
    const char *name;
    uint8_t op;
} op_names[] = {
    {"=", OP_EQ}, {"==", OP_EQ}, {"!=", OP_NE}, {"<", OP_LT}, {"<=", OP_LE}, {">", OP_GT},
    {">=", OP_GE}, {"between", OP_BETWEEN}, {"in", OP_IN}, {"not_in", OP_NOT_IN},
    {"contains", OP_CONTAINS}, {"not_contains", OP_NOT_CONTAINS}, {"matches", OP_MATCHES},
    {"is_set", OP_IS_SET}, {"not_set", OP_NOT_SET}, {"within_last", OP_WITHIN_LAST},
    {"before", OP_BEFORE}, {"after", OP_AFTER},
};

static uint8_t op_lookup(const char *s)
{
    for (size_t i = 0; i < sizeof op_names / sizeof op_names[0]; i++)
        if (strcmp(op_names[i].name, s) == 0)
            return op_names[i].op;
    return 0;
}

static int compile_value(cc_t *cc, uint32_t node, const wm_json_t *val)
{
    uint8_t op = cc->c->nodes[node].op;
    bool none = op == OP_IS_SET || op == OP_NOT_SET;
    if (none && val)
        return fail(cc, "is_set / not_set take no value");
    if (!none && !val)
        return fail(cc, "missing \"value\"");
    if (val && val->type == WM_JSON_NULL)
        return fail(cc, "value null: use is_set / not_set");
    switch (op) {
    case OP_IS_SET:
    case OP_NOT_SET:
        return 0;
    case OP_BETWEEN:
        return compile_between(cc, node, val);
    case OP_IN:
    case OP_NOT_IN:
        return compile_in(cc, node, val);
    case OP_MATCHES:
        return compile_regex(cc, node, val);
    case OP_WITHIN_LAST: {
        cnode_t *n = &cc->c->nodes[node];
        int rc = duration_of(cc, val, &n->dur_ms, "within_last");
        if (rc == 0 && n->dur_ms <= 0)
            rc = fail(cc, "within_last needs a positive duration");
        return rc;
    }
    case OP_BEFORE:
    case OP_AFTER:
        return compile_date_bound(cc, node, val);
    case OP_CONTAINS:
    case OP_NOT_CONTAINS:
        return typed_scalar(cc, val, &cc->c->nodes[node].lit, "contains' value");
    default:
        return compile_compare(cc, node, val);
    }
}

/* op + value of a predicate whose source is already set on the node. */
static int compile_op_value(cc_t *cc, const wm_json_t *j, uint32_t node)
{
    const wm_json_t *op = wm_json_get(j, "op");
    size_t old = path_key(cc, "op");
    if (!op || op->type != WM_JSON_STRING) {
        int rc = fail(cc, "missing \"op\" (=, !=, <, <=, >, >=, between, in, ...)");
        path_pop(cc, old);
        return rc;
    }
    uint8_t code = op_lookup(op->u.str);
    if (!code) {
        int rc = fail(cc, "unknown operator \"%.40s\"", op->u.str);
        path_pop(cc, old);
        return rc;
    }
    path_pop(cc, old);
    cc->c->nodes[node].op = code;
    const wm_json_t *val = wm_json_get(j, "value");
    old = path_key(cc, "value");
    if (!val)
        path_pop(cc, old);
    int rc = compile_value(cc, node, val);
    path_pop(cc, old);
    return rc;
}

/* ------------------------------------------------------------ predicates */

static int compile_pred(cc_t *cc, const wm_json_t *j, uint8_t src, const char *key)
{
    static const char *const keys_profile[] = {"profile", "op", "value", NULL};
    static const char *const keys_prop[] = {"prop", "op", "value", NULL};
    static const char *const keys_tag[] = {"tag", "op", "value", NULL};
    const char *const *keys = src == S_PROFILE ? keys_profile : src == S_PROP ? keys_prop : keys_tag;
    int rc = only_keys(cc, j, keys);
    if (rc)
        return rc;
    uint32_t node;
    if ((rc = new_node(cc, N_PRED, &node)))
        return rc;
    cc->c->nodes[node].src = src;
    if ((rc = name_of(cc, j, key, &cc->c->nodes[node].name)))
        return rc;
    rc = compile_op_value(cc, j, node);
    cc->c->nodes[node].end = cc->c->n_nodes;
    return rc;
}

static int compile_item(cc_t *cc, const wm_json_t *j)
{
    static const char *const keys[] = {"item", "prop", "op", "value", NULL};
    static const char *const item_keys[] = {"type", "key", "from", NULL};
    int rc = only_keys(cc, j, keys);
    if (rc)
        return rc;
    const wm_json_t *it = wm_json_get(j, "item");
    size_t old = path_key(cc, "item");
    if (it->type != WM_JSON_OBJECT) {
        rc = fail(cc, "item needs {\"type\", \"key\", \"from\"}");
        path_pop(cc, old);
        return rc;
    }
    uint32_t node;
    if ((rc = only_keys(cc, it, item_keys)) || (rc = new_node(cc, N_PRED, &node))) {
        path_pop(cc, old);
        return rc;
    }
    cnode_t *n = &cc->c->nodes[node];
    n->src = S_ITEM;
    const char *from = wm_json_str(wm_json_get(it, "from"));
    n->item_from = !from || strcmp(from, "event") == 0 ? S_PROP : S_PROFILE;
    if (from && strcmp(from, "event") && strcmp(from, "profile"))
        rc = fail(cc, "item.from must be \"event\" or \"profile\"");
    if (rc == 0)
        rc = name_of(cc, it, "type", &cc->c->nodes[node].item_type);
    if (rc == 0)
        rc = name_of(cc, it, "key", &cc->c->nodes[node].item_key);
    path_pop(cc, old);
    if (rc == 0)
        rc = name_of(cc, j, "prop", &cc->c->nodes[node].name);
    if (rc == 0)
        rc = compile_op_value(cc, j, node);
    cc->c->nodes[node].end = cc->c->n_nodes;
    return rc;
}

static int compile_segment(cc_t *cc, const wm_json_t *j)
{
    static const char *const keys[] = {"in_segment", NULL};
    int rc = only_keys(cc, j, keys);
    uint32_t node;
    if (rc || (rc = new_node(cc, N_SEGMENT, &node)))
        return rc;
    rc = name_of(cc, j, "in_segment", &cc->c->nodes[node].name);
    cc->c->nodes[node].end = cc->c->n_nodes;
    return rc;
}

/* ------------------------------------------------------------ canonical JSON */

typedef struct member {
    const wm_json_t *v;
    uint32_t order;
} member_t;

static int cmp_member(const void *a, const void *b)
{
    const member_t *x = a, *y = b;
    int r = strcmp(x->v->key, y->v->key);
    if (r)
        return r;
    return (x->order > y->order) - (x->order < y->order);
}

static void canon(wm_buf_t *b, const wm_json_t *j);

static void canon_object(wm_buf_t *b, const wm_json_t *j)
{
    member_t *m = wm_malloc(sizeof(member_t) * (j->len + 1));
    if (!m) {
        b->err = WM_ENOMEM;
        return;
    }
    uint32_t n = 0;
    for (const wm_json_t *c = j->u.child; c; c = c->next, n++)
        m[n] = (member_t){c, n};
    qsort(m, n, sizeof *m, cmp_member);
    wm_buf_putc(b, '{');
    bool first = true;
    for (uint32_t i = 0; i < n; i++) {
        if (i + 1 < n && strcmp(m[i].v->key, m[i + 1].v->key) == 0)
            continue; /* duplicate key: the last one wins, as in wm_json_get */
        if (!first)
            wm_buf_putc(b, ',');
        first = false;
        wm_buf_json_str(b, m[i].v->key, m[i].v->key_len);
        wm_buf_putc(b, ':');
        canon(b, m[i].v);
    }
    wm_buf_putc(b, '}');
    wm_free(m);
}

static void canon(wm_buf_t *b, const wm_json_t *j)
{
    switch (j->type) {
    case WM_JSON_OBJECT:
        canon_object(b, j);
        return;
    case WM_JSON_ARRAY:
        wm_buf_putc(b, '[');
        for (const wm_json_t *c = j->u.child; c; c = c->next) {
            canon(b, c);
            if (c->next)
                wm_buf_putc(b, ',');
        }
        wm_buf_putc(b, ']');
        return;
    case WM_JSON_NUMBER:
        if (j->u.num == floor(j->u.num) && fabs(j->u.num) < 9007199254740992.0)
            wm_buf_put_i64(b, (int64_t)j->u.num);
        else
            wm_buf_printf(b, "%.17g", j->u.num);
        return;
    case WM_JSON_STRING:
        wm_buf_json_str(b, j->u.str, j->len);
        return;
    default:
        wm_buf_puts(b, j->type == WM_JSON_TRUE ? "true" : j->type == WM_JSON_FALSE ? "false" : "null");
    }
}

/* ------------------------------------------------------------ did / sequence */

static int compile_sub(cc_t *cc, const wm_json_t *where, wm_cond_t **out);

static int add_spec(cc_t *cc, const char *event, const wm_json_t *where, const char *field,
                    uint32_t *idx)
{
    wm_buf_t b;
    wm_buf_init(&b, 1u << 20);
    wm_buf_puts(&b, "{\"event\":");
    wm_buf_json_str(&b, event, strlen(event));
    if (field) {
        wm_buf_puts(&b, ",\"field\":");
        wm_buf_json_str(&b, field, strlen(field));
    }
    if (where) {
        wm_buf_puts(&b, ",\"where\":");
        canon(&b, where);
    }
    wm_buf_putc(&b, '}');
    if (b.err) {
        int e = b.err;
        wm_buf_release(&b);
        return e == WM_ENOMEM ? WM_ENOMEM : fail(cc, "where clause too large");
    }
    wm_cond_t *c = cc->c;
    for (uint32_t i = 0; i < c->n_specs; i++) {
        if (strcmp(c->specs[i].key, b.data) == 0) {
            *idx = i;
            wm_buf_release(&b);
            return 0;
        }
    }
    const char *key = intern(cc, b.data, b.len);
    wm_buf_release(&b);
    if (!key || grow((void **)&c->specs, c->n_specs, &cc->cap_specs, sizeof(wm_counter_spec_t)))
        return WM_ENOMEM;
    wm_counter_spec_t *s = &c->specs[c->n_specs];
    s->key = key;
    s->event = event;
    s->field = field;
    s->where = NULL;
    if (where) {
        size_t old = path_key(cc, "where");
        wm_cond_t *sub = NULL;
        int rc = compile_sub(cc, where, &sub);
        path_pop(cc, old);
        if (rc)
            return rc;
        s->where = sub;
    }
    *idx = c->n_specs++;
    return 0;
}

static int time_bound(cc_t *cc, const wm_json_t *j, const char *key, tbound_t *t)
{
    const wm_json_t *v = wm_json_get(j, key);
    if (!v)
        return 0;
    size_t old = path_key(cc, key);
    int rc = 0;
    t->set = true;
    if (v->type == WM_JSON_NUMBER && isfinite(v->u.num) && fabs(v->u.num) < 9.0e15)
        t->ms = (int64_t)v->u.num;
    else if (v->type == WM_JSON_STRING && wm__parse_datetime(v->u.str, v->len, &t->ms))
        t->naive = true;
    else
        rc = fail(cc, "expected epoch ms or \"yyyy-MM-dd[ HH:mm:ss]\"");
    path_pop(cc, old);
    return rc;
}

static int compile_window(cc_t *cc, const wm_json_t *j, int64_t *within, tbound_t *from,
                          tbound_t *to, const char *what)
{
    const wm_json_t *w = wm_json_get(j, "within");
    bool abs = wm_json_get(j, "from") || wm_json_get(j, "to");
    if (w && abs)
        return fail(cc, "%s takes \"within\" or \"from\"/\"to\", not both", what);
    if (!w && !wm_json_get(j, "from"))
        return fail(cc, "%s needs a window: \"within\" (e.g. \"7d\") or \"from\"", what);
    if (w) {
        size_t old = path_key(cc, "within");
        int rc = duration_of(cc, w, within, "within");
        if (rc == 0 && *within <= 0)
            rc = fail(cc, "within must be positive");
        path_pop(cc, old);
        return rc;
    }
    int rc = time_bound(cc, j, "from", from);
    return rc ? rc : time_bound(cc, j, "to", to);
}

static const char *const agg_names[] = {NULL, "count", "sum", "avg", "min", "max", "distinct"};

static int compile_comparator(cc_t *cc, const wm_json_t *cmp, did_t *d)
{
    if (cmp->type != WM_JSON_OBJECT || cmp->len != 1)
        return fail(cc, "a comparator is one operator and a number, e.g. {\">=\": 3}");
    const wm_json_t *m = cmp->u.child;
    uint8_t op = op_lookup(m->key);
    size_t old = path_key(cc, m->key);
    int rc = 0;
    if (!op || op > OP_BETWEEN)
        rc = fail(cc, "unknown comparator \"%.40s\" (=, !=, <, <=, >, >=, between)", m->key);
    else if (op == OP_BETWEEN) {
        const wm_json_t *lo = m->type == WM_JSON_ARRAY && m->len == 2 ? m->u.child : NULL;
        if (!lo || lo->type != WM_JSON_NUMBER || lo->next->type != WM_JSON_NUMBER)
            rc = fail(cc, "between needs [lo, hi] numbers");
        else {
            d->lo = lo->u.num;
            d->hi = lo->next->u.num;
        }
    } else if (m->type != WM_JSON_NUMBER)
        rc = fail(cc, "comparator value must be a number");
    else
        d->lo = m->u.num;
    path_pop(cc, old);
    d->op = op;
    return rc;
}

static int did_aggregate(cc_t *cc, const wm_json_t *j, did_t *d)
{
    const wm_json_t *cmp = NULL;
    for (uint8_t a = AGG_COUNT; a <= AGG_DISTINCT; a++) {
        const wm_json_t *v = wm_json_get(j, agg_names[a]);
        if (!v)
            continue;
        if (cmp)
            return fail(cc, "did takes one aggregate (count, sum, avg, min, max or distinct)");
        cmp = v;
        d->agg = a;
    }
    if (!cmp) { /* {"did": "X"} alone means "did X at least once" */
        d->agg = AGG_COUNT;
        d->op = OP_GE;
        d->lo = 1;
        return 0;
    }
    size_t old = path_key(cc, agg_names[d->agg]);
    int rc = compile_comparator(cc, cmp, d);
    path_pop(cc, old);
    return rc;
}

static int did_window(cc_t *cc, const wm_json_t *j, did_t *d)
{
    int64_t within = 0;
    int rc = compile_window(cc, j, &within, &d->from, &d->to, "did");
    if (rc || within == 0)
        return rc;
    size_t old = path_key(cc, "within");
    if (within % WM__DAY_MS != 0)
        rc = fail(cc, "did windows are whole local days (\"7d\", \"2w\")");
    else if (within / WM__DAY_MS > WM_BUCKET_DAYS)
        rc = fail(cc, "did windows are at most %d days", WM_BUCKET_DAYS);
    else
        d->days = (int32_t)(within / WM__DAY_MS);
    path_pop(cc, old);
    return rc;
}

static int compile_did(cc_t *cc, const wm_json_t *j)
{
    static const char *const keys[] = {"did", "where", "count", "sum", "avg", "min", "max",
                                       "distinct", "field", "within", "from", "to", NULL};
    int rc = only_keys(cc, j, keys);
    if (rc)
        return rc;
    did_t d;
    memset(&d, 0, sizeof d);
    const char *event = NULL, *field = NULL;
    if ((rc = name_of(cc, j, "did", &event)) || (rc = did_aggregate(cc, j, &d)) ||
        (rc = did_window(cc, j, &d)))
        return rc;
    if (wm_json_get(j, "field") && (rc = name_of(cc, j, "field", &field)))
        return rc;
    if (d.agg != AGG_COUNT && !field)
        return fail(cc, "%s needs \"field\" (the property aggregated)", agg_names[d.agg]);
    const wm_json_t *where = wm_json_get(j, "where");
    if ((rc = add_spec(cc, event, where, field, &d.spec)))
        return rc;
    wm_cond_t *c = cc->c;
    d.scan = refs_trigger(c->specs[d.spec].where);
    uint32_t node;
    if ((rc = new_node(cc, N_DID, &node)))
        return rc;
    if (grow((void **)&c->dids, c->n_dids, &cc->cap_dids, sizeof(did_t)))
        return WM_ENOMEM;
    c->dids[c->n_dids] = d;
    c->nodes[node].aux = c->n_dids++;
    c->nodes[node].end = c->n_nodes;
    return 0;
}

static int seq_step(cc_t *cc, const wm_json_t *st, seq_t *s)
{
    static const char *const keys[] = {"event", "where", NULL};
    if (st->type != WM_JSON_OBJECT)
        return fail(cc, "a step is {\"event\": name, \"where\": condition}");
    int rc = only_keys(cc, st, keys);
    if (rc || (rc = name_of(cc, st, "event", &s->event[s->n])))
        return rc;
    const wm_json_t *where = wm_json_get(st, "where");
    if (where) {
        size_t old = path_key(cc, "where");
        rc = compile_sub(cc, where, &s->where[s->n]);
        path_pop(cc, old);
    }
    s->n++;
    return rc;
}

static int compile_seq(cc_t *cc, const wm_json_t *j)
{
    static const char *const keys[] = {"sequence", "within", "from", "to", NULL};
    int rc = only_keys(cc, j, keys);
    if (rc)
        return rc;
    wm_cond_t *c = cc->c;
    const wm_json_t *steps = wm_json_get(j, "sequence");
    size_t old = path_key(cc, "sequence");
    if (steps->type != WM_JSON_ARRAY || steps->len == 0 || steps->len > WM_COND_SEQ_STEPS_MAX)
        rc = fail(cc, "sequence needs 1..%d steps", WM_COND_SEQ_STEPS_MAX);
    if (rc == 0 && grow((void **)&c->seqs, c->n_seqs, &cc->cap_seqs, sizeof(seq_t)))
        rc = WM_ENOMEM;
    if (rc) {
        path_pop(cc, old);
        return rc;
    }
    seq_t *s = &c->seqs[c->n_seqs++]; /* counted now so that free() releases its wheres */
    memset(s, 0, sizeof *s);
    uint32_t i = 0;
    for (const wm_json_t *st = steps->u.child; st && rc == 0; st = st->next, i++) {
        size_t o2 = path_idx(cc, i);
        rc = seq_step(cc, st, s);
        path_pop(cc, o2);
    }
    path_pop(cc, old);
    if (rc || (rc = compile_window(cc, j, &s->within_ms, &s->from, &s->to, "sequence")))
        return rc;
    uint32_t node;
    if ((rc = new_node(cc, N_SEQ, &node)))
        return rc;
    c->nodes[node].aux = c->n_seqs - 1;
    c->nodes[node].end = c->n_nodes;
    return 0;
}

/* ------------------------------------------------------------ structure */

static int compile_node(cc_t *cc, const wm_json_t *j);

static int compile_group(cc_t *cc, const wm_json_t *j, const char *key)
{
    static const char *const keys_all[] = {"all", NULL};
    static const char *const keys_any[] = {"any", NULL};
    int rc = only_keys(cc, j, key[1] == 'l' ? keys_all : keys_any);
    if (rc)
        return rc;
    const wm_json_t *list = wm_json_get(j, key);
    size_t old = path_key(cc, key);
    if (list->type != WM_JSON_ARRAY || list->len == 0) {
        rc = fail(cc, "%s needs a non-empty list of conditions", key);
        path_pop(cc, old);
        return rc;
    }
    uint32_t node;
    if ((rc = new_node(cc, key[1] == 'l' ? N_ALL : N_ANY, &node))) {
        path_pop(cc, old);
        return rc;
    }
    uint32_t i = 0;
    for (const wm_json_t *e = list->u.child; e && rc == 0; e = e->next, i++) {
        size_t o2 = path_idx(cc, i);
        rc = compile_node(cc, e);
        path_pop(cc, o2);
    }
    path_pop(cc, old);
    cc->c->nodes[node].end = cc->c->n_nodes;
    return rc;
}

static int compile_not(cc_t *cc, const wm_json_t *j)
{
    static const char *const keys[] = {"not", NULL};
    int rc = only_keys(cc, j, keys);
    uint32_t node;
    if (rc || (rc = new_node(cc, N_NOT, &node)))
        return rc;
    size_t old = path_key(cc, "not");
    rc = compile_node(cc, wm_json_get(j, "not"));
    path_pop(cc, old);
    cc->c->nodes[node].end = cc->c->n_nodes;
    return rc;
}

/* The member that says what kind of condition an object is. */
static const char *const kinds[] = {"all", "any", "not", "profile", "prop", "item",
                                    "did", "sequence", "in_segment", "tag", NULL};

static const char *kind_of(cc_t *cc, const wm_json_t *j, int *rc)
{
    const char *found = NULL;
    *rc = 0;
    for (const char *const *k = kinds; *k; k++) {
        if (!wm_json_get(j, *k))
            continue;
        if (strcmp(*k, "prop") == 0 && wm_json_get(j, "item"))
            continue; /* an item predicate names the item's property with "prop" */
        if (found) {
            *rc = fail(cc, "ambiguous condition: both \"%s\" and \"%s\"", found, *k);
            return NULL;
        }
        found = *k;
    }
    if (!found)
        *rc = fail(cc, "unknown condition: expected one of all, any, not, profile, prop, item, "
                       "did, sequence, in_segment, tag");
    return found;
}

static int compile_node(cc_t *cc, const wm_json_t *j)
{
    if (!j || j->type != WM_JSON_OBJECT)
        return fail(cc, "a condition is an object");
    if (cc->depth >= WM_COND_DEPTH_MAX)
        return fail(cc, "condition nested deeper than %d", WM_COND_DEPTH_MAX);
    int rc;
    const char *k = kind_of(cc, j, &rc);
    if (!k)
        return rc;
    bool event_kind = !strcmp(k, "all") || !strcmp(k, "any") || !strcmp(k, "not") || !strcmp(k, "prop");
    if (cc->event_only && !event_kind)
        return fail(cc, "a where clause tests event properties only (all, any, not, prop), not \"%s\"", k);
    cc->depth++;
    if (!strcmp(k, "all") || !strcmp(k, "any"))
        rc = compile_group(cc, j, k);
    else if (!strcmp(k, "not"))
        rc = compile_not(cc, j);
    else if (!strcmp(k, "profile"))
        rc = compile_pred(cc, j, S_PROFILE, "profile");
    else if (!strcmp(k, "prop"))
        rc = compile_pred(cc, j, S_PROP, "prop");
    else if (!strcmp(k, "tag"))
        rc = compile_pred(cc, j, S_TAG, "tag");
    else if (!strcmp(k, "item"))
        rc = compile_item(cc, j);
    else if (!strcmp(k, "did"))
        rc = compile_did(cc, j);
    else if (!strcmp(k, "sequence"))
        rc = compile_seq(cc, j);
    else
        rc = compile_segment(cc, j);
    cc->depth--;
    return rc;
}

/* ------------------------------------------------------------ lifetime */

static int compile_into(const wm_json_t *ast, wm_cond_t **out, wm_cond_error_t *err,
                        const char *path, bool event_only, int depth)
{
    *out = NULL;
    wm_cond_t *c = wm_calloc(1, sizeof *c);
    if (!c)
        return WM_ENOMEM;
    wm_arena_init(&c->arena, 1024);
    cc_t cc;
    memset(&cc, 0, sizeof cc);
    cc.c = c;
    cc.err = err;
    cc.event_only = event_only;
    cc.depth = depth;
    snprintf(cc.path, sizeof cc.path, "%s", path);
    cc.plen = strlen(cc.path);
    wm_strmap_init(&cc.interned);
    int rc = compile_node(&cc, ast);
    wm_strmap_release(&cc.interned);
    if (rc) {
        wm_cond_free(c);
        return rc;
    }
    *out = c;
    return 0;
}

static int compile_sub(cc_t *cc, const wm_json_t *where, wm_cond_t **out)
{
    wm_cond_t *c = cc->c;
    if (grow((void **)&c->subs, c->n_subs, &cc->cap_subs, sizeof(wm_cond_t *)))
        return WM_ENOMEM;
    int rc = compile_into(where, out, cc->err, cc->path, true, cc->depth + 1);
    if (rc == 0)
        c->subs[c->n_subs++] = *out;
    return rc;
}

int wm_cond_compile(const wm_json_t *ast, wm_cond_t **out, wm_cond_error_t *err)
{
    if (err) {
        err->path[0] = '\0';
        err->msg[0] = '\0';
    }
    if (!out)
        return WM_EINVAL;
    return compile_into(ast, out, err, "$", false, 0);
}

void wm_cond_free(wm_cond_t *c)
{
    if (!c)
        return;
    for (uint32_t i = 0; i < c->n_res; i++) {
        regfree(c->res[i]);
        wm_free(c->res[i]);
    }
    for (uint32_t i = 0; i < c->n_subs; i++)
        wm_cond_free(c->subs[i]);
    wm_free(c->res);
    wm_free(c->subs);
    wm_free(c->nodes);
    wm_free(c->dids);
    wm_free(c->seqs);
    wm_free(c->lists);
    wm_free(c->specs);
    wm_arena_release(&c->arena);
    wm_free(c);
}

void wm_cond_counters(const wm_cond_t *c, const wm_counter_spec_t **specs, uint32_t *n)
{
    if (specs)
        *specs = c ? c->specs : NULL;
    if (n)
        *n = c ? c->n_specs : 0;
}

/* ---- inputs ---- */

static int deps_add(wm_arena_t *a, const char ***list, uint32_t *n, const char *name)
{
    if (!name)
        return 0;
    for (uint32_t i = 0; i < *n; i++)
        if (!strcmp((*list)[i], name))
            return 0;
    /* arrays grow by doubling inside the arena (old copies are left there) */
    if ((*n & (*n - 1)) == 0) {
        uint32_t cap = *n ? *n * 2 : 4;
        const char **grown = wm_arena_alloc(a, cap * sizeof *grown);
        if (!grown)
            return WM_ENOMEM;
        if (*n)
            memcpy(grown, *list, *n * sizeof *grown);
        *list = grown;
    }
    (*list)[(*n)++] = name;
    return 0;
}

/* in_where: c is a did or sequence where, testing a recorded event (its
 * "prop" is not the current event's). where_clock: c runs with the eval's
 * now; a did's where runs with now = the recorded event's time (buckets and
 * scans alike), so its within_last / relative before/after do not move
 * with the clock. */
static int deps_walk(const wm_cond_t *c, wm_arena_t *a, wm_cond_deps_t *d, bool in_where,
                     bool where_clock)
{
    int rc = 0;
    for (uint32_t i = 0; i < c->n_nodes && !rc; i++) {
        const cnode_t *n = &c->nodes[i];
        switch (n->kind) {
        case N_PRED:
            if (n->src == S_PROFILE || n->ref_src == S_PROFILE ||
                (n->src == S_ITEM && n->item_from == S_PROFILE))
                d->profile = true;
            if (!in_where && (n->src == S_PROP || n->ref_src == S_PROP ||
                              (n->src == S_ITEM && n->item_from == S_PROP)))
                d->event = true;
            if (n->src == S_TRIGGER || n->ref_src == S_TRIGGER)
                d->event = true;
            if (n->src == S_ITEM)
                d->items = true;
            if (where_clock && (n->op == OP_WITHIN_LAST ||
                                ((n->op == OP_BEFORE || n->op == OP_AFTER) && n->relative)))
                d->clock = true;
            if (n->src == S_TAG)
                rc = deps_add(a, &d->tags, &d->n_tags, n->name);
            break;
        case N_SEGMENT:
            rc = deps_add(a, &d->segments, &d->n_segments, n->name);
            break;
        case N_DID: {
            const did_t *dd = &c->dids[n->aux];
            const wm_counter_spec_t *spec = &c->specs[dd->spec];
            if (dd->days > 0)
                d->clock = true;
            if (dd->scan)
                d->event = true;
            rc = deps_add(a, &d->events, &d->n_events, spec->event);
            if (!rc && spec->where)
                rc = deps_walk(spec->where, a, d, true, false);
            break;
        }
        case N_SEQ: {
            const seq_t *s = &c->seqs[n->aux];
            if (s->within_ms > 0)
                d->clock = true;
            for (uint32_t k = 0; k < s->n && !rc; k++) {
                rc = deps_add(a, &d->events, &d->n_events, s->event[k]);
                if (!rc && s->where[k])
                    rc = deps_walk(s->where[k], a, d, true, true);
            }
            break;
        }
        default:
            break;
        }
    }
    return rc;
}

int wm_cond_deps(const wm_cond_t *c, wm_arena_t *a, wm_cond_deps_t *out)
{
    if (!out || !a)
        return WM_EINVAL;
    memset(out, 0, sizeof *out);
    return c ? deps_walk(c, a, out, false, true) : 0;
}

/* ---- what an added event can do ---- */

int32_t wm_cond_event_window_days(const wm_cond_t *c)
{
    if (!c)
        return 0;
    int32_t max = 0;
    for (uint32_t i = 0; i < c->n_nodes; i++) {
        const cnode_t *n = &c->nodes[i];
        if (n->kind == N_DID) {
            const did_t *d = &c->dids[n->aux];
            if (d->days <= 0 || d->scan)
                return -1; /* an absolute window or a trigger scan: any event may count */
            if (d->days > max)
                max = d->days;
        } else if (n->kind == N_SEQ) {
            const seq_t *s = &c->seqs[n->aux];
            if (s->within_ms <= 0)
                return -1;
            int32_t days = (int32_t)((s->within_ms + 86399999) / 86400000) + 1;
            if (days > max)
                max = days;
        }
    }
    return max;
}

bool wm_cond_event_monotone(const wm_cond_t *c)
{
    if (!c || !c->n_nodes)
        return false;
    /* the root is one clause, or an "all" whose children are clauses */
    uint32_t i = c->nodes[0].kind == N_ALL ? 1 : 0;
    for (; i < c->n_nodes; i = c->nodes[i].end) {
        const cnode_t *n = &c->nodes[i];
        if (n->kind == N_DID) {
            const did_t *d = &c->dids[n->aux];
            if (d->agg != AGG_COUNT || (d->op != OP_GE && d->op != OP_GT) || d->scan)
                return false;
        } else if (n->kind == N_PRED) {
            if (n->src != S_PROFILE || n->ref_src || n->op == OP_WITHIN_LAST || n->relative)
                return false;
        } else {
            return false;
        }
        if (c->nodes[0].kind != N_ALL)
            break;
    }
    return true;
}
