/*
 * test_identity.c - ID-Mapping rules (docs/identity.md) with concrete user ids.
 *
 * Each test opens a fresh LMDB env in a temporary directory and builds
 * wm_record_t values by hand, so the rules are checked independently of the
 * ingest decoder.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "waymark/error.h"
#include "waymark/identity.h"
#include "waymark/profile.h"

#define LOGIN WM_ID_KEY_LOGIN
#define ANON WM_ID_KEY_ANON
#define COOKIE "$identity_cookie_id"
#define MOBILE "$identity_mobile"
#define ANDROID "$identity_android_id"

typedef struct fx {
    char dir[64];
    uint32_t cache;             /* resolution cache entries (0: none) */
    wm_identity_t *id;
    wm_identity_kv_t kv[8][8]; /* identity storage for records built by helpers */
    int nkv;
} fx_t;

static int setup_with(void **state, uint32_t cache)
{
    fx_t *f = calloc(1, sizeof *f);
    strcpy(f->dir, "/tmp/wm_idtest_XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    f->cache = cache;
    wm_identity_opts_t o = {.dir = f->dir, .map_bytes = 64u << 20, .nosync = true,
                            .cache_entries = cache};
    assert_int_equal(wm_identity_open(&o, &f->id), 0);
    *state = f;
    return 0;
}

static int setup(void **state) { return setup_with(state, 0); }
/* every rule again with the resolution cache, roomy and tiny (emptied all the time) */
static int setup_cached(void **state) { return setup_with(state, 1024); }
static int setup_tiny(void **state) { return setup_with(state, 3); }

static int teardown(void **state)
{
    fx_t *f = *state;
    wm_identity_close(f->id);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", f->dir);
    assert_int_equal(system(cmd), 0);
    free(f);
    return 0;
}

static void reopen(fx_t *f)
{
    wm_identity_close(f->id);
    wm_identity_opts_t o = {.dir = f->dir, .map_bytes = 64u << 20, .cache_entries = f->cache};
    assert_int_equal(wm_identity_open(&o, &f->id), 0);
}

/* IDM 2 record: distinct_id (+ $is_login_id) and optional envelope ids. */
static wm_record_t idm2(wm_rec_type_t type, const char *distinct, bool is_login, const char *login,
                        const char *anon)
{
    return (wm_record_t){.type = type, .event = type == WM_REC_TRACK ? "ViewFund" : NULL,
                         .distinct_id = distinct, .is_login_id = is_login, .login_id = login,
                         .anonymous_id = anon, .project = "default", .time_ms = 1700000000000};
}

static wm_record_t signup(const char *login, const char *original)
{
    wm_record_t r = idm2(WM_REC_TRACK_SIGNUP, login, false, NULL, NULL);
    r.event = "$SignUp";
    r.original_id = original;
    return r;
}

/* IDM 3 record from key/value pairs terminated by NULL. */
static wm_record_t idm3(fx_t *f, wm_rec_type_t type, ...)
{
    wm_identity_kv_t *kv = f->kv[f->nkv++ % 8];
    uint32_t n = 0;
    va_list ap;
    va_start(ap, type);
    for (const char *k; (k = va_arg(ap, const char *)) != NULL; n++)
        kv[n] = (wm_identity_kv_t){k, va_arg(ap, const char *)};
    va_end(ap);
    return (wm_record_t){.type = type, .event = "x", .distinct_id = kv[0].value,
                         .project = "default", .time_ms = 1700000000000, .identities = kv,
                         .n_identities = n};
}

/* Resolves one record; returns the user id (0 when rejected) and the error code. */
static uint64_t resolve(fx_t *f, wm_record_t r, wm_id_result_t *res_out, const char **code)
{
    wm_id_result_t res;
    wm_rec_error_t err = {0};
    assert_int_equal(wm_identity_resolve_batch(f->id, &r, 1, &res, &err), 0);
    if (res_out)
        *res_out = res;
    if (code)
        *code = err.code;
    else
        assert_null(err.code);
    return res.user_id;
}

static uint64_t owner(fx_t *f, const char *key, const char *value)
{
    uint64_t u = 0;
    int rc = wm_identity_lookup(f->id, "default", key, value, &u);
    assert_true(rc == 0 || rc == WM_ENOTFOUND);
    return rc == 0 ? u : 0;
}

static int count_cb(void *ctx, const char *key, const char *value)
{
    (void)key;
    (void)value;
    ++*(int *)ctx;
    return 0;
}

static int n_identities(fx_t *f, uint64_t user)
{
    int n = 0;
    assert_int_equal(wm_identity_list(f->id, "default", user, count_cb, &n), 0);
    return n;
}

/* ---- tests ------------------------------------------------------------ */

static void test_new_and_known_users(void **state)
{
    fx_t *f = *state;
    wm_id_result_t res;
    assert_int_equal(resolve(f, idm2(WM_REC_TRACK, "dev-a", false, NULL, NULL), &res, NULL), 1);
    assert_true(res.created);
    assert_int_equal(resolve(f, idm2(WM_REC_TRACK, "dev-b", false, NULL, NULL), &res, NULL), 2);
    assert_int_equal(resolve(f, idm2(WM_REC_TRACK, "dev-a", false, NULL, NULL), &res, NULL), 1);
    assert_false(res.created);
    assert_int_equal(res.n_merges, 0);
    assert_int_equal(owner(f, ANON, "dev-a"), 1);
    assert_int_equal(owner(f, LOGIN, "dev-a"), 0);
    /* $is_login_id makes distinct_id a login id: a different identity, a new user */
    assert_int_equal(resolve(f, idm2(WM_REC_TRACK, "dev-a", true, NULL, NULL), NULL, NULL), 3);
    assert_int_equal(owner(f, LOGIN, "dev-a"), 3);
}

static void test_login_id_equal_to_distinct_is_login(void **state)
{
    fx_t *f = *state;
    /* login_id == distinct_id: a logged-in client event; anonymous_id rides along */
    assert_int_equal(resolve(f, idm2(WM_REC_TRACK, "u100", false, "u100", "dev-1"), NULL, NULL), 1);
    assert_int_equal(owner(f, LOGIN, "u100"), 1);
    assert_int_equal(owner(f, ANON, "dev-1"), 1);
    assert_int_equal(owner(f, ANON, "u100"), 0);
    assert_int_equal(n_identities(f, 1), 2);
}

/* sa-sdk-node sends profile_increment / profile_append without
 * $is_login_id: a bare distinct_id that is a known login id is that user. */
static void test_bare_distinct_id_of_known_login(void **state)
{
    fx_t *f = *state;
    assert_int_equal(resolve(f, idm2(WM_REC_PROFILE_SET, "u-node-1", true, NULL, NULL), NULL, NULL), 1);
    wm_id_result_t res;
    assert_int_equal(resolve(f, idm2(WM_REC_PROFILE_INCREMENT, "u-node-1", false, NULL, NULL), &res, NULL), 1);
    assert_false(res.created);
    assert_int_equal(owner(f, ANON, "u-node-1"), 0);
    assert_int_equal(n_identities(f, 1), 1);
    /* an unknown bare id is still an anonymous id of a new user */
    assert_int_equal(resolve(f, idm2(WM_REC_TRACK, "dev-z", false, NULL, NULL), NULL, NULL), 2);
    assert_int_equal(owner(f, ANON, "dev-z"), 2);
}

static void test_implicit_bind(void **state)
{
    fx_t *f = *state;
    assert_int_equal(resolve(f, idm3(f, WM_REC_TRACK, COOKIE, "c1", NULL), NULL, NULL), 1);
    wm_id_result_t res;
    assert_int_equal(resolve(f, idm3(f, WM_REC_TRACK, COOKIE, "c1", MOBILE, "13800000000", NULL),
                             &res, NULL), 1);
    assert_false(res.created);
    assert_int_equal(owner(f, MOBILE, "13800000000"), 1);
    assert_int_equal(n_identities(f, 1), 2);
}

static void test_signup_attaches_login_without_merge(void **state)
{
    fx_t *f = *state;
    assert_int_equal(resolve(f, idm2(WM_REC_TRACK, "anon-1", false, NULL, NULL), NULL, NULL), 1);
    wm_id_result_t res;
    assert_int_equal(resolve(f, signup("alice", "anon-1"), &res, NULL), 1);
    assert_int_equal(res.n_merges, 0);
    assert_false(res.created);
    assert_int_equal(owner(f, LOGIN, "alice"), 1);
    assert_int_equal(resolve(f, idm2(WM_REC_TRACK, "alice", true, NULL, NULL), NULL, NULL), 1);
}

static int first_merge_cb(void *ctx, const wm_id_merge_entry_t *m)
{
    wm_id_merge_entry_t *out = ctx;
    *out = *m;
    out->event = strdup(m->event);
    out->distinct_id = strdup(m->distinct_id);
    return 1; /* stop after the first */
}

static wm_json_t *parse(wm_arena_t *a, const char *s)
{
    wm_json_t *v = NULL;
    assert_int_equal(wm_json_parse(a, s, strlen(s), &v, NULL), 0);
    return v;
}

static void test_anonymous_browse_then_signup_merges(void **state)
{
    fx_t *f = *state;
    /* user 1: the customer logged in on another device earlier */
    assert_int_equal(resolve(f, idm2(WM_REC_TRACK, "bob", true, NULL, NULL), NULL, NULL), 1);
    /* user 2: anonymous browsing on a new phone */
    assert_int_equal(resolve(f, idm2(WM_REC_TRACK, "phone-9", false, NULL, NULL), NULL, NULL), 2);
    wm_id_result_t res;
    wm_record_t su = signup("bob", "phone-9");
    su.time_ms = 1700000123000;
    assert_int_equal(resolve(f, su, &res, NULL), 1);
    assert_int_equal(res.n_merges, 1);
    assert_int_equal(res.merges[0].from_user, 2);
    assert_int_equal(res.merges[0].into_user, 1);
    assert_int_equal(owner(f, ANON, "phone-9"), 1);
    assert_int_equal(n_identities(f, 1), 2);
    assert_int_equal(n_identities(f, 2), 0);
    uint64_t cur = 0;
    assert_int_equal(wm_identity_current_user(f->id, "default", 2, &cur), 0);
    assert_int_equal(cur, 1);
    assert_int_equal(wm_identity_current_user(f->id, "default", 1, &cur), 0);
    assert_int_equal(cur, 1);

    wm_id_merge_entry_t m = {0};
    assert_int_equal(wm_identity_merges_list(f->id, "default", 1, first_merge_cb, &m), 0);
    assert_int_equal(m.from_user, 2);
    assert_int_equal(m.into_user, 1);
    assert_int_equal(m.time_ms, 1700000123000);
    assert_string_equal(m.event, "$SignUp");
    assert_string_equal(m.distinct_id, "bob");
    free((char *)m.event);
    free((char *)m.distinct_id);

    /* the partition folds the anonymous profile into the known one */
    wm_arena_t a;
    wm_arena_init(&a, 0);
    wm_json_t *into = parse(&a, "{\"name\":\"Bob\",\"city\":\"Beijing\"}");
    wm_json_t *from = parse(&a, "{\"city\":\"Shanghai\",\"utm_source\":\"ad\"}");
    wm_json_t *out = NULL;
    assert_int_equal(wm_profile_merge(&a, into, from, &out), 0);
    wm_buf_t b;
    wm_buf_init(&b, 0);
    wm_json_write(&b, out);
    assert_string_equal(b.data, "{\"name\":\"Bob\",\"city\":\"Beijing\",\"utm_source\":\"ad\"}");
    wm_buf_release(&b);
    wm_arena_release(&a);
}

static void test_two_devices_merge_into_one_login(void **state)
{
    fx_t *f = *state;
    assert_int_equal(resolve(f, idm2(WM_REC_TRACK, "ipad", false, NULL, NULL), NULL, NULL), 1);
    assert_int_equal(resolve(f, idm2(WM_REC_TRACK, "pixel", false, NULL, NULL), NULL, NULL), 2);
    wm_id_result_t res;
    /* logged-in event from the iPad: user 1 adopts the login id */
    assert_int_equal(resolve(f, idm2(WM_REC_TRACK, "carol", true, "carol", "ipad"), &res, NULL), 1);
    assert_int_equal(res.n_merges, 0);
    /* logged-in event from the Pixel: user 2 (no login id) folds into 1 */
    assert_int_equal(resolve(f, idm2(WM_REC_TRACK, "carol", true, "carol", "pixel"), &res, NULL), 1);
    assert_int_equal(res.n_merges, 1);
    assert_int_equal(res.merges[0].from_user, 2);
    assert_int_equal(owner(f, ANON, "pixel"), 1);
    assert_int_equal(n_identities(f, 1), 3);
    uint64_t u = 0;
    assert_int_equal(wm_identity_lookup_distinct(f->id, "default", "pixel", &u), 0);
    assert_int_equal(u, 1);
}

static void test_login_owned_by_one_user(void **state)
{
    fx_t *f = *state;
    const char *code = NULL;
    /* user 1: dave on shared tablet */
    assert_int_equal(resolve(f, idm2(WM_REC_TRACK, "dave", true, "dave", "tablet"), NULL, NULL), 1);
    /* erin logs in on the same tablet: her login is new, the tablet belongs to a
     * user with another login, so erin is a new user and the tablet stays */
    wm_id_result_t res;
    assert_int_equal(resolve(f, idm2(WM_REC_TRACK, "erin", true, "erin", "tablet"), &res, NULL), 2);
    assert_true(res.created);
    assert_int_equal(owner(f, ANON, "tablet"), 1);
    /* one-to-one: a signup linking the tablet to erin is ignored */
    assert_int_equal(resolve(f, signup("erin", "tablet"), &res, NULL), 2);
    assert_int_equal(res.n_merges, 0);
    assert_int_equal(owner(f, ANON, "tablet"), 1);
    /* a record naming dave's login with erin's mobile: dave's user, no merge */
    assert_int_equal(resolve(f, idm3(f, WM_REC_TRACK, MOBILE, "139", LOGIN, "erin", NULL), NULL,
                             NULL), 2);
    assert_int_equal(resolve(f, idm3(f, WM_REC_TRACK, LOGIN, "dave", MOBILE, "139", NULL), &res,
                             NULL), 1);
    assert_int_equal(res.n_merges, 0);
    assert_int_equal(owner(f, MOBILE, "139"), 2);
    assert_int_equal(owner(f, LOGIN, "dave"), 1);
    assert_int_equal(owner(f, LOGIN, "erin"), 2);
    /* two login ids in one record */
    assert_int_equal(resolve(f, idm2(WM_REC_TRACK, "dave", true, "erin", NULL), NULL, &code), 0);
    assert_string_equal(code, "conflicting_login_id");
}

static void test_bind_unions_and_rejects_two_logins(void **state)
{
    fx_t *f = *state;
    const char *code = NULL;
    assert_int_equal(resolve(f, idm3(f, WM_REC_TRACK, COOKIE, "c1", NULL), NULL, NULL), 1);
    assert_int_equal(resolve(f, idm3(f, WM_REC_TRACK, ANDROID, "a1", NULL), NULL, NULL), 2);
    wm_id_result_t res;
    assert_int_equal(resolve(f, idm3(f, WM_REC_TRACK_ID_BIND, COOKIE, "c1", ANDROID, "a1", NULL),
                             &res, NULL), 1);
    assert_int_equal(res.n_merges, 1);
    assert_int_equal(res.merges[0].from_user, 2);
    assert_int_equal(owner(f, ANDROID, "a1"), 1);

    assert_int_equal(resolve(f, idm3(f, WM_REC_TRACK_ID_BIND, COOKIE, "c1", NULL), NULL, &code), 0);
    assert_string_equal(code, "invalid_bind");

    wm_id_result_t r2;
    wm_rec_error_t err = {0};
    wm_record_t r = idm3(f, WM_REC_TRACK_ID_BIND, LOGIN, "x", LOGIN, "y", COOKIE, "c9", NULL);
    assert_int_equal(wm_identity_resolve_batch(f->id, &r, 1, &r2, &err), 0);
    assert_string_equal(err.code, "conflicting_login_id");
    assert_string_equal(err.field, "identities.$identity_login_id");
    assert_int_equal(r2.user_id, 0);
    assert_int_equal(owner(f, LOGIN, "x"), 0); /* rejected record changed nothing */
    assert_int_equal(owner(f, COOKIE, "c9"), 0);
}

static void test_unbind_then_rebind_elsewhere(void **state)
{
    fx_t *f = *state;
    const char *code = NULL;
    assert_int_equal(resolve(f, idm3(f, WM_REC_TRACK, COOKIE, "c1", MOBILE, "m1", NULL), NULL,
                             NULL), 1);
    assert_int_equal(resolve(f, idm3(f, WM_REC_TRACK, COOKIE, "c2", NULL), NULL, NULL), 2);
    assert_int_equal(resolve(f, idm3(f, WM_REC_TRACK_ID_UNBIND, MOBILE, "m1", NULL), NULL, NULL), 1);
    assert_int_equal(owner(f, MOBILE, "m1"), 0);
    assert_int_equal(owner(f, COOKIE, "c1"), 1);
    assert_int_equal(n_identities(f, 1), 1);
    /* unbinding again: not mapped */
    assert_int_equal(resolve(f, idm3(f, WM_REC_TRACK_ID_UNBIND, MOBILE, "m1", NULL), NULL, &code),
                     0);
    assert_string_equal(code, "unknown_identity");
    /* the only identity of a user cannot be unbound */
    assert_int_equal(resolve(f, idm3(f, WM_REC_TRACK_ID_UNBIND, COOKIE, "c1", NULL), NULL, &code),
                     0);
    assert_string_equal(code, "last_identity");
    assert_int_equal(owner(f, COOKIE, "c1"), 1);
    assert_int_equal(resolve(f, idm3(f, WM_REC_TRACK_ID_UNBIND, COOKIE, "c1", MOBILE, "m1", NULL),
                             NULL, &code), 0);
    assert_string_equal(code, "invalid_unbind");
    /* the freed mobile now joins user 2 */
    assert_int_equal(resolve(f, idm3(f, WM_REC_TRACK_ID_BIND, COOKIE, "c2", MOBILE, "m1", NULL),
                             NULL, NULL), 2);
    assert_int_equal(owner(f, MOBILE, "m1"), 2);
    /* and a login id can be unbound, freeing the user for another login */
    assert_int_equal(resolve(f, idm3(f, WM_REC_TRACK, COOKIE, "c2", LOGIN, "frank", NULL), NULL,
                             NULL), 2);
    assert_int_equal(resolve(f, idm3(f, WM_REC_TRACK_ID_UNBIND, LOGIN, "frank", NULL), NULL, NULL),
                     2);
    assert_int_equal(resolve(f, idm3(f, WM_REC_TRACK, COOKIE, "c2", LOGIN, "gina", NULL), NULL,
                             NULL), 2);
    assert_int_equal(resolve(f, idm3(f, WM_REC_TRACK, LOGIN, "frank", NULL), NULL, NULL), 3);
}

static void test_unknown_key_rejected(void **state)
{
    fx_t *f = *state;
    wm_id_result_t res;
    wm_rec_error_t err = {0};
    wm_record_t r = idm3(f, WM_REC_TRACK, COOKIE, "c1", "$identity_fax", "0101", NULL);
    assert_int_equal(wm_identity_resolve_batch(f->id, &r, 1, &res, &err), 0);
    assert_string_equal(err.code, "unknown_identity_key");
    assert_string_equal(err.field, "identities.$identity_fax");
    assert_int_equal(res.user_id, 0);
    assert_int_equal(owner(f, COOKIE, "c1"), 0); /* nothing applied */

    assert_int_equal(wm_identity_define_key(f->id, "default", "$identity_fax"), 0);
    assert_int_equal(wm_identity_define_key(f->id, "default", "bad key"), WM_EINVAL);
    assert_int_equal(wm_identity_define_key(f->id, "default", MOBILE), 0);
    assert_int_equal(resolve(f, r, NULL, NULL), 1);
    assert_int_equal(owner(f, "$identity_fax", "0101"), 1);
    /* defined per project */
    r.project = "brokerage";
    memset(&err, 0, sizeof err);
    assert_int_equal(wm_identity_resolve_batch(f->id, &r, 1, &res, &err), 0);
    assert_string_equal(err.code, "unknown_identity_key");
}

static void test_projects_are_separate(void **state)
{
    fx_t *f = *state;
    wm_record_t r = idm2(WM_REC_TRACK, "same", false, NULL, NULL);
    assert_int_equal(resolve(f, r, NULL, NULL), 1);
    r.project = "bank";
    assert_int_equal(resolve(f, r, NULL, NULL), 2);
    r.project = NULL; /* -> "default" */
    assert_int_equal(resolve(f, r, NULL, NULL), 1);
}

static void test_batch_sees_earlier_records(void **state)
{
    fx_t *f = *state;
    wm_record_t recs[7] = {
        idm2(WM_REC_TRACK, "anon-7", false, NULL, NULL),         /* new user 1 */
        signup("hank", "anon-7"),                                /* login attached to 1 */
        idm3(f, WM_REC_TRACK, "$identity_nope", "v", NULL),      /* rejected */
        idm2(WM_REC_PROFILE_SET, "hank", true, NULL, NULL),      /* 1 */
        {.type = WM_REC_ITEM_SET, .item_type = "fund", .item_id = "F1", .project = "default"},
        idm2(WM_REC_TRACK, "pre-rejected", false, NULL, NULL),   /* skipped */
        idm2(WM_REC_TRACK, "anon-8", false, "hank", NULL),       /* 1: anon-8 bound to hank */
    };
    wm_id_result_t res[7];
    wm_rec_error_t errs[7] = {0};
    errs[5].code = "invalid_name";
    assert_int_equal(wm_identity_resolve_batch(f->id, recs, 7, res, errs), 0);
    assert_int_equal(res[0].user_id, 1);
    assert_true(res[0].created);
    assert_int_equal(res[1].user_id, 1);
    assert_int_equal(res[1].n_merges, 0);
    assert_string_equal(errs[2].code, "unknown_identity_key");
    assert_int_equal(res[2].user_id, 0);
    assert_int_equal(res[3].user_id, 1);
    assert_int_equal(res[4].user_id, 0);
    assert_null(errs[4].code);
    assert_int_equal(res[5].user_id, 0);
    assert_string_equal(errs[5].code, "invalid_name");
    assert_int_equal(owner(f, ANON, "pre-rejected"), 0);
    assert_int_equal(res[6].user_id, 1);
    assert_int_equal(owner(f, ANON, "anon-8"), 1);
}

static void test_reopen_persists(void **state)
{
    fx_t *f = *state;
    assert_int_equal(wm_identity_define_key(f->id, "default", "policy_no"), 0);
    assert_int_equal(resolve(f, idm2(WM_REC_TRACK, "ivan", true, NULL, NULL), NULL, NULL), 1);
    assert_int_equal(resolve(f, idm2(WM_REC_TRACK, "laptop", false, NULL, NULL), NULL, NULL), 2);
    assert_int_equal(resolve(f, signup("ivan", "laptop"), NULL, NULL), 1);
    assert_int_equal(wm_identity_sync(f->id), 0);
    reopen(f);
    assert_int_equal(owner(f, LOGIN, "ivan"), 1);
    assert_int_equal(owner(f, ANON, "laptop"), 1);
    wm_id_merge_entry_t m = {0};
    assert_int_equal(wm_identity_merges_list(f->id, "default", 0, first_merge_cb, &m), 0);
    assert_int_equal(m.from_user, 2);
    assert_int_equal(m.into_user, 1);
    free((char *)m.event);
    free((char *)m.distinct_id);
    /* ids continue after the last allocated one, custom key still defined */
    assert_int_equal(resolve(f, idm3(f, WM_REC_TRACK, "policy_no", "P-1", NULL), NULL, NULL), 3);
    wm_identity_stats_t st;
    assert_int_equal(wm_identity_stats(f->id, &st), 0);
    assert_int_equal(st.identities, 3);
    assert_int_equal(st.users_allocated, 3);
    assert_int_equal(st.merges, 1);
}

static void test_lookup_distinct(void **state)
{
    fx_t *f = *state;
    uint64_t u = 0;
    assert_int_equal(resolve(f, idm2(WM_REC_TRACK, "jack", true, NULL, NULL), NULL, NULL), 1);
    assert_int_equal(resolve(f, idm2(WM_REC_TRACK, "anon-j", false, NULL, NULL), NULL, NULL), 2);
    assert_int_equal(resolve(f, idm3(f, WM_REC_TRACK, COOKIE, "ck", NULL), NULL, NULL), 3);
    assert_int_equal(resolve(f, idm3(f, WM_REC_TRACK, MOBILE, "135", NULL), NULL, NULL), 4);
    assert_int_equal(wm_identity_lookup_distinct(f->id, "default", "jack", &u), 0);
    assert_int_equal(u, 1);
    assert_int_equal(wm_identity_lookup_distinct(f->id, "default", "anon-j", &u), 0);
    assert_int_equal(u, 2);
    assert_int_equal(wm_identity_lookup_distinct(f->id, "default", "ck", &u), 0);
    assert_int_equal(u, 3);
    assert_int_equal(wm_identity_lookup_distinct(f->id, "default", "$identity_mobile+135", &u), 0);
    assert_int_equal(u, 4);
    assert_int_equal(wm_identity_lookup_distinct(f->id, "default", "135", &u), WM_ENOTFOUND);
    assert_int_equal(wm_identity_lookup_distinct(f->id, "other", "jack", &u), WM_ENOTFOUND);
}

static void test_signup_new_pair_and_merge_audit_all(void **state)
{
    fx_t *f = *state;
    wm_id_result_t res;
    /* neither id known: one new user with both */
    assert_int_equal(resolve(f, signup("kate", "k-dev"), &res, NULL), 1);
    assert_true(res.created);
    assert_int_equal(n_identities(f, 1), 2);
    /* anonymous id new, login known: it simply joins */
    assert_int_equal(resolve(f, signup("kate", "k-dev2"), &res, NULL), 1);
    assert_int_equal(owner(f, ANON, "k-dev2"), 1);
    /* profile records resolve like track: a login-carrying profile_set merges too */
    assert_int_equal(resolve(f, idm2(WM_REC_TRACK, "k-dev3", false, NULL, NULL), NULL, NULL), 2);
    wm_record_t p = idm2(WM_REC_PROFILE_SET, "kate", true, NULL, "k-dev3");
    assert_int_equal(resolve(f, p, &res, NULL), 1);
    assert_int_equal(res.n_merges, 1);
    wm_id_merge_entry_t m = {0};
    assert_int_equal(wm_identity_merges_list(f->id, "default", 0, first_merge_cb, &m), 0);
    assert_string_equal(m.event, "profile_set");
    free((char *)m.event);
    free((char *)m.distinct_id);
}

/* ---- the resolution cache --------------------------------------------- */

static uint32_t lcg(uint32_t *s)
{
    *s = *s * 1103515245u + 12345u;
    return *s >> 8;
}

/* Random records over a small id space (merges, binds, unbinds, logins,
 * rejections) resolved by an uncached and a cached env, batch by batch:
 * every result and error must be the same, and the cache must be used. */
static void cache_matches_uncached(uint32_t cache, uint32_t seed)
{
    fx_t *plain, *cached;
    void *st;
    setup_with(&st, 0);
    plain = st;
    setup_with(&st, cache);
    cached = st;
    enum { BATCHES = 120, PER = 16 };
    static char vals[BATCHES * PER][4][16];
    static wm_identity_kv_t kvs[BATCHES * PER][4];
    uint32_t rnd = seed;
    static const char *const keys[] = {LOGIN, COOKIE, MOBILE, ANON};
    for (int b = 0; b < BATCHES; b++) {
        wm_record_t recs[PER];
        for (int i = 0; i < PER; i++) {
            int n = b * PER + i;
            for (int j = 0; j < 4; j++)
                snprintf(vals[n][j], sizeof vals[n][j], "%c%u", "lcma"[j], lcg(&rnd) % 12);
            uint32_t kind = lcg(&rnd) % 10;
            if (kind < 3) { /* IDM 2 browse, maybe logged in */
                recs[i] = idm2(WM_REC_TRACK, vals[n][kind == 0 ? 0 : 3], kind == 0, NULL,
                               kind == 2 ? vals[n][3] : NULL);
                if (kind == 2)
                    recs[i].distinct_id = vals[n][1];
            } else if (kind == 3) {
                recs[i] = signup(vals[n][0], vals[n][3]);
            } else { /* IDM 3: 1-3 identities, bind or unbind now and then */
                uint32_t k = 1 + lcg(&rnd) % 3, first = lcg(&rnd) % 4;
                for (uint32_t j = 0; j < k; j++) {
                    uint32_t kk = (first + j) % 4;
                    kvs[n][j] = (wm_identity_kv_t){keys[kk], vals[n][kk]};
                }
                wm_rec_type_t t = kind == 8 ? WM_REC_TRACK_ID_BIND
                                  : kind == 9 ? WM_REC_TRACK_ID_UNBIND : WM_REC_TRACK;
                recs[i] = (wm_record_t){.type = t, .event = "x", .distinct_id = kvs[n][0].value,
                                        .project = "default", .time_ms = 1700000000000,
                                        .identities = kvs[n], .n_identities = k};
            }
        }
        wm_id_result_t r1[PER], r2[PER];
        wm_rec_error_t e1[PER], e2[PER];
        memset(e1, 0, sizeof e1);
        memset(e2, 0, sizeof e2);
        assert_int_equal(wm_identity_resolve_batch(plain->id, recs, PER, r1, e1), 0);
        assert_int_equal(wm_identity_resolve_batch(cached->id, recs, PER, r2, e2), 0);
        for (int i = 0; i < PER; i++) {
            assert_int_equal(r1[i].user_id, r2[i].user_id);
            assert_int_equal(r1[i].created, r2[i].created);
            assert_int_equal(r1[i].n_merges, r2[i].n_merges);
            for (uint32_t m = 0; m < r1[i].n_merges; m++) {
                assert_int_equal(r1[i].merges[m].from_user, r2[i].merges[m].from_user);
                assert_int_equal(r1[i].merges[m].into_user, r2[i].merges[m].into_user);
            }
            assert_true((e1[i].code == NULL) == (e2[i].code == NULL));
            if (e1[i].code) {
                assert_string_equal(e1[i].code, e2[i].code);
                assert_string_equal(e1[i].field, e2[i].field);
            }
        }
    }
    /* and the stored index is the same */
    for (uint32_t v = 0; v < 12; v++)
        for (int j = 0; j < 4; j++) {
            char val[16];
            snprintf(val, sizeof val, "%c%u", "lcma"[j], v);
            assert_int_equal(owner(plain, keys[j], val), owner(cached, keys[j], val));
        }
    uint64_t hits, misses;
    uint32_t entries;
    wm_identity_cache_stats(cached->id, &hits, &misses, &entries);
    assert_true(hits > 0);
    assert_true(entries <= cache);
    if (cache >= 1024)
        assert_true(hits > misses); /* 48 identities, thousands of lookups */
    wm_identity_cache_stats(plain->id, &hits, &misses, &entries);
    assert_int_equal(hits + entries, 0);
    st = plain;
    teardown(&st);
    st = cached;
    teardown(&st);
}

static void test_cache_matches_uncached(void **state)
{
    (void)state;
    for (uint32_t seed = 1; seed <= 6; seed++) {
        cache_matches_uncached(1024, seed);
        cache_matches_uncached(5, seed);
    }
}

/* A batch that fails after writing (map full) is aborted: what it cached
 * must go with it, or a later record would be routed to a binding that
 * was never stored. */
static void test_cache_emptied_by_aborted_batch(void **state)
{
    (void)state;
    char dir[64];
    strcpy(dir, "/tmp/wm_idtest_XXXXXX");
    assert_non_null(mkdtemp(dir));
    wm_identity_t *id;
    wm_identity_opts_t o = {.dir = dir, .map_bytes = 1u << 20, .nosync = true,
                            .cache_entries = 1u << 16};
    assert_int_equal(wm_identity_open(&o, &id), 0);
    wm_identity_kv_t a[1] = {{COOKIE, "c-a"}};
    wm_record_t r = {.type = WM_REC_TRACK, .event = "x", .distinct_id = "c-a",
                     .project = "default", .time_ms = 1700000000000, .identities = a,
                     .n_identities = 1};
    wm_id_result_t res;
    wm_rec_error_t err = {0};
    assert_int_equal(wm_identity_resolve_batch(id, &r, 1, &res, &err), 0);
    assert_int_equal(res.user_id, 1);

    enum { N = 40000 };
    wm_record_t *recs = calloc(N, sizeof *recs);
    wm_identity_kv_t(*kv)[2] = calloc(N, sizeof *kv);
    char(*vals)[24] = calloc(N, sizeof *vals);
    kv[0][0] = (wm_identity_kv_t){COOKIE, "c-a"};
    kv[0][1] = (wm_identity_kv_t){MOBILE, "m-bound"}; /* bound to user 1, then lost */
    recs[0] = (wm_record_t){.type = WM_REC_TRACK_ID_BIND, .event = "x", .distinct_id = "c-a",
                            .project = "default", .time_ms = 1700000000000, .identities = kv[0],
                            .n_identities = 2};
    for (int i = 1; i < N; i++) {
        snprintf(vals[i], sizeof vals[i], "fill-%08d-xxxxxxxx", i);
        kv[i][0] = (wm_identity_kv_t){COOKIE, vals[i]};
        recs[i] = (wm_record_t){.type = WM_REC_TRACK, .event = "x", .distinct_id = vals[i],
                                .project = "default", .time_ms = 1700000000000,
                                .identities = kv[i], .n_identities = 1};
    }
    wm_id_result_t *rs = calloc(N, sizeof *rs);
    wm_rec_error_t *es = calloc(N, sizeof *es);
    assert_int_equal(wm_identity_resolve_batch(id, recs, N, rs, es), WM_ELIMIT);
    uint64_t u = 0;
    assert_int_equal(wm_identity_lookup(id, "default", MOBILE, "m-bound", &u), WM_ENOTFOUND);
    /* the lost binding does not resolve from memory: the mobile is a new user */
    wm_identity_kv_t m[1] = {{MOBILE, "m-bound"}};
    r.identities = m;
    r.distinct_id = "m-bound";
    memset(&err, 0, sizeof err);
    assert_int_equal(wm_identity_resolve_batch(id, &r, 1, &res, &err), 0);
    assert_int_equal(res.user_id, 2);
    assert_true(res.created);
    wm_identity_close(id);
    free(recs);
    free(kv);
    free(vals);
    free(rs);
    free(es);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
}

int main(void)
{
#define RULES(setup_fn) \
        cmocka_unit_test_setup_teardown(test_new_and_known_users, setup_fn, teardown), \
        cmocka_unit_test_setup_teardown(test_login_id_equal_to_distinct_is_login, setup_fn, teardown), \
        cmocka_unit_test_setup_teardown(test_bare_distinct_id_of_known_login, setup_fn, teardown), \
        cmocka_unit_test_setup_teardown(test_implicit_bind, setup_fn, teardown), \
        cmocka_unit_test_setup_teardown(test_signup_attaches_login_without_merge, setup_fn, teardown), \
        cmocka_unit_test_setup_teardown(test_anonymous_browse_then_signup_merges, setup_fn, teardown), \
        cmocka_unit_test_setup_teardown(test_two_devices_merge_into_one_login, setup_fn, teardown), \
        cmocka_unit_test_setup_teardown(test_login_owned_by_one_user, setup_fn, teardown), \
        cmocka_unit_test_setup_teardown(test_bind_unions_and_rejects_two_logins, setup_fn, teardown), \
        cmocka_unit_test_setup_teardown(test_unbind_then_rebind_elsewhere, setup_fn, teardown), \
        cmocka_unit_test_setup_teardown(test_unknown_key_rejected, setup_fn, teardown), \
        cmocka_unit_test_setup_teardown(test_projects_are_separate, setup_fn, teardown), \
        cmocka_unit_test_setup_teardown(test_batch_sees_earlier_records, setup_fn, teardown), \
        cmocka_unit_test_setup_teardown(test_reopen_persists, setup_fn, teardown), \
        cmocka_unit_test_setup_teardown(test_lookup_distinct, setup_fn, teardown), \
        cmocka_unit_test_setup_teardown(test_signup_new_pair_and_merge_audit_all, setup_fn, teardown),
    const struct CMUnitTest tests[] = {
        RULES(setup)
        RULES(setup_cached)
        RULES(setup_tiny)
        cmocka_unit_test(test_cache_matches_uncached),
        cmocka_unit_test(test_cache_emptied_by_aborted_batch),
    };
#undef RULES
    return cmocka_run_group_tests(tests, NULL, NULL);
}
