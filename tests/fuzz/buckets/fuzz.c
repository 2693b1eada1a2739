/*
 * fuzz.c (buckets) - bucket blobs come from storage, so any bytes must be
 * rejected or read safely, and whatever the module writes must stay valid
 * and exact. Byte 0 picks the mode:
 *   even: the rest is a blob (format 1 or 2, or junk); query, add and
 *         expire it (never past WM_BUCKETS_BYTES_MAX);
 *   odd:  the rest is a stream of (day delta, value, distinct id) triples
 *         applied to a fresh blob and to a plain list of the events kept;
 *         after every step the blob must parse, its count, sum, min and max
 *         must equal the list's, and its distinct count must equal the
 *         list's when it says it is exact (else be no more than it).
 */
#include <math.h>
#include <stdbool.h>
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
    bool readable = rc == 0;
    rc = wm_buckets_add(b, &len, 20000, 1.5, "v");
    if ((rc != 0 && rc != WM_ECORRUPT) || len > WM_BUCKETS_BYTES_MAX)
        abort();
    if ((rc == 0) != readable)
        abort(); /* add and query agree on what is corrupt */
    if (rc == 0 && wm_buckets_query(b, len, INT32_MIN, INT32_MAX, &a) != 0)
        abort();
    wm_buckets_expire(b, &len, 19990);
    if (len > WM_BUCKETS_BYTES_MAX)
        abort();
}

/* ---- the list the stream is checked against ---- */

#define MODEL_MAX 65536
#define VALUES 200 /* distinct ids 0..199; 200..255 mean "no distinct value" */

typedef struct mev {
    int32_t day;
    double value;
    int dv;
} mev_t;

static mev_t model[MODEL_MAX];
static size_t n_model;

static void model_keep_from(int32_t min_day)
{
    size_t k = 0;
    for (size_t i = 0; i < n_model; i++)
        if (model[i].day >= min_day)
            model[k++] = model[i];
    n_model = k;
}

static void model_add(int32_t day, double value, int dv)
{
    int32_t newest = day;
    for (size_t i = 0; i < n_model; i++)
        if (model[i].day > newest)
            newest = model[i].day;
    int32_t oldest = newest - WM_BUCKET_DAYS + 1;
    if (day < oldest)
        return; /* ignored, as the blob does */
    model[n_model++] = (mev_t){day, value, dv};
    model_keep_from(oldest);
}

static void check(const unsigned char *b, size_t len, int32_t from, int32_t to)
{
    wm_agg_t a;
    if (wm_buckets_query(b, len, from, to, &a) != 0)
        abort();
    uint64_t count = 0, distinct = 0;
    double sum = 0, mn = INFINITY, mx = -INFINITY;
    bool seen[VALUES] = {false};
    for (size_t i = 0; i < n_model; i++) {
        const mev_t *e = &model[i];
        if (e->day < from || e->day > to)
            continue;
        count++;
        if (!isnan(e->value)) {
            sum += e->value;
            mn = e->value < mn ? e->value : mn;
            mx = e->value > mx ? e->value : mx;
        }
        if (e->dv >= 0 && !seen[e->dv]) {
            seen[e->dv] = true;
            distinct++;
        }
    }
    if (a.count != count || a.sum != sum) /* integer values: exact sums */
        abort();
    if (mn <= mx ? (a.min != mn || a.max != mx) : !(isnan(a.min) && isnan(a.max)))
        abort();
    if (a.distinct_exact ? a.distinct != distinct : a.distinct > distinct)
        abort();
}

static void stream_mode(const uint8_t *data, size_t size)
{
    static unsigned char b[WM_BUCKETS_BYTES_MAX];
    size_t len = 0;
    int32_t day = 10000;
    char v[8];
    n_model = 0;
    for (size_t i = 0; i + 3 <= size && n_model < MODEL_MAX; i += 3) {
        int8_t delta = (int8_t)data[i];
        day += delta % 40;
        double value = data[i + 1] == 255 ? NAN : data[i + 1] - 100;
        snprintf(v, sizeof v, "%u", data[i + 2]);
        const char *dv = data[i + 2] < VALUES ? v : NULL;
        if (wm_buckets_add(b, &len, day, value, dv) != 0 || len > WM_BUCKETS_BYTES_MAX)
            abort();
        model_add(day, value, dv ? data[i + 2] : -1);
        int32_t days = wm_buckets_days(b, len);
        if (days < 0 || days > WM_BUCKET_DAYS)
            abort();
        check(b, len, INT32_MIN, INT32_MAX);
        check(b, len, day - data[i + 1] % 16, day);
        if ((i / 3) % 16 == 15) {
            wm_buckets_expire(b, &len, day - 30);
            model_keep_from(day - 30);
        }
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
