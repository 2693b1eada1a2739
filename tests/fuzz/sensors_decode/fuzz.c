/*
 * fuzz.c (sensors_decode) - the Sensors decoder must never crash on any
 * query/body, and every record it accepts must survive the stored-form round
 * trip (wm_record_to_json -> parse -> wm_record_from_json) unchanged.
 *
 * The first input byte picks the request shape so that the fuzzer reaches the
 * deep layers, not just the form parser:
 *   bits 0-1: 0 = rest is the body, 1 = rest is the query,
 *             2 = rest split at the first '\n' into query | body,
 *             3 = rest is the JSON payload, sent base64'd as data=
 *   bit 2   : (shape 3) gzip the payload first and send gzip=1
 *   bit 3   : (shape 3) name it data_list instead of data
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "waymark/arena.h"
#include "waymark/buf.h"
#include "waymark/error.h"
#include "waymark/ingest.h"

static void check_round_trip(wm_arena_t *a, const wm_batch_t *b)
{
    for (uint32_t i = 0; i < b->n; i++) {
        if (b->errors[i].code)
            continue;
        wm_buf_t buf;
        wm_buf_init(&buf, 0);
        wm_record_to_json(&b->records[i], &buf);
        wm_json_t *obj;
        wm_record_t back;
        wm_rec_error_t err;
        wm_rec_ctx_t stored = {.stored = true};
        if (buf.err || wm_json_parse(a, buf.data, buf.len, &obj, NULL) != 0 ||
            wm_record_from_json(a, obj, &stored, &back, &err) != 0 ||
            !wm_record_equal(&b->records[i], &back))
            abort();
        wm_buf_release(&buf);
    }
}

static size_t gzip_into(const uint8_t *in, size_t n, unsigned char *out, size_t cap)
{
    z_stream zs;
    memset(&zs, 0, sizeof zs);
    if (deflateInit2(&zs, 1, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
        return 0;
    zs.next_in = (unsigned char *)in;
    zs.avail_in = (uInt)n;
    zs.next_out = out;
    zs.avail_out = (uInt)cap;
    size_t r = deflate(&zs, Z_FINISH) == Z_STREAM_END ? zs.total_out : 0;
    deflateEnd(&zs);
    return r;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > (1u << 20))
        return 0;
    unsigned sel = data[0];
    const char *rest = (const char *)data + 1;
    size_t n = size - 1;
    wm_arena_t a;
    wm_arena_init(&a, 0);
    wm_sensors_req_t req = {.ctx = {.ip = "127.0.0.1", .receive_time_ms = 1700000000000}};
    wm_buf_t body;
    wm_buf_init(&body, 0);
    switch (sel & 3) {
    case 0: req.body = rest, req.body_len = n; break;
    case 1: req.query = rest, req.query_len = n; break;
    case 2: {
        const char *nl = memchr(rest, '\n', n);
        req.query = rest;
        req.query_len = nl ? (size_t)(nl - rest) : n;
        req.body = nl ? nl + 1 : NULL;
        req.body_len = nl ? n - req.query_len - 1 : 0;
        break;
    }
    default: {
        unsigned char *z = NULL;
        const void *payload = rest;
        size_t pn = n;
        if (sel & 4) {
            z = malloc(n + n / 2 + 64);
            pn = z ? gzip_into(data + 1, n, z, n + n / 2 + 64) : 0;
            payload = z;
        }
        wm_buf_puts(&body, sel & 4 ? "gzip=1&" : "");
        wm_buf_puts(&body, sel & 8 ? "data_list=" : "data=");
        wm_base64_encode(&body, payload, pn);
        free(z);
        req.body = body.data ? body.data : "";
        req.body_len = body.len;
        req.query = "project=fz&token=t";
        req.query_len = 18;
    }
    }
    wm_batch_t b;
    wm_sensors_info_t info;
    char msg[256];
    if (wm_sensors_decode(&a, &req, &b, &info, msg, sizeof msg) == 0) {
        if (b.n_ok > b.n)
            abort();
        check_round_trip(&a, &b);
    }
    wm_buf_release(&body);
    wm_arena_release(&a);
    return 0;
}
