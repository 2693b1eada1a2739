/*
 * evidx.h - internal: the stored form of a partition's per-user event index
 * (the "events" DBI), written by the partition's apply step and read by the
 * customer-360 event list and by conditions over a user's past events.
 *
 *   key    u64be user id, u64be time_ms with the sign bit flipped, u64be log
 *          seq: 24 bytes, so one user's events sort by time, then log order
 *   value  varint log file, varint frame offset (usually 5 bytes)
 *
 * Stores written before the varint value hold 12 bytes instead: u32 file and
 * u64 offset in host order. Both are read; a varint pair that would itself
 * take exactly 12 bytes is written in that old form, so the length alone
 * tells the two apart.
 */
#ifndef WAYMARK_STORE_EVIDX_H
#define WAYMARK_STORE_EVIDX_H

#include <lmdb.h>
#include <stdbool.h>
#include <string.h>

#include "waymark/bytes.h"
#include "waymark/log.h"

#define WM_EVIDX_KEY_BYTES 24
#define WM_EVIDX_OLD_VALUE_BYTES 12
#define WM_EVIDX_VALUE_MAX (5 + WM_VARINT_MAX)

static inline void wm_evidx_key(unsigned char *kb, uint64_t user_id, int64_t time_ms, uint64_t seq)
{
    wm_put_be64(kb, user_id);
    wm_put_be64(kb + 8, (uint64_t)time_ms ^ (1ull << 63));
    wm_put_be64(kb + 16, seq);
}

/* Encodes pos's file and offset into vb (WM_EVIDX_VALUE_MAX bytes); returns the length. */
static inline size_t wm_evidx_value(unsigned char *vb, const wm_log_pos_t *pos)
{
    size_t n = (size_t)(wm_put_varint(wm_put_varint(vb, pos->file), pos->offset) - vb);
    if (n != WM_EVIDX_OLD_VALUE_BYTES)
        return n;
    memcpy(vb, &pos->file, 4);
    memcpy(vb + 4, &pos->offset, 8);
    return WM_EVIDX_OLD_VALUE_BYTES;
}

/* Decodes one entry; false when the key or value is not an index entry. */
static inline bool wm_evidx_decode(const MDB_val *k, const MDB_val *v, uint64_t *user_id, int64_t *time_ms,
                                   wm_log_pos_t *pos)
{
    const unsigned char *kp = k->mv_data, *vp = v->mv_data, *end = vp + v->mv_size;
    if (k->mv_size != WM_EVIDX_KEY_BYTES)
        return false;
    *user_id = wm_get_be64(kp);
    *time_ms = (int64_t)(wm_get_be64(kp + 8) ^ (1ull << 63));
    pos->seq = wm_get_be64(kp + 16);
    if (v->mv_size == WM_EVIDX_OLD_VALUE_BYTES) {
        memcpy(&pos->file, vp, 4);
        memcpy(&pos->offset, vp + 4, 8);
        return true;
    }
    uint64_t file, offset;
    if (!wm_get_varint(&vp, end, &file) || !wm_get_varint(&vp, end, &offset) || vp != end || file > UINT32_MAX)
        return false;
    pos->file = (uint32_t)file;
    pos->offset = offset;
    return true;
}

#endif
