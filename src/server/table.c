/*
 * table.c - a query answer's main rows as CSV (RFC 4180) or an aligned text
 * table: what `?format=csv` answers and what `waymark query --format
 * table|csv` prints, so both give the same columns.
 *
 * The main rows of each kind (docs/analytics.md): funnel "steps", events /
 * attribution / distribution "rows", retention "cohorts", paths "paths", map
 * "stages"; interval has none, so its scalar figures become rows of
 * (figure, value). Other kinds take the answer's first array of objects.
 * With a breakdown ("groups": [{"group": g, KEY: rows}]) the rows get a
 * leading "group" column: the totals as "$total", then each group's.
 *
 * Cells: a nested object becomes columns "a.b"; an array of numbers becomes
 * columns "a.1".."a.N" (retention's retained[k-1] is period k); an array of
 * strings is one cell joined with " > " (a path); anything else nested is its
 * JSON text. Columns appear in the order first seen over all rows.
 */
#include <stdio.h>
#include <string.h>

#include "waymark/error.h"
#include "waymark/server.h"

#define TABLE_COLS_MAX 1024

typedef struct table {
    wm_arena_t *a;
    bool round;                     /* text tables: fractions to 6 significant digits */
    const char *cols[TABLE_COLS_MAX];
    bool col_num[TABLE_COLS_MAX];   /* every value of the column is a number (right-aligned) */
    uint32_t ncols;
    /* cells[row * TABLE_COLS_MAX ... ] would be wasteful: rows keep (col, text) pairs */
    struct cell {
        uint32_t col;
        const char *text;
        bool num;
    } *cells;
    uint32_t ncells, cellcap;
    uint32_t *row_start;            /* first cell of each row; [nrows] = ncells */
    uint32_t nrows, rowcap;
} table_t;

static const char *main_key(const char *kind)
{
    static const char *const map[][2] = {
        {"funnel", "steps"},   {"events", "rows"},       {"retention", "cohorts"},
        {"paths", "paths"},    {"attribution", "rows"},  {"distribution", "rows"},
        {"map", "stages"},
    };
    for (size_t i = 0; kind && i < sizeof map / sizeof map[0]; i++)
        if (!strcmp(kind, map[i][0]))
            return map[i][1];
    return NULL;
}

static int col_index(table_t *t, const char *name, uint32_t *out)
{
    for (uint32_t i = 0; i < t->ncols; i++)
        if (!strcmp(t->cols[i], name)) {
            *out = i;
            return 0;
        }
    if (t->ncols == TABLE_COLS_MAX)
        return WM_ELIMIT;
    char *copy = wm_arena_strndup(t->a, name, strlen(name));
    if (!copy)
        return WM_ENOMEM;
    t->col_num[t->ncols] = true;
    t->cols[t->ncols] = copy;
    *out = t->ncols++;
    return 0;
}

static int grow(wm_arena_t *a, void **p, uint32_t *cap, uint32_t need, size_t elem)
{
    if (need <= *cap)
        return 0;
    uint32_t ncap = *cap ? *cap * 2 : 64;
    while (ncap < need)
        ncap *= 2;
    void *np = wm_arena_alloc(a, (size_t)ncap * elem);
    if (!np)
        return WM_ENOMEM;
    if (*p)
        memcpy(np, *p, (size_t)*cap * elem);
    *p = np;
    *cap = ncap;
    return 0;
}

static int add_cell(table_t *t, const char *col, const char *text, bool num)
{
    uint32_t c;
    int rc = col_index(t, col, &c);
    if (rc)
        return rc;
    if ((rc = grow(t->a, (void **)&t->cells, &t->cellcap, t->ncells + 1, sizeof *t->cells)))
        return rc;
    t->cells[t->ncells++] = (struct cell){.col = c, .text = text, .num = num};
    if (!num)
        t->col_num[c] = false;
    return 0;
}

static const char *json_text_r(wm_arena_t *a, const wm_json_t *v, bool round)
{
    if (v->type == WM_JSON_STRING)
        return v->u.str;
    if (v->type == WM_JSON_NULL)
        return "";
    if (round && v->type == WM_JSON_NUMBER && !v->is_int) {
        char num[40];
        snprintf(num, sizeof num, "%.6g", v->u.num);
        return wm_arena_strndup(a, num, strlen(num));
    }
    wm_buf_t b;
    wm_buf_init(&b, 0);
    wm_json_write(&b, v);
    char *s = b.err ? NULL : wm_arena_strndup(a, b.data ? b.data : "", b.len);
    wm_buf_release(&b);
    return s ? s : "";
}

#define json_text(a, v) json_text_r((a), (v), t->round)

static bool all_of(const wm_json_t *arr, wm_json_type_t type)
{
    for (const wm_json_t *c = arr->u.child; c; c = c->next)
        if (c->type != type)
            return false;
    return arr->u.child != NULL;
}

static int flatten(table_t *t, const char *prefix, const wm_json_t *v)
{
    char name[512];
    if (v->type == WM_JSON_OBJECT) {
        int rc = 0;
        for (const wm_json_t *c = v->u.child; c && !rc; c = c->next) {
            snprintf(name, sizeof name, "%s%s%.*s", prefix, *prefix ? "." : "", (int)c->key_len, c->key);
            rc = flatten(t, name, c);
        }
        return rc;
    }
    if (v->type == WM_JSON_ARRAY && all_of(v, WM_JSON_NUMBER)) {
        int rc = 0, i = 1;
        for (const wm_json_t *c = v->u.child; c && !rc; c = c->next, i++) {
            snprintf(name, sizeof name, "%s.%d", prefix, i);
            rc = add_cell(t, name, json_text(t->a, c), true);
        }
        return rc;
    }
    if (v->type == WM_JSON_ARRAY && all_of(v, WM_JSON_STRING)) {
        wm_buf_t b;
        wm_buf_init(&b, 0);
        for (const wm_json_t *c = v->u.child; c; c = c->next) {
            if (c != v->u.child)
                wm_buf_puts(&b, " > ");
            wm_buf_puts(&b, c->u.str);
        }
        char *s = b.err ? NULL : wm_arena_strndup(t->a, b.data ? b.data : "", b.len);
        wm_buf_release(&b);
        return s ? add_cell(t, prefix, s, false) : WM_ENOMEM;
    }
    return add_cell(t, prefix, json_text(t->a, v), v->type == WM_JSON_NUMBER || v->type == WM_JSON_NULL);
}

static int end_row(table_t *t)
{
    int rc = grow(t->a, (void **)&t->row_start, &t->rowcap, t->nrows + 2, sizeof *t->row_start);
    if (rc)
        return rc;
    t->row_start[++t->nrows] = t->ncells;
    return 0;
}

/* One row of a nested figure: "name.key" of an object member, "name.i"
 * of a list element, and for a list of {label, value} objects (interval's
 * histogram bins) "name.label" with the rest as the value. */
static int figure_row(table_t *t, const char *name, bool member, int i, const wm_json_t *b)
{
    char bn[300];
    const wm_json_t *label = b->type == WM_JSON_OBJECT ? b->u.child : NULL;
    if (member)
        snprintf(bn, sizeof bn, "%s.%.*s", name, (int)b->key_len, b->key);
    else if (label && label->type == WM_JSON_STRING && label->next)
        snprintf(bn, sizeof bn, "%s.%s", name, label->u.str);
    else
        snprintf(bn, sizeof bn, "%s.%d", name, i);
    int rc = add_cell(t, "figure", wm_arena_strndup(t->a, bn, strlen(bn)), false);
    if (!rc && !member && label && label->type == WM_JSON_STRING && label->next && !label->next->next)
        rc = flatten(t, "value", label->next);
    else if (!rc && !member && label && label->type == WM_JSON_STRING && label->next)
        for (const wm_json_t *m = label->next; m && !rc; m = m->next) {
            char vn[300];
            snprintf(vn, sizeof vn, "value.%.*s", (int)m->key_len, m->key);
            rc = flatten(t, vn, m);
        }
    else if (!rc)
        rc = flatten(t, "value", b);
    return rc ? rc : end_row(t);
}

/* The rows of one array, each led by a "group" cell when group is given. */
static int add_rows(table_t *t, const wm_json_t *rows, const char *group)
{
    int rc = 0;
    for (const wm_json_t *r = rows->u.child; r && !rc; r = r->next) {
        if (group)
            rc = add_cell(t, "group", group, false);
        if (!rc)
            rc = flatten(t, r->type == WM_JSON_OBJECT ? "" : "value", r);
        if (!rc)
            rc = end_row(t);
    }
    return rc;
}

static int build(table_t *t, const char *kind, const wm_json_t *answer)
{
    int rc = grow(t->a, (void **)&t->row_start, &t->rowcap, 2, sizeof *t->row_start);
    if (rc)
        return rc;
    t->row_start[0] = 0;
    if (!answer || answer->type != WM_JSON_OBJECT)
        return WM_EINVAL;
    const char *key = main_key(kind);
    const wm_json_t *rows = key ? wm_json_get(answer, key) : NULL;
    if (!rows && kind && !strcmp(kind, "interval")) {
        /* figures: one row per scalar member, histogram bins included */
        for (const wm_json_t *c = answer->u.child; c && !rc; c = c->next) {
            char name[256];
            snprintf(name, sizeof name, "%.*s", (int)c->key_len, c->key);
            if (c->type == WM_JSON_ARRAY || c->type == WM_JSON_OBJECT) {
                int i = 0;
                for (const wm_json_t *b = c->u.child; b && !rc; b = b->next, i++)
                    rc = figure_row(t, name, c->type == WM_JSON_OBJECT, i, b);
                continue;
            }
            if (!(rc = add_cell(t, "figure", wm_arena_strndup(t->a, name, strlen(name)), false)) &&
                !(rc = flatten(t, "value", c)))
                rc = end_row(t);
        }
        return rc;
    }
    if (!rows)   /* an unknown kind: the first array of objects */
        for (const wm_json_t *c = answer->u.child; c && !rows; c = c->next)
            if (c->type == WM_JSON_ARRAY && c->u.child && c->u.child->type == WM_JSON_OBJECT)
                rows = c;
    if (!rows || rows->type != WM_JSON_ARRAY)
        return 0;
    /* a breakdown's groups ({"group": g, KEY: [...]}) follow the totals,
     * every row led by its group ("$total" for the totals) */
    const wm_json_t *groups = key ? wm_json_get(answer, "groups") : NULL;
    const wm_json_t *g0 = groups && groups->type == WM_JSON_ARRAY ? groups->u.child : NULL;
    const wm_json_t *g0rows = g0 ? wm_json_get(g0, key) : NULL;
    if (!g0rows || g0rows->type != WM_JSON_ARRAY)
        return add_rows(t, rows, NULL);
    rc = add_rows(t, rows, "$total");
    for (const wm_json_t *g = g0; g && !rc; g = g->next) {
        const wm_json_t *gr = wm_json_get(g, key);
        const wm_json_t *gv = wm_json_get(g, "group");
        if (gr && gr->type == WM_JSON_ARRAY)
            rc = add_rows(t, gr, gv ? json_text(t->a, gv) : "");
    }
    return rc;
}

static const char *cell_of(const table_t *t, uint32_t row, uint32_t col)
{
    const char *v = "";
    for (uint32_t i = t->row_start[row]; i < t->row_start[row + 1]; i++)
        if (t->cells[i].col == col)
            v = t->cells[i].text;
    return v;
}

static void csv_field(wm_buf_t *out, const char *s)
{
    if (!strpbrk(s, ",\"\r\n")) {
        wm_buf_puts(out, s);
        return;
    }
    wm_buf_putc(out, '"');
    for (; *s; s++) {
        if (*s == '"')
            wm_buf_putc(out, '"');
        wm_buf_putc(out, *s);
    }
    wm_buf_putc(out, '"');
}

/* Display width: East Asian wide characters take two columns. */
static size_t text_width(const char *s)
{
    size_t w = 0;
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        uint32_t cp;
        int n;
        if (*p < 0x80) { cp = *p; n = 1; }
        else if ((*p & 0xe0) == 0xc0) { cp = *p & 0x1f; n = 2; }
        else if ((*p & 0xf0) == 0xe0) { cp = *p & 0x0f; n = 3; }
        else { cp = *p & 0x07; n = 4; }
        for (int i = 1; i < n; i++) {
            if ((p[i] & 0xc0) != 0x80) { n = i; break; }
            cp = (cp << 6) | (p[i] & 0x3f);
        }
        p += n;
        bool wide = (cp >= 0x1100 && cp <= 0x115f) || (cp >= 0x2e80 && cp <= 0xa4cf) ||
                    (cp >= 0xac00 && cp <= 0xd7a3) || (cp >= 0xf900 && cp <= 0xfaff) ||
                    (cp >= 0xfe30 && cp <= 0xfe4f) || (cp >= 0xff00 && cp <= 0xff60) ||
                    (cp >= 0xffe0 && cp <= 0xffe6) || (cp >= 0x20000 && cp <= 0x3fffd);
        w += wide ? 2 : 1;
    }
    return w;
}

static void pad(wm_buf_t *out, size_t n)
{
    while (n--)
        wm_buf_putc(out, ' ');
}

/* One line of the text table; control characters in a cell print as spaces. */
static void text_cell(wm_buf_t *out, const char *s, size_t width, bool right, bool last)
{
    size_t w = text_width(s);
    if (right)
        pad(out, width - w);
    for (; *s; s++)
        wm_buf_putc(out, (unsigned char)*s < 0x20 ? ' ' : *s);
    if (!right && !last)
        pad(out, width - w);
}

static void write_text(const table_t *t, wm_buf_t *out, wm_arena_t *a)
{
    size_t *width = wm_arena_alloc(a, sizeof *width * (t->ncols ? t->ncols : 1));
    if (!width) {
        out->err = WM_ENOMEM;
        return;
    }
    for (uint32_t c = 0; c < t->ncols; c++) {
        width[c] = text_width(t->cols[c]);
        for (uint32_t r = 0; r < t->nrows; r++) {
            size_t w = text_width(cell_of(t, r, c));
            if (w > width[c])
                width[c] = w;
        }
    }
    for (uint32_t c = 0; c < t->ncols; c++) {
        text_cell(out, t->cols[c], width[c], t->col_num[c], c + 1 == t->ncols);
        wm_buf_puts(out, c + 1 == t->ncols ? "\n" : "  ");
    }
    for (uint32_t c = 0; c < t->ncols; c++) {
        for (size_t i = 0; i < width[c]; i++)
            wm_buf_putc(out, '-');
        wm_buf_puts(out, c + 1 == t->ncols ? "\n" : "  ");
    }
    for (uint32_t r = 0; r < t->nrows; r++)
        for (uint32_t c = 0; c < t->ncols; c++) {
            text_cell(out, cell_of(t, r, c), width[c], t->col_num[c], c + 1 == t->ncols);
            wm_buf_puts(out, c + 1 == t->ncols ? "\n" : "  ");
        }
}

int wm_server_answer_table(wm_arena_t *a, const char *kind, const wm_json_t *answer, wm_table_format_t format,
                           wm_buf_t *out)
{
    table_t t = {.a = a, .round = format != WM_TABLE_CSV};
    int rc = build(&t, kind, answer);
    if (rc)
        return rc;
    if (format == WM_TABLE_CSV) {
        for (uint32_t c = 0; c < t.ncols; c++) {
            if (c)
                wm_buf_putc(out, ',');
            csv_field(out, t.cols[c]);
        }
        if (t.ncols)
            wm_buf_puts(out, "\r\n");
        for (uint32_t r = 0; r < t.nrows; r++) {
            for (uint32_t c = 0; c < t.ncols; c++) {
                if (c)
                    wm_buf_putc(out, ',');
                csv_field(out, cell_of(&t, r, c));
            }
            wm_buf_puts(out, "\r\n");
        }
    } else {
        write_text(&t, out, a);
    }
    return out->err;
}
