/*
 * split.c - deterministic A/B split: (journey key, split node, user) -> arm.
 *
 * An experiment is only readable if a user stays in one arm: when the same
 * person re-enters the journey, is replayed after a crash, or is processed
 * by another partition or another version of the journey, the answer must be
 * the same. So the arm is a pure function of stable names, not a random draw
 * and not state: FNV-1a over "journey_key \0 node_id \0" and the user id's
 * eight bytes in little-endian order (identical on every machine), finished
 * with the splitmix64 mixer so that consecutive user ids spread evenly, then
 * bucket = hash % 10000 and the arm whose cumulative percent*100 range holds
 * the bucket. Percents are whole numbers summing to 100 (the compiler checks
 * that), so ranges tile 0..9999 exactly.
 *
 * The split node's id is hashed too: two splits in one journey must not put
 * the same users in the "first" arm of both, or their effects confound.
 */
#include <string.h>

#include "waymark/journey.h"

#define FNV_OFFSET 0xcbf29ce484222325ULL
#define FNV_PRIME 0x100000001b3ULL

static uint64_t fnv(uint64_t h, const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t k = 0; k < n; k++) {
        h ^= b[k];
        h *= FNV_PRIME;
    }
    return h;
}

static uint64_t mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

uint32_t wm_split_bucket(const char *journey_key, const char *node_id, uint64_t user_id)
{
    const char *jk = journey_key ? journey_key : "", *nid = node_id ? node_id : "";
    unsigned char uid[8];
    for (int k = 0; k < 8; k++)
        uid[k] = (unsigned char)(user_id >> (8 * k));
    uint64_t h = fnv(FNV_OFFSET, jk, strlen(jk) + 1);
    h = fnv(h, nid, strlen(nid) + 1);
    h = fnv(h, uid, sizeof uid);
    return (uint32_t)(mix64(h) % 10000u);
}

uint32_t wm_split_arm(const wm_journey_def_t *j, const wm_jnode_t *split, uint64_t user_id)
{
    uint32_t n = split->u.branch.n_arms;
    if (n == 0)
        return 0;
    uint32_t bucket = wm_split_bucket(j ? j->key : NULL, split->id, user_id), edge = 0;
    for (uint32_t k = 0; k < n; k++) {
        edge += split->u.branch.arms[k].percent * 100u;
        if (bucket < edge)
            return k;
    }
    /* unreachable for a compiled journey (percents sum to 100) */
    return n - 1;
}
