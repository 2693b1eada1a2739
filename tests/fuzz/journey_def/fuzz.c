/*
 * fuzz.c (journey_def) - the journey compiler takes operator-written JSON
 * from the management API, so any input must produce either a compiled
 * journey or a list of errors: never a crash, a hang, a leak or an error
 * without a node/field/message. Each input is compiled twice, against a
 * fixed set of references and with none (unchecked), and a compiled journey
 * is walked to check its invariants: every edge points at a node, split
 * percents add up to 100, and the split function stays in range.
 * Templates get the same treatment: the webhook body and the raw input are
 * compiled and rendered with a lookup that finds nothing.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "waymark/error.h"
#include "waymark/journey.h"

static const char *const CHANNELS[] = {"sms", "push", "inbox", "wecom", "robot_call", "advisor"};
static const char *const TEMPLATES[] = {"sip_intro", "sip_followup", "reg_welcome_sms"};
static const char *const EVENTS[] = {"ViewFundDetail", "StartSIP", "Register", "OpenAccount", "IPOLotWon"};
static const char *const PROPS[] = {"name", "tier", "risk_level", "timezone", "birthday", "held_products"};
static const char *const JOURNEYS[] = {"other", "tiered_service"};

static const wm_journey_refs_t REFS = {
    CHANNELS, 6, TEMPLATES, 3, EVENTS, 5, PROPS, 6, JOURNEYS, 2,
};

static void check_target(const wm_journey_def_t *j, uint32_t t, int none_ok)
{
    if (t == WM_JOURNEY_NONE ? !none_ok : t >= j->n_nodes)
        abort();
}

static void check_journey(const wm_journey_def_t *j)
{
    if (j->n_nodes == 0 || j->n_nodes > WM_JOURNEY_NODES_MAX || j->start >= j->n_nodes || !j->key)
        abort();
    for (uint32_t i = 0; i < j->n_nodes; i++) {
        const wm_jnode_t *n = &j->nodes[i];
        if (!n->id || wm_journey_node_index(j, n->id) != i)
            abort();
        check_target(j, n->next, n->type == WM_JN_EXIT || n->type == WM_JN_JUMP);
        if (n->type == WM_JN_SPLIT) {
            uint32_t sum = 0;
            for (uint32_t k = 0; k < n->u.branch.n_arms; k++) {
                sum += n->u.branch.arms[k].percent;
                check_target(j, n->u.branch.arms[k].next, 0);
            }
            if (sum != 100 || wm_split_arm(j, n, 42) >= n->u.branch.n_arms)
                abort();
        }
        if (n->type == WM_JN_BRANCH) {
            check_target(j, n->u.branch.otherwise, 0);
            for (uint32_t k = 0; k < n->u.branch.n_arms; k++)
                if (!n->u.branch.arms[k].cond)
                    abort();
        }
        if (n->type == WM_JN_WAIT_EVENT && (n->u.wait_event.timeout_ms <= 0 || n->u.wait_event.n_events == 0))
            abort();
    }
}

static const wm_json_t *find_nothing(void *ctx, const char *scope, const char *name) { return NULL; }

static void fuzz_template(const char *text)
{
    wm_template_t *t = NULL;
    char err[160];
    int rc = wm_template_compile(text, &t, err, sizeof err);
    if (rc != 0) {
        if (t || (rc != WM_EINVAL && rc != WM_ELIMIT && rc != WM_ENOMEM) || strncmp(err, "offset ", 7) != 0)
            abort();
        return;
    }
    wm_buf_t out;
    wm_buf_init(&out, 0);
    char missing[64];
    rc = wm_template_render(t, find_nothing, NULL, true, &out, missing, sizeof missing);
    if (rc != 0 && (rc != WM_ENOTFOUND || !strchr(missing, '.')))
        abort();
    wm_buf_release(&out);
    wm_template_free(t);
}

static void compile_once(const char *text, size_t size, const wm_journey_refs_t *refs)
{
    wm_journey_error_t errs[8];
    uint32_t n = 0;
    wm_journey_def_t *j = NULL;
    int rc = wm_journey_compile_text(text, size, refs, &j, errs, 8, &n);
    if (rc == 0) {
        if (!j || n != 0)
            abort();
        check_journey(j);
        for (uint32_t i = 0; i < j->n_nodes; i++)
            if (j->nodes[i].type == WM_JN_WEBHOOK && j->nodes[i].u.webhook.body_template)
                fuzz_template(j->nodes[i].u.webhook.body_template);
    } else {
        if (j || rc != WM_EINVAL || n == 0)
            abort();
        for (uint32_t k = 0; k < n && k < 8; k++)
            if (!errs[k].msg[0] || strnlen(errs[k].node, sizeof errs[k].node) >= sizeof errs[k].node)
                abort();
    }
    wm_journey_free(j);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > (1u << 16))
        return 0;
    /* NUL-terminated copy: templates take C strings */
    char *text = malloc(size + 1);
    if (!text)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    compile_once(text, size, &REFS);
    compile_once(text, size, NULL);
    fuzz_template(text);
    free(text);
    return 0;
}
