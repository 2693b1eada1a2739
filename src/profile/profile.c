/*
 * profile.c - profile_* and item_* operations as pure functions on JSON.
 *
 * Why pure: the partition writer applies a record to the stored profile in
 * the same LMDB transaction that stores the result, and replays the log after
 * a crash. A function of (current profile, record) -> new profile gives the
 * same result on replay and can be tested as a table without storage.
 *
 * Representation: the result is a fresh OBJECT whose member nodes are
 * shallow copies (the struct is copied, children are shared) of the members
 * of `cur` and of the record's properties. Nothing reachable from `cur` or
 * the record is modified, so a failed operation leaves no trace and the old
 * profile stays valid. Lookup is linear: profiles hold at most a few hundred
 * properties (WM_PROPERTIES_MAX bounds a record), and a hash would cost more
 * than it saves at that size.
 *
 * Keys the SDKs put into properties for routing ($project, $token,
 * $is_login_id) are envelope data, never profile properties, and are skipped.
 */
#include "waymark/profile.h"

#include <stdio.h>
#include <string.h>

#include "waymark/error.h"

static bool envelope_key(const wm_json_t *m)
{
    static const char *const keys[] = {"$project", "$token", "$is_login_id"};
    if (m->key_len == 0 || m->key[0] != '$')
        return false;
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
        if (m->key_len == strlen(keys[i]) && memcmp(m->key, keys[i], m->key_len) == 0)
            return true;
    return false;
}

static bool same_key(const wm_json_t *a, const wm_json_t *b)
{
    return a->key_len == b->key_len && memcmp(a->key, b->key, a->key_len) == 0;
}

/* Finds a member by the key of `like`; *link is the pointer that holds it. */
static wm_json_t *obj_find(wm_json_t *obj, const wm_json_t *like, wm_json_t ***link)
{
    for (wm_json_t **p = &obj->u.child; *p; p = &(*p)->next) {
        if (same_key(*p, like)) {
            if (link)
                *link = p;
            return *p;
        }
    }
    return NULL;
}

static void obj_remove(wm_json_t *obj, const wm_json_t *like)
{
    wm_json_t **link = NULL;
    wm_json_t *m = obj_find(obj, like, &link);
    if (m) {
        *link = m->next;
        obj->len--;
    }
}

/* Stores a shallow copy of `val` under `key_of`'s key, replacing an existing
 * member in place (the property keeps its position). */
static int obj_put(wm_arena_t *a, wm_json_t *obj, const wm_json_t *key_of, const wm_json_t *val)
{
    wm_json_t *n = wm_json_new(a, WM_JSON_NULL);
    if (!n)
        return WM_ENOMEM;
    *n = *val;
    n->key = key_of->key;
    n->key_len = key_of->key_len;
    wm_json_t **link = NULL;
    wm_json_t *old = obj_find(obj, key_of, &link);
    if (old) {
        n->next = old->next;
        *link = n;
        return 0;
    }
    n->next = NULL;
    wm_json_t **tail = &obj->u.child;
    while (*tail)
        tail = &(*tail)->next;
    *tail = n;
    obj->len++;
    return 0;
}

/* A new OBJECT with the members of src (NULL -> empty); duplicate keys in
 * src collapse to the last one, as wm_json_get reads them. */
static int obj_copy(wm_arena_t *a, const wm_json_t *src, wm_json_t **out)
{
    wm_json_t *o = wm_json_new(a, WM_JSON_OBJECT);
    if (!o)
        return WM_ENOMEM;
    if (src && src->type != WM_JSON_OBJECT)
        return WM_EINVAL;
    for (const wm_json_t *m = src ? src->u.child : NULL; m; m = m->next) {
        int e = obj_put(a, o, m, m);
        if (e)
            return e;
    }
    *out = o;
    return 0;
}

static int type_error(wm_rec_error_t *err, const wm_json_t *m, const char *what)
{
    if (err) {
        err->code = "type_mismatch";
        snprintf(err->field, sizeof err->field, "properties.%.*s", (int)m->key_len, m->key);
        snprintf(err->msg, sizeof err->msg, "%s", what);
    }
    return WM_ETYPE;
}

static bool is_null(const wm_json_t *v)
{
    return !v || v->type == WM_JSON_NULL;
}

/* ---- operations (each returns 0 or an error; `o` is the working copy) ---- */

static int op_set(wm_arena_t *a, wm_json_t *o, const wm_json_t *props, bool once)
{
    for (const wm_json_t *m = props->u.child; m; m = m->next) {
        if (envelope_key(m))
            continue;
        wm_json_t *old = obj_find(o, m, NULL);
        if (once && (old || is_null(m)))
            continue;
        if (is_null(m)) {
            obj_remove(o, m);
            continue;
        }
        int e = obj_put(a, o, m, m);
        if (e)
            return e;
    }
    return 0;
}

static wm_json_t *add_numbers(wm_arena_t *a, const wm_json_t *x, const wm_json_t *d)
{
    int64_t sum;
    if (x->is_int && d->is_int && !__builtin_add_overflow(x->i64, d->i64, &sum))
        return wm_json_new_int(a, sum);
    wm_json_t *n = wm_json_new(a, WM_JSON_NUMBER);
    if (n)
        n->u.num = x->u.num + d->u.num; /* a double stays a double even if integral */
    return n;
}

static int op_increment(wm_arena_t *a, wm_json_t *o, const wm_json_t *props, wm_rec_error_t *err)
{
    for (const wm_json_t *m = props->u.child; m; m = m->next) {
        if (envelope_key(m))
            continue;
        if (m->type != WM_JSON_NUMBER)
            return type_error(err, m, "profile_increment needs a number");
        const wm_json_t *old = obj_find(o, m, NULL);
        if (!is_null(old) && old->type != WM_JSON_NUMBER)
            return type_error(err, m, "profile_increment on a property that is not a number");
        const wm_json_t *v = m;
        if (!is_null(old) && !(v = add_numbers(a, old, m)))
            return WM_ENOMEM;
        int e = obj_put(a, o, m, v);
        if (e)
            return e;
    }
    return 0;
}

/* A new ARRAY with the elements of x then y (shallow copies, duplicates kept). */
static int concat(wm_arena_t *a, const wm_json_t *x, const wm_json_t *y, wm_json_t **out)
{
    wm_json_t *arr = wm_json_new(a, WM_JSON_ARRAY);
    if (!arr)
        return WM_ENOMEM;
    wm_json_t **tail = &arr->u.child;
    const wm_json_t *src[2] = {x, y};
    for (int s = 0; s < 2; s++) {
        for (const wm_json_t *c = src[s] ? src[s]->u.child : NULL; c; c = c->next) {
            wm_json_t *n = wm_json_new(a, WM_JSON_NULL);
            if (!n)
                return WM_ENOMEM;
            *n = *c;
            n->key = NULL;
            n->key_len = 0;
            n->next = NULL;
            *tail = n;
            tail = &n->next;
            arr->len++;
        }
    }
    *out = arr;
    return 0;
}

static int op_append(wm_arena_t *a, wm_json_t *o, const wm_json_t *props, wm_rec_error_t *err)
{
    for (const wm_json_t *m = props->u.child; m; m = m->next) {
        if (envelope_key(m))
            continue;
        if (m->type != WM_JSON_ARRAY)
            return type_error(err, m, "profile_append needs a list");
        const wm_json_t *old = obj_find(o, m, NULL);
        if (!is_null(old) && old->type != WM_JSON_ARRAY)
            return type_error(err, m, "profile_append on a property that is not a list");
        wm_json_t *list;
        int e = concat(a, is_null(old) ? NULL : old, m, &list);
        if (!e)
            e = obj_put(a, o, m, list);
        if (e)
            return e;
    }
    return 0;
}

static void op_unset(wm_json_t *o, const wm_json_t *props)
{
    for (const wm_json_t *m = props->u.child; m; m = m->next)
        obj_remove(o, m);
}

/* ---- public ------------------------------------------------------------ */

static const wm_json_t empty_object = {.type = WM_JSON_OBJECT};

static const wm_json_t *props_of(const wm_record_t *rec)
{
    const wm_json_t *p = rec->properties;
    return p && p->type == WM_JSON_OBJECT ? p : &empty_object;
}

int wm_profile_apply(wm_arena_t *a, const wm_json_t *cur, const wm_record_t *rec,
                     wm_json_t **out, wm_rec_error_t *err)
{
    *out = NULL;
    if (rec->type == WM_REC_PROFILE_DELETE)
        return 0;
    if (rec->type < WM_REC_PROFILE_SET || rec->type > WM_REC_PROFILE_UNSET)
        return WM_EINVAL;
    wm_json_t *o;
    int e = obj_copy(a, cur, &o);
    if (e)
        return e;
    const wm_json_t *props = props_of(rec);
    switch (rec->type) {
    case WM_REC_PROFILE_SET: e = op_set(a, o, props, false); break;
    case WM_REC_PROFILE_SET_ONCE: e = op_set(a, o, props, true); break;
    case WM_REC_PROFILE_INCREMENT: e = op_increment(a, o, props, err); break;
    case WM_REC_PROFILE_APPEND: e = op_append(a, o, props, err); break;
    default: op_unset(o, props); break;
    }
    if (!e)
        *out = o;
    return e;
}

int wm_profile_merge(wm_arena_t *a, const wm_json_t *into, const wm_json_t *from, wm_json_t **out)
{
    *out = NULL;
    if (!into && !from)
        return 0;
    wm_json_t *o;
    int e = obj_copy(a, into, &o);
    if (e)
        return e;
    if (from && from->type != WM_JSON_OBJECT)
        return WM_EINVAL;
    for (const wm_json_t *m = from ? from->u.child : NULL; m && !e; m = m->next)
        if (!obj_find(o, m, NULL))
            e = obj_put(a, o, m, m);
    if (!e)
        *out = o;
    return e;
}

int wm_item_apply(wm_arena_t *a, const wm_json_t *cur, const wm_record_t *rec, wm_json_t **out)
{
    *out = NULL;
    if (rec->type == WM_REC_ITEM_DELETE)
        return 0;
    if (rec->type != WM_REC_ITEM_SET)
        return WM_EINVAL;
    wm_json_t *o;
    int e = obj_copy(a, cur, &o);
    if (!e)
        e = op_set(a, o, props_of(rec), false);
    if (!e)
        *out = o;
    return e;
}
