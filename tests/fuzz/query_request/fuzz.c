/*
 * fuzz.c (query_request) - any bytes as a query request: it must either be
 * refused with a member path and a message, or answered, against a fixed
 * two-partition history (part files and an uncompacted log tail, an identity
 * merge across partitions, properties of every column type), within a small
 * memory limit, without crashing or leaking. The request's "kind" member
 * picks the kind (events when absent).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store/payload.h"
#include "waymark/analytics.h"
#include "waymark/arena.h"
#include "waymark/error.h"
#include "waymark/json.h"
#include "waymark/record.h"

#define T0 1790784000000LL

static wm_log_t *logs[2];
static wm_astore_t *stores[2];
static char dir[256];

static void put(wm_log_t *log, const wm_payload_hdr_t *h, const char *json)
{
    size_t n = strlen(json);
    unsigned char *p = malloc(sizeof *h + n);
    memcpy(p, h, sizeof *h);
    memcpy(p + sizeof *h, json, n);
    wm_log_pos_t pos;
    if (wm_log_append(log, p, (uint32_t)(sizeof *h + n), &pos))
        abort();
    free(p);
}

static void event(uint32_t part, uint64_t user, int64_t t, const char *name, const char *props)
{
    wm_payload_hdr_t h = {.kind = WM_PAYLOAD_RECORD, .rec_type = WM_REC_TRACK, .user_id = user, .time_ms = t};
    char json[1024];
    snprintf(json, sizeof json, "{\"event\":\"%s\",\"time\":%lld,\"properties\":%s}", name, (long long)t, props);
    put(logs[part], &h, json);
}

static void cleanup(void)
{
    for (int p = 0; p < 2; p++) {
        wm_astore_close(stores[p]);
        wm_log_close(logs[p]);
    }
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd))
        return;
}

static void init(void)
{
    const char *tmp = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    snprintf(dir, sizeof dir, "%s/wm-fuzz-query-XXXXXX", tmp);
    if (!mkdtemp(dir))
        abort();
    for (uint32_t p = 0; p < 2; p++) {
        char path[512];
        snprintf(path, sizeof path, "%s/log%u", dir, p);
        wm_log_opts_t o = {.dir = path, .fsync_mode = WM_FSYNC_NEVER};
        if (wm_log_open(&o, &logs[p]))
            abort();
        snprintf(path, sizeof path, "%s/a%u", dir, p);
        if (wm_astore_open(path, p, &stores[p]))
            abort();
    }
    static const char *names[] = {"A", "B", "C", "$AppStart", "SubscribeFund"};
    static const char *props[] = {
        "{\"ch\":\"app\",\"amount\":10,\"ok\":true}",
        "{\"ch\":\"h5\",\"amount\":\"2.5\",\"tags\":[\"x\",\"y\"]}",
        "{\"d\":\"2026-10-01 08:00:00\",\"o\":{\"k\":1},\"amount\":-3}",
        "{}",
        "{\"ch\":null,\"mixed\":[1,\"a\"],\"fund_code\":\"000001\"}",
    };
    for (int i = 0; i < 120; i++) {
        uint32_t part = (uint32_t)(i % 2);
        uint64_t user = 10 + (uint64_t)(i % 7) * 2 + part;
        event(part, user, T0 + (int64_t)(i * 37 % 50) * 3600000, names[i % 5], props[(i / 3) % 5]);
        if (i == 60) {
            /* everything so far becomes parts; the rest stays in the tail */
            for (uint32_t p = 0; p < 2; p++) {
                uint64_t d;
                bool did = true;
                wm_log_sync(logs[p], &d);
                while (did)
                    if (wm_astore_compact(stores[p], logs[p], 0, &did))
                        abort();
            }
            wm_payload_hdr_t h = {.kind = WM_PAYLOAD_MERGE, .user_id = 10, .from_user = 11, .from_part = 1};
            put(logs[0], &h, "{\"event\":\"$SignUp\",\"distinct_id\":\"u\",\"time\":0}");
        }
    }
    for (uint32_t p = 0; p < 2; p++) {
        uint64_t d;
        wm_log_sync(logs[p], &d);
    }
    atexit(cleanup);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int ready;
    if (!ready) {
        init();
        ready = 1;
    }
    wm_arena_t a;
    wm_arena_init(&a, 4096);
    wm_json_t *req;
    wm_json_error_t je;
    if (wm_json_parse(&a, (const char *)data, size, &req, &je) == 0) {
        const char *kind = wm_json_str(wm_json_get(req, "kind"));
        wm_query_src_t src = {.stores = stores, .logs = logs, .n_parts = 2, .memory_max = 64u << 20,
                              .timeout_ms = 5000};
        wm_buf_t out;
        wm_buf_init(&out, 0);
        wm_query_error_t err;
        int rc = wm_query_run(&src, kind ? kind : "events", req, &out, &err);
        if (rc == WM_EINVAL && !err.msg[0])
            abort();   /* a refusal always says why */
        if (rc == 0 && kind && strcmp(kind, "export")) {
            /* an answer is one JSON object */
            wm_json_t *ans;
            if (wm_json_parse(&a, out.data, out.len, &ans, &je) || ans->type != WM_JSON_OBJECT)
                abort();
        }
        wm_buf_release(&out);
    }
    wm_arena_release(&a);
    return 0;
}
