/*
 * fuzz.c (buckets) - bucket blobs come from storage, so any bytes must be
 * rejected or read safely, and whatever the module writes must stay valid.
 * Byte 0 picks the mode:
 *   even: the rest is a blob; query, add and expire it (never past 4 KB);
 *   odd:  the rest is a stream of (day delta, value, distinct id) triples
 *         applied to a fresh blob; after every step the blob must parse and
 *         its totals must equal the events accepted within the horizon.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "waymark/error.h"
#include "waymark/rules.h"

static void blob_mode(const uint8_t *data, size_t size)
{
    static unsigned char b[WM_BUCKETS_BYTES_MAX];
    if (size > sizeof b)
        size = sizeof b;
    memcpy(b, data, size);
    size_t len = size;
    wm_agg_t a;
    int rc = wm_buckets_query(b, len, INT32_MIN, INT32_MAX, &a);
    if (rc != 0 && rc != WM_ECORRUPT)
        abort();
    rc = wm_buckets_add(b, &len, 20000, 1.5, "v");
    if ((rc != 0 && rc != WM_ECORRUPT) || len > WM_BUCKETS_BYTES_MAX)
        abort();
    if (rc == 0 && wm_buckets_query(b, len, INT32_MIN, INT32_MAX, &a) != 0)
        abort();
    wm_buckets_expire(b, &len, 19990);
    if (len > WM_BUCKETS_BYTES_MAX)
        abort();
}

static void stream_mode(const uint8_t *data, size_t size)
{
    static unsigned char b[WM_BUCKETS_BYTES_MAX];
    size_t len = 0;
    int32_t day = 10000;
    char v[8];
    for (size_t i = 0; i + 3 <= size; i += 3) {
        int8_t delta = (int8_t)data[i];
        day += delta % 40;
        double value = data[i + 1] == 255 ? NAN : data[i + 1] - 100;
        snprintf(v, sizeof v, "%u", data[i + 2]);
        const char *dv = data[i + 2] < 200 ? v : NULL;
        if (wm_buckets_add(b, &len, day, value, dv) != 0 || len > WM_BUCKETS_BYTES_MAX)
            abort();
        wm_agg_t a;
        if (wm_buckets_query(b, len, INT32_MIN, INT32_MAX, &a) != 0)
            abort();
        int32_t days = wm_buckets_days(b, len);
        if (days < 0 || days > WM_BUCKET_DAYS)
            abort();
        if (a.count > 0 && (int64_t)a.distinct > (int64_t)a.count * 2 + 64)
            abort();
        if ((i / 3) % 16 == 15)
            wm_buckets_expire(b, &len, day - 30);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    if (data[0] & 1)
        stream_mode(data + 1, size - 1);
    else
        blob_mode(data + 1, size - 1);
    return 0;
}
