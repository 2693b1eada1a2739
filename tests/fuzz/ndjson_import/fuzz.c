/*
 * fuzz.c (ndjson_import) - wm_native_decode over arbitrary bytes (JSON array
 * or NDJSON): never crash, error slots consistent with n_ok, and every
 * accepted record survives the stored-form round trip (a verbatim stored
 * form also keeps the canonical form's members). A second decode
 * under a tight arena limit walks the out-of-memory exits.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "waymark/arena.h"
#include "waymark/buf.h"
#include "waymark/error.h"
#include "waymark/ingest.h"

/* A verbatim stored form has the canonical form's members (the envelope's
 * wire names _track_id / _flush_time aside). */
static void same_members(wm_arena_t *a, const wm_record_t *r, const wm_json_t *obj)
{
    wm_record_t canon = *r;
    canon.raw = NULL;
    wm_buf_t cb;
    wm_buf_init(&cb, 0);
    wm_record_to_json(&canon, &cb);
    wm_json_t *cobj;
    if (cb.err || wm_json_parse(a, cb.data, cb.len, &cobj, NULL) != 0 || cobj->len != obj->len)
        abort();
    for (const wm_json_t *m = obj->u.child; m; m = m->next) {
        const char *k = !strcmp(m->key, "_track_id")     ? "track_id"
                        : !strcmp(m->key, "_flush_time") ? "flush_time"
                                                         : m->key;
        if (!wm_json_get(cobj, k))
            abort();
    }
    wm_buf_release(&cb);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > (1u << 20))
        return 0;
    wm_arena_t a;
    wm_arena_init(&a, 0);
    wm_rec_ctx_t ctx = {.project = "imp", .receive_time_ms = 1700000000000, .ip = "::1"};
    wm_batch_t b;
    char msg[256];
    if (wm_native_decode(&a, (const char *)data, size, &ctx, &b, msg, sizeof msg) == 0) {
        uint32_t ok = 0;
        for (uint32_t i = 0; i < b.n; i++) {
            if (b.errors[i].code)
                continue;
            ok++;
            wm_buf_t buf;
            wm_buf_init(&buf, 0);
            wm_record_to_json(&b.records[i], &buf);
            wm_json_t *obj;
            wm_record_t back;
            wm_rec_error_t err;
            wm_rec_ctx_t stored = {.stored = true};
            if (buf.err || wm_json_parse(&a, buf.data, buf.len, &obj, NULL) != 0 ||
                wm_record_from_json(&a, obj, &stored, &back, &err) != 0 ||
                !wm_record_equal(&b.records[i], &back))
                abort();
            if (b.records[i].raw)
                same_members(&a, &b.records[i], obj);
            wm_buf_release(&buf);
        }
        if (ok != b.n_ok)
            abort();
    }
    wm_arena_release(&a);
    wm_arena_init(&a, 4096);
    a.limit_bytes = 2048 + size;
    int rc = wm_native_decode(&a, (const char *)data, size, &ctx, &b, msg, sizeof msg);
    if (rc != 0 && rc != WM_ENOMEM && rc != WM_EPARSE && rc != WM_ELIMIT)
        abort();
    wm_arena_release(&a);
    return 0;
}
