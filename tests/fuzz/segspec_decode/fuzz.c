/*
 * fuzz.c (segment_decode) - the Segment mapper must never crash, and every
 * record it produces must be valid Sensors data that survives the stored-form
 * round trip. The first byte picks the endpoint kind (batch, track, ...).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "waymark/arena.h"
#include "waymark/buf.h"
#include "waymark/ingest.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > (1u << 20))
        return 0;
    wm_segspec_kind_t kind = (wm_segspec_kind_t)(data[0] % 7);
    wm_arena_t a;
    wm_arena_init(&a, 0);
    wm_rec_ctx_t ctx = {.project = "seg", .receive_time_ms = 1700000000000};
    wm_batch_t b;
    char msg[256];
    if (wm_segspec_decode(&a, kind, (const char *)data + 1, size - 1, &ctx, &b, msg, sizeof msg) == 0) {
        for (uint32_t i = 0; i < b.n; i++) {
            if (b.errors[i].code)
                continue;
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
            wm_buf_release(&buf);
        }
    }
    wm_arena_release(&a);
    return 0;
}
