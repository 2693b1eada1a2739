// json_simdjson.cpp - wm_json_parse's tree built from simdjson's DOM, for the
// import-path measurement of docs/decisions.md ("JSON parser"). Built only
// with `make SIMDJSON=1`; the C side sees json_simdjson.h.
//
// simdjson validates and unescapes with SIMD into its own tape and string
// buffer, which the next parse reuses, so the walk copies every string and
// key into the arena like json.c does. What it cannot give is a number's
// literal text (the DOM keeps only the value): non-integer numbers get no
// `lit`, and a canonical stored form re-formats them.
#include <simdjson.h>

#include <cstring>

extern "C" {
#include "core/json_simdjson.h"
#include "waymark/error.h"
#include "waymark/limits.h"
}

namespace {

thread_local simdjson::dom::parser *tl_parser;

simdjson::dom::parser *parser()
{
    if (!tl_parser) {
        tl_parser = new simdjson::dom::parser();
        if (tl_parser->allocate(WM_RECORD_BYTES_MAX, WM_JSON_DEPTH_MAX + 1))
            return nullptr;
    }
    return tl_parser;
}

wm_json_t *node(wm_arena_t *a, wm_json_type_t t)
{
    wm_json_t *v = static_cast<wm_json_t *>(wm_arena_alloc(a, sizeof *v));
    if (v) {
        std::memset(v, 0, sizeof *v);
        v->type = t;
    }
    return v;
}

const char *copy(wm_arena_t *a, std::string_view s)
{
    char *d = static_cast<char *>(wm_arena_alloc(a, s.size() + 1));
    if (d) {
        std::memcpy(d, s.data(), s.size());
        d[s.size()] = '\0';
    }
    return d;
}

int build(wm_arena_t *a, simdjson::dom::element e, wm_json_t **out)
{
    using T = simdjson::dom::element_type;
    wm_json_t *v;
    switch (e.type()) {
    case T::OBJECT: {
        if (!(v = node(a, WM_JSON_OBJECT)))
            return WM_ENOMEM;
        wm_json_t **tail = &v->u.child;
        for (simdjson::dom::key_value_pair kv : simdjson::dom::object(e)) {
            wm_json_t *c;
            int rc = build(a, kv.value, &c);
            if (rc)
                return rc;
            if (!(c->key = copy(a, kv.key)))
                return WM_ENOMEM;
            c->key_len = static_cast<uint32_t>(kv.key.size());
            *tail = c;
            tail = &c->next;
            v->len++;
        }
        break;
    }
    case T::ARRAY: {
        if (!(v = node(a, WM_JSON_ARRAY)))
            return WM_ENOMEM;
        wm_json_t **tail = &v->u.child;
        for (simdjson::dom::element c : simdjson::dom::array(e)) {
            wm_json_t *cv;
            int rc = build(a, c, &cv);
            if (rc)
                return rc;
            *tail = cv;
            tail = &cv->next;
            v->len++;
        }
        break;
    }
    case T::STRING: {
        std::string_view s(e);
        if (!(v = node(a, WM_JSON_STRING)) || !(v->u.str = copy(a, s)))
            return WM_ENOMEM;
        v->len = static_cast<uint32_t>(s.size());
        break;
    }
    case T::INT64:
        if (!(v = node(a, WM_JSON_NUMBER)))
            return WM_ENOMEM;
        v->is_int = true;
        v->i64 = int64_t(e);
        v->u.num = static_cast<double>(v->i64);
        break;
    case T::UINT64:
        if (!(v = node(a, WM_JSON_NUMBER)))
            return WM_ENOMEM;
        v->u.num = static_cast<double>(uint64_t(e));
        break;
    case T::DOUBLE:
        if (!(v = node(a, WM_JSON_NUMBER)))
            return WM_ENOMEM;
        v->u.num = double(e);
        break;
    case T::BOOL:
        if (!(v = node(a, bool(e) ? WM_JSON_TRUE : WM_JSON_FALSE)))
            return WM_ENOMEM;
        break;
    default:
        if (!(v = node(a, WM_JSON_NULL)))
            return WM_ENOMEM;
        break;
    }
    *out = v;
    return 0;
}

} // namespace

extern "C" int wm__json_parse_simdjson(wm_arena_t *a, const char *text, size_t len, wm_json_t **out,
                                       wm_json_error_t *err)
{
    simdjson::dom::parser *p = parser();
    if (!p)
        return WM_ENOMEM;
    simdjson::dom::element doc;
    auto code = p->parse(text, len, true).get(doc);
    if (code) {
        if (err) {
            err->offset = 0;
            std::snprintf(err->msg, sizeof err->msg, "%s", simdjson::error_message(code));
        }
        return code == simdjson::DEPTH_ERROR ? WM_ELIMIT : WM_EPARSE;
    }
    try {
        return build(a, doc, out);
    } catch (...) {
        return WM_EPARSE;
    }
}
