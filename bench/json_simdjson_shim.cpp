// json_simdjson_shim.cpp - a C entry point to simdjson (C++ only) for the
// JSON bake-off: parse one document with the DOM or the On-Demand API and
// walk every value, returning the same checksum the C parsers compute
// (bytes of all string values, count of all numbers). json-c's adapter is
// here as well because its headers clash with jansson's in one C file.
#include <json-c/json_object.h>
#include <json-c/linkhash.h>
#include <json-c/json_tokener.h>
#include <simdjson.h>

#include <cstddef>
#include <cstdint>

extern "C" {
int wm_bench_simdjson_dom(const char *buf, size_t len, size_t padded_ok, uint64_t *str_bytes,
                          uint64_t *numbers);
int wm_bench_simdjson_ondemand(const char *buf, size_t len, size_t capacity, uint64_t *str_bytes,
                               uint64_t *numbers);
int wm_bench_jsonc(const char *buf, size_t len, uint64_t *str_bytes, uint64_t *numbers);
void wm_bench_shim_walk(int on);
}

static bool g_walk = true;
void wm_bench_shim_walk(int on) { g_walk = on != 0; }

static void walk_dom(simdjson::dom::element e, uint64_t *s, uint64_t *n)
{
    switch (e.type()) {
    case simdjson::dom::element_type::ARRAY: {
        simdjson::dom::array a = simdjson::dom::array(e); // element type already checked
        for (simdjson::dom::element c : a)
            walk_dom(c, s, n);
        break;
    }
    case simdjson::dom::element_type::OBJECT: {
        simdjson::dom::object o = simdjson::dom::object(e);
        for (simdjson::dom::key_value_pair kv : o)
            walk_dom(kv.value, s, n);
        break;
    }
    case simdjson::dom::element_type::STRING:
        *s += std::string_view(e).size();
        break;
    case simdjson::dom::element_type::INT64:
    case simdjson::dom::element_type::UINT64:
    case simdjson::dom::element_type::DOUBLE:
        (*n)++;
        break;
    default:
        break;
    }
}

// padded_ok: the caller guarantees SIMDJSON_PADDING readable bytes after buf+len
int wm_bench_simdjson_dom(const char *buf, size_t len, size_t padded_ok, uint64_t *s, uint64_t *n)
{
    static simdjson::dom::parser parser;
    simdjson::dom::element doc;
    if (parser.parse(buf, len, !padded_ok).get(doc))
        return -1;
    if (g_walk)
        walk_dom(doc, s, n);
    return 0;
}

static int walk_od(simdjson::ondemand::value v, uint64_t *s, uint64_t *n)
{
    simdjson::ondemand::json_type t;
    if (v.type().get(t))
        return -1;
    switch (t) {
    case simdjson::ondemand::json_type::array:
        for (auto c : v.get_array()) {
            simdjson::ondemand::value cv;
            if (c.get(cv) || walk_od(cv, s, n))
                return -1;
        }
        return 0;
    case simdjson::ondemand::json_type::object:
        for (auto f : v.get_object()) {
            simdjson::ondemand::value fv;
            if (f.value().get(fv) || walk_od(fv, s, n))
                return -1;
        }
        return 0;
    case simdjson::ondemand::json_type::string: {
        std::string_view sv;
        if (v.get_string().get(sv))
            return -1;
        *s += sv.size();
        return 0;
    }
    case simdjson::ondemand::json_type::number: {
        double d;
        if (v.get_double().get(d)) // forces number validation like the DOM does
            return -1;
        (*n)++;
        return 0;
    }
    default:
        return 0;
    }
}

int wm_bench_simdjson_ondemand(const char *buf, size_t len, size_t capacity, uint64_t *s, uint64_t *n)
{
    static simdjson::ondemand::parser parser;
    simdjson::padded_string_view psv(buf, len, capacity);
    simdjson::ondemand::document doc;
    if (parser.iterate(psv).get(doc))
        return -1;
    simdjson::ondemand::value root;
    if (doc.get_value().get(root))
        return -1;
    return walk_od(root, s, n);
}

static void walk_jsonc(json_object *v, uint64_t *s, uint64_t *n)
{
    switch (json_object_get_type(v)) {
    case json_type_string:
        *s += (uint64_t)json_object_get_string_len(v);
        break;
    case json_type_int:
    case json_type_double:
        (*n)++;
        break;
    case json_type_array:
        for (size_t i = 0; i < json_object_array_length(v); i++)
            walk_jsonc(json_object_array_get_idx(v, i), s, n);
        break;
    case json_type_object:
        for (lh_entry *e = json_object_get_object(v)->head; e; e = e->next)
            walk_jsonc((json_object *)lh_entry_v(e), s, n);
        break;
    default:
        break;
    }
}

// One tokener reused across documents, with json-c's default depth (32).
int wm_bench_jsonc(const char *buf, size_t len, uint64_t *s, uint64_t *n)
{
    static json_tokener *tok = json_tokener_new();
    json_tokener_reset(tok);
    json_object *v = json_tokener_parse_ex(tok, buf, (int)len);
    if (!v)
        return -1;
    if (g_walk)
        walk_jsonc(v, s, n);
    json_object_put(v);
    return 0;
}
