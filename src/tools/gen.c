/*
 * gen.c - realistic, deterministic Sensors NDJSON for a Chinese brokerage.
 *
 * What it simulates (the acceptance stories of DESIGN.md section 1):
 *   - a catalogue: ~200 funds (some closed-end with a maturity date), wealth
 *     products maturing over the 60 days after the window, IPOs with a lot date;
 *   - people in three tiers (high net worth 3%, mass affluent 27%, long tail
 *     70%) and three histories: existing customers who log in on their first
 *     visit, newcomers who browse anonymously, register and sometimes open an
 *     account, and visitors who never log in;
 *   - identity as real SDKs send it: IDM 2 ($SignUp with original_id) or IDM 3
 *     ($BindID with $identity_login_id + $identity_mobile), then "$is_login_id";
 *   - funnels: many fund views, few subscriptions, a favourite fund viewed
 *     again and again, SIP starts, IPO subscriptions and later lot wins.
 *
 * Why it is built this way: it must write >= 500k records/s, so records are
 * formatted straight into one large output buffer with literal copies and
 * hand-rolled integer formatting (no printf, no malloc per record) and the
 * buffer goes out with fwrite. Determinism comes from splitmix64 seeded per
 * person from (seed, person index): a person's records depend on nothing
 * else, and nothing reads the clock, the locale or rand().
 *
 * Type discipline: every property name has one JSON type in every record
 * (numbers stay numbers, dates are "yyyy-MM-dd" strings, lists hold strings),
 * because the schema registry fixes a property's type at first sight.
 */
#include "waymark/gen.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "waymark/alloc.h"
#include "waymark/error.h"
#include "waymark/limits.h"

#define DAY_MS 86400000LL
#define OUT_BUF_BYTES (1u << 20)
/* Largest record this file can format: all parts come from bounded tables. */
#define REC_BYTES_MAX 4096
#define N_FUNDS 200
#define N_WEALTH 40
#define N_IPO_MAX 64
#define PENDING_MAX 8
#define N(a) (sizeof(a) / sizeof((a)[0]))

/* ---------------------------------------------------------------- random */

typedef struct rng {
    uint64_t s;
} rng_t;

static inline uint64_t rng_next(rng_t *r)
{
    uint64_t z = (r->s += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

/* Uniform in [0, n) by multiply-shift (bias below 2^-32, fine for data). */
static inline uint32_t rng_below(rng_t *r, uint32_t n)
{
    return (uint32_t)(((rng_next(r) >> 32) * (uint64_t)n) >> 32);
}

static inline int rng_permille(rng_t *r, uint32_t p) { return rng_below(r, 1000) < p; }

static inline double rng_unit(rng_t *r) { return (double)(rng_next(r) >> 11) * 0x1.0p-53; }

static inline int64_t rng_range(rng_t *r, int64_t lo, int64_t hi)
{
    return lo + (int64_t)rng_below(r, (uint32_t)(hi - lo + 1));
}

/* Picks an index from integer weights. */
static uint32_t rng_weighted(rng_t *r, const uint16_t *w, uint32_t n)
{
    uint32_t total = 0;
    for (uint32_t i = 0; i < n; i++)
        total += w[i];
    uint32_t x = rng_below(r, total);
    for (uint32_t i = 0; i < n; i++) {
        if (x < w[i])
            return i;
        x -= w[i];
    }
    return n - 1;
}

static uint64_t mix_seed(uint64_t seed, uint64_t idx)
{
    rng_t r = {seed ^ (idx * 0xD1B54A32D192ED03ULL)};
    rng_next(&r);
    return rng_next(&r);
}

/* ---------------------------------------------------------------- output */

typedef struct out {
    char *buf;
    size_t len;
    size_t rec_start;
    FILE *f;
    int err;
    wm_gen_stats_t st;
    const char *project;
} out_t;

static void out_flush(out_t *o)
{
    if (o->len && !o->err && fwrite(o->buf, 1, o->len, o->f) != o->len)
        o->err = WM_EIO;
    o->len = 0;
}

static inline void put(out_t *o, const char *s, size_t n)
{
    memcpy(o->buf + o->len, s, n);
    o->len += n;
}

/* "" lit "" only compiles for a string literal, so sizeof is never a pointer's */
#define PUT(o, lit) put((o), "" lit "", sizeof("" lit "") - 1)

static inline void put_s(out_t *o, const char *s) { put(o, s, strlen(s)); }

static inline void put_u64(out_t *o, uint64_t v)
{
    char tmp[20];
    char *p = tmp + sizeof tmp;
    do {
        *--p = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    put(o, p, (size_t)(tmp + sizeof tmp - p));
}

static inline void put_i64(out_t *o, int64_t v)
{
    if (v < 0) {
        o->buf[o->len++] = '-';
        put_u64(o, (uint64_t)0 - (uint64_t)v);
    } else {
        put_u64(o, (uint64_t)v);
    }
}

/* Zero-padded decimal of exactly `width` digits. */
static inline void put_digits(out_t *o, uint64_t v, int width)
{
    for (int i = width - 1; i >= 0; i--) {
        o->buf[o->len + (size_t)i] = (char)('0' + v % 10);
        v /= 10;
    }
    o->len += (size_t)width;
}

/* A fixed-point number (value / 10^dec) as a JSON number: 1234.50 */
static inline void put_fixed(out_t *o, int64_t value, int dec)
{
    int64_t scale = 1;
    for (int i = 0; i < dec; i++)
        scale *= 10;
    put_i64(o, value / scale);
    o->buf[o->len++] = '.';
    put_digits(o, (uint64_t)(value % scale), dec);
}

/* Every generated string is plain (no quotes, backslashes or controls). */
static inline void put_str(out_t *o, const char *s)
{
    o->buf[o->len++] = '"';
    put_s(o, s);
    o->buf[o->len++] = '"';
}

/* ,"key": */
#define KEY(o, k) PUT((o), ",\"" k "\":")

static void rec_begin(out_t *o)
{
    if (OUT_BUF_BYTES - o->len < REC_BYTES_MAX)
        out_flush(o);
    o->rec_start = o->len;
}

static void rec_end(out_t *o)
{
    if (o->project) {
        PUT(o, ",\"project\":");
        put_str(o, o->project);
    }
    PUT(o, "}\n");
    size_t n = o->len - o->rec_start;
    if (n > REC_BYTES_MAX)
        abort(); /* invariant: every part is bounded; a bigger record is a bug here */
    o->st.records++;
    o->st.bytes += n;
}

/* -------------------------------------------------------------- calendar */

static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned)(y - era * 400);
    unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

static void civil_from_days(int64_t z, int *y, unsigned *m, unsigned *d)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    unsigned doe = (unsigned)(z - era * 146097);
    unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    unsigned mp = (5 * doy + 2) / 153;
    *d = doy - (153 * mp + 2) / 5 + 1;
    *m = mp < 10 ? mp + 3 : mp - 9;
    *y = (int)(yoe + era * 400 + (*m <= 2));
}

#define TZ_MS (8 * 3600 * 1000LL) /* Asia/Shanghai, no DST */

int wm_gen_parse_date(const char *s, int64_t *ms_out)
{
    if (!s || strlen(s) != 10 || s[4] != '-' || s[7] != '-')
        return WM_EINVAL;
    int v[8];
    const int pos[8] = {0, 1, 2, 3, 5, 6, 8, 9};
    for (int i = 0; i < 8; i++) {
        if (s[pos[i]] < '0' || s[pos[i]] > '9')
            return WM_EINVAL;
        v[i] = s[pos[i]] - '0';
    }
    int y = v[0] * 1000 + v[1] * 100 + v[2] * 10 + v[3];
    unsigned m = (unsigned)(v[4] * 10 + v[5]), d = (unsigned)(v[6] * 10 + v[7]);
    static const unsigned mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (y < 1970 || m < 1 || m > 12 || d < 1 || d > mdays[m - 1])
        return WM_EINVAL;
    int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    if (m == 2 && d == 29 && !leap)
        return WM_EINVAL;
    *ms_out = days_from_civil(y, m, d) * DAY_MS - TZ_MS;
    return 0;
}

/* "yyyy-MM-dd" of the local (UTC+8) day containing ms. */
static void put_date(out_t *o, int64_t ms)
{
    int64_t day = (ms + TZ_MS) / DAY_MS;
    int y;
    unsigned m, d;
    civil_from_days(day, &y, &m, &d);
    o->buf[o->len++] = '"';
    put_digits(o, (uint64_t)y, 4);
    o->buf[o->len++] = '-';
    put_digits(o, m, 2);
    o->buf[o->len++] = '-';
    put_digits(o, d, 2);
    o->buf[o->len++] = '"';
}

/* ------------------------------------------------------------ word lists */

static const char *const SURNAMES[] = {"王", "李", "张", "刘", "陈", "杨", "黄", "赵", "吴", "周",
                                       "徐", "孙", "马", "朱", "胡", "郭", "何", "高", "林", "罗",
                                       "郑", "梁", "谢", "宋", "唐", "许", "韩", "冯", "邓", "曹"};
static const char *const GIVEN[] = {"伟", "芳", "娜", "敏", "静", "丽", "强", "磊", "军", "洋",
                                    "勇", "艳", "杰", "娟", "涛", "明", "超", "秀英", "霞", "平",
                                    "刚", "桂英", "华", "建国", "志强", "晓东", "文", "婷", "宇", "欣怡"};
static const char *const CITIES[] = {"上海", "北京", "深圳", "广州", "杭州", "南京", "成都",
                                     "武汉", "西安", "苏州", "天津", "重庆", "长沙", "郑州",
                                     "青岛", "宁波", "厦门", "合肥", "福州", "济南"};
static const uint16_t CITY_W[] = {14, 13, 11, 9, 7, 6, 6, 5, 4, 4, 4, 4, 3, 3, 2, 2, 2, 2, 2, 2};
static const char *const MOBILE_PREFIX[] = {"138", "139", "137", "136", "135", "150", "151",
                                            "152", "158", "159", "182", "183", "187", "188",
                                            "130", "131", "132", "155", "156", "185", "186",
                                            "133", "153", "180", "181", "189", "177", "199"};
static const char *const FUND_HOUSES[] = {"易方达", "华夏", "南方", "嘉实", "广发", "富国",
                                          "汇添富", "招商", "博时", "鹏华", "工银瑞信", "建信",
                                          "中欧", "兴证全球", "景顺长城", "交银施罗德"};
static const char *const THEMES[] = {"蓝筹精选", "消费行业", "医疗健康", "新能源", "科技创新",
                                     "价值优选", "均衡成长", "红利", "半导体", "稳健收益",
                                     "中证白酒", "沪深300", "中证500", "创业板", "双债增强", "安心"};
static const char *const FUND_TYPES[] = {"equity", "mixed", "bond", "money", "index"};
static const char *const FUND_TYPE_CN[] = {"股票", "混合", "债券", "货币", "指数"};
static const uint16_t FUND_TYPE_W[] = {25, 35, 20, 8, 12};
static const char *const TOPICS[] = {"基金定投", "打新", "市场解读", "养老投资", "债市",
                                     "新能源", "消费", "宏观", "港股", "资产配置"};
static const char *const ARTICLE_TITLES[] = {
    "定投三年收益几何？一文看懂微笑曲线", "新股申购规则全解读", "本周市场回顾与展望",
    "个人养老金账户怎么开", "债基回撤后还能买吗", "新能源板块估值分析", "消费复苏下的投资机会",
    "降准降息对股市的影响", "南向资金持续流入说明什么", "如何做好家庭资产配置"};
static const char *const NEWS_COLUMNS[] = {"要闻", "市场", "基金", "研报", "直播", "7x24快讯"};
static const char *const BANKS[] = {"招商银行", "工商银行", "建设银行", "中国银行",
                                    "农业银行", "交通银行", "平安银行", "浦发银行"};
static const char *const BRANCHES[] = {"上海陆家嘴营业部", "北京金融大街营业部", "深圳福田营业部",
                                       "广州天河营业部", "杭州钱江新城营业部", "成都天府营业部"};
static const char *const REG_CHANNELS[] = {"app_store", "wechat_ad", "douyin_ad", "branch_referral",
                                           "friend_invite", "bank_partner"};
static const uint16_t REG_CHANNEL_W[] = {30, 20, 15, 15, 12, 8};
static const char *const TIERS[] = {"high_net_worth", "mass_affluent", "long_tail"};
static const uint16_t TIER_W[] = {3, 27, 70};
static const char *const IPO_NAMES[] = {"华芯微电子", "中科智能", "恒瑞新材", "海川医疗", "东岳储能",
                                        "星河航天", "绿源生物", "云帆数据", "金桥装备", "天合光电",
                                        "博远软件", "鼎盛化工"};
static const char *const ANDROID_MODELS[][2] = {{"HUAWEI", "ALN-AL00"}, {"Xiaomi", "2211133C"},
                                                {"OPPO", "PHB110"},     {"vivo", "V2309A"},
                                                {"HONOR", "ANY-AN00"},  {"samsung", "SM-S9180"}};
static const char *const IOS_MODELS[] = {"iPhone14,5", "iPhone15,2", "iPhone15,4", "iPhone16,1",
                                         "iPhone13,2"};
static const char *const CARRIERS[] = {"中国移动", "中国联通", "中国电信"};
static const char *const APP_VERSIONS[] = {"8.2.1", "8.2.0", "8.1.5", "8.0.3"};
static const char *const LOGIN_METHODS[] = {"password", "sms", "face_id", "wechat"};
static const char *const SIP_PERIODS[] = {"weekly", "biweekly", "monthly"};

/* ------------------------------------------------------------- catalogue */

typedef struct fund {
    char code[8];
    char name[96];
    uint8_t type;          /* index into FUND_TYPES */
    uint8_t risk;          /* 1..5 (R1..R5) */
    int32_t nav_1e4;       /* net asset value x 10^4 */
    int64_t maturity_ms;   /* 0 unless closed-end */
    char manager[16];
} fund_t;

typedef struct ipo {
    char code[8];
    const char *name;
    int64_t subscribe_ms;  /* start of the subscription day */
    int64_t lot_ms;        /* lot results day */
    int32_t price_100;     /* issue price x 100 */
} ipo_t;

typedef struct catalogue {
    fund_t funds[N_FUNDS];
    ipo_t ipos[N_IPO_MAX];
    uint32_t n_ipos;
} catalogue_t;

static void make_person_name(rng_t *r, char *dst, size_t cap)
{
    const char *s = SURNAMES[rng_below(r, N(SURNAMES))];
    const char *g = GIVEN[rng_below(r, N(GIVEN))];
    snprintf(dst, cap, "%s%s", s, g);
}

static uint8_t fund_risk(rng_t *r, uint8_t type)
{
    static const uint8_t base[] = {4, 3, 2, 1, 3}; /* equity mixed bond money index */
    int risk = base[type] + (rng_permille(r, 300) ? (rng_permille(r, 500) ? 1 : -1) : 0);
    return (uint8_t)(risk < 1 ? 1 : risk > 5 ? 5 : risk);
}

static void build_funds(catalogue_t *c, rng_t *r, int64_t window_end_ms)
{
    uint32_t base = rng_below(r, 900000);
    for (uint32_t i = 0; i < N_FUNDS; i++) {
        fund_t *f = &c->funds[i];
        /* multiplier coprime to 10^6 keeps the 6-digit codes distinct */
        snprintf(f->code, sizeof f->code, "%06u", (base + i * 7919u) % 1000000u);
        f->type = (uint8_t)rng_weighted(r, FUND_TYPE_W, N(FUND_TYPE_W));
        f->risk = fund_risk(r, f->type);
        snprintf(f->name, sizeof f->name, "%s%s%s%s", FUND_HOUSES[rng_below(r, N(FUND_HOUSES))],
                 THEMES[rng_below(r, N(THEMES))], FUND_TYPE_CN[f->type], rng_permille(r, 500) ? "A" : "C");
        f->nav_1e4 = f->type == 3 ? 10000 : (int32_t)rng_range(r, 6000, 38000);
        /* one in ten is closed-end and matures within 60 days of the window */
        f->maturity_ms = rng_permille(r, 100) ? window_end_ms + rng_range(r, 0, 59) * DAY_MS : 0;
        make_person_name(r, f->manager, sizeof f->manager);
    }
}

static void build_ipos(catalogue_t *c, rng_t *r, int64_t start_ms, uint32_t days)
{
    /* about one IPO a week, at least two */
    uint32_t n = days / 7 + 2;
    c->n_ipos = n > N_IPO_MAX ? N_IPO_MAX : n;
    static const char *const boards[] = {"688", "301", "001", "603"};
    for (uint32_t i = 0; i < c->n_ipos; i++) {
        ipo_t *p = &c->ipos[i];
        snprintf(p->code, sizeof p->code, "%s%03u", boards[rng_below(r, N(boards))], rng_below(r, 1000));
        p->name = IPO_NAMES[(i + rng_below(r, 3)) % N(IPO_NAMES)];
        p->subscribe_ms = start_ms + (int64_t)rng_below(r, days) * DAY_MS;
        p->lot_ms = p->subscribe_ms + 2 * DAY_MS;
        p->price_100 = (int32_t)rng_range(r, 800, 8000);
    }
}

static void item_head(out_t *o, const char *item_type, const char *item_id, int64_t t, rng_t *r)
{
    rec_begin(o);
    PUT(o, "{\"type\":\"item_set\",\"item_type\":");
    put_str(o, item_type);
    PUT(o, ",\"item_id\":");
    put_str(o, item_id);
    PUT(o, ",\"time\":");
    put_i64(o, t);
    PUT(o, ",\"_track_id\":");
    put_u64(o, rng_next(r) >> 33);
    PUT(o, ",\"lib\":{\"$lib\":\"Java\",\"$lib_version\":\"3.6.8\",\"$lib_method\":\"code\"}"
           ",\"properties\":{\"$lib\":\"Java\"");
}

static void write_fund_item(out_t *o, const fund_t *f, int64_t t, rng_t *r)
{
    item_head(o, "fund", f->code, t, r);
    KEY(o, "fund_name");
    put_str(o, f->name);
    KEY(o, "fund_type");
    put_str(o, FUND_TYPES[f->type]);
    PUT(o, ",\"risk_level\":\"R");
    o->buf[o->len++] = (char)('0' + f->risk);
    o->buf[o->len++] = '"';
    KEY(o, "manager");
    put_str(o, f->manager);
    KEY(o, "nav");
    put_fixed(o, f->nav_1e4, 4);
    KEY(o, "is_closed_end");
    put_s(o, f->maturity_ms ? "true" : "false");
    if (f->maturity_ms) {
        KEY(o, "maturity_date");
        put_date(o, f->maturity_ms);
    }
    PUT(o, "}");
    rec_end(o);
}

static void write_wealth_item(out_t *o, uint32_t i, int64_t t, int64_t window_end_ms, rng_t *r)
{
    char id[16];
    snprintf(id, sizeof id, "WM%06u", 100000 + i * 37u);
    char name[96];
    static const char *const kinds[] = {"安享", "稳盈", "天天利", "季季红", "年年丰"};
    snprintf(name, sizeof name, "%s%s%u号理财", BANKS[rng_below(r, N(BANKS))],
             kinds[rng_below(r, N(kinds))], 1 + rng_below(r, 30));
    item_head(o, "wealth", id, t, r);
    KEY(o, "product_name");
    put_str(o, name);
    PUT(o, ",\"risk_level\":\"R");
    o->buf[o->len++] = (char)('1' + rng_below(r, 3));
    o->buf[o->len++] = '"';
    KEY(o, "expected_yield");
    put_fixed(o, rng_range(r, 180, 420), 2);
    KEY(o, "min_amount");
    put_u64(o, rng_permille(r, 500) ? 10000 : 1000);
    KEY(o, "maturity_date");
    put_date(o, window_end_ms + (int64_t)(i % 60) * DAY_MS);
    PUT(o, "}");
    rec_end(o);
}

static void write_ipo_item(out_t *o, const ipo_t *p, int64_t t, rng_t *r)
{
    item_head(o, "ipo", p->code, t, r);
    KEY(o, "stock_code");
    put_str(o, p->code);
    KEY(o, "name");
    put_str(o, p->name);
    KEY(o, "issue_price");
    put_fixed(o, p->price_100, 2);
    KEY(o, "subscribe_date");
    put_date(o, p->subscribe_ms);
    KEY(o, "lot_date");
    put_date(o, p->lot_ms);
    PUT(o, "}");
    rec_end(o);
}

static void write_catalogue(out_t *o, const wm_gen_opts_t *opt, catalogue_t *c)
{
    rng_t r = {mix_seed(opt->seed, UINT64_MAX)};
    int64_t end_ms = opt->start_ms + (int64_t)opt->days * DAY_MS;
    build_funds(c, &r, end_ms);
    build_ipos(c, &r, opt->start_ms, opt->days);
    int64_t t = opt->start_ms;
    for (uint32_t i = 0; i < N_FUNDS; i++)
        write_fund_item(o, &c->funds[i], t, &r);
    for (uint32_t i = 0; i < N_WEALTH; i++)
        write_wealth_item(o, i, t, end_ms, &r);
    for (uint32_t i = 0; i < c->n_ipos; i++)
        write_ipo_item(o, &c->ipos[i], t, &r);
}

/* ---------------------------------------------------------------- people */

enum channel { CH_APP, CH_H5, CH_MP, CH_WECOM, CH_BRANCH, CH__COUNT };
static const char *const CHANNELS[] = {"app", "h5", "mini_program", "wecom", "branch"};
enum history { H_EXISTING, H_NEWCOMER, H_VISITOR };

typedef struct pending {
    int64_t t;
    uint16_t ipo;
    uint16_t lots;
} pending_t;

typedef struct person {
    rng_t r;
    const catalogue_t *cat;
    char anon[40];
    char login[12];
    char mobile[12];
    enum history hist;
    uint8_t idm3;          /* IDM 3 identities instead of $SignUp */
    uint8_t primary;       /* client channel of anonymous visits */
    uint8_t ios;
    uint8_t model;
    uint8_t app_ver;
    uint8_t carrier;
    uint8_t tier;
    uint8_t risk;          /* customer risk 1..5 (C1..C5) */
    uint8_t logged_in;
    uint8_t registered;
    uint8_t account;       /* account opened */
    uint8_t will_open;     /* newcomer who opens an account in the window */
    uint8_t sessions_to_login;
    uint16_t fav_fund;
    uint16_t last_fund;
    uint8_t viewed_fav;
    uint8_t n_pending;
    pending_t pending[PENDING_MAX];
    double sessions_per_day;
    int64_t t;             /* time of the last record written (ms) */
} person_t;

static void make_anon_id(person_t *p)
{
    uint64_t a = rng_next(&p->r), b = rng_next(&p->r);
    static const char hex[] = "0123456789abcdef";
    char *d = p->anon;
    if (p->primary == CH_APP) {
        /* device UUID as app SDKs report it */
        for (int i = 0; i < 32; i++) {
            if (i == 8 || i == 12 || i == 16 || i == 20)
                *d++ = '-';
            uint64_t w = i < 16 ? a : b;
            *d++ = hex[(w >> ((i % 16) * 4)) & 15];
        }
    } else {
        /* web/mini-program cookie id: time-ish hex prefix + random parts */
        for (int i = 0; i < 11; i++)
            *d++ = hex[(a >> (i * 4)) & 15];
        *d++ = '-';
        for (int i = 0; i < 14; i++)
            *d++ = hex[(b >> (i * 4)) & 15];
    }
    *d = '\0';
}

static void person_init(person_t *p, const wm_gen_opts_t *opt, const catalogue_t *cat, uint64_t idx)
{
    memset(p, 0, sizeof *p);
    p->r.s = mix_seed(opt->seed, idx);
    p->cat = cat;
    rng_t *r = &p->r;
    uint32_t h = rng_below(r, 100);
    p->hist = h < 60 ? H_EXISTING : h < 88 ? H_NEWCOMER : H_VISITOR;
    p->idm3 = rng_permille(r, 350);
    static const uint16_t prim_w[] = {60, 22, 18};
    p->primary = (uint8_t)rng_weighted(r, prim_w, N(prim_w));
    p->ios = rng_permille(r, 420);
    p->model = (uint8_t)rng_below(r, p->ios ? N(IOS_MODELS) : N(ANDROID_MODELS));
    p->app_ver = (uint8_t)rng_below(r, N(APP_VERSIONS));
    p->carrier = (uint8_t)rng_below(r, N(CARRIERS));
    p->tier = (uint8_t)rng_weighted(r, TIER_W, N(TIER_W));
    static const uint16_t risk_w[] = {10, 25, 35, 20, 10};
    p->risk = (uint8_t)(1 + rng_weighted(r, risk_w, N(risk_w)));
    make_anon_id(p);
    /* bijection of the index onto 8 digits: distinct login ids per seed */
    uint64_t lid = (idx * 7919u + (opt->seed % 90000000u)) % 90000000u + 10000000u;
    snprintf(p->login, sizeof p->login, "c%08u", (unsigned)lid);
    snprintf(p->mobile, sizeof p->mobile, "%s%08u", MOBILE_PREFIX[rng_below(r, N(MOBILE_PREFIX))],
             rng_below(r, 100000000));
    p->registered = p->account = p->hist == H_EXISTING;
    p->will_open = p->hist == H_NEWCOMER && rng_permille(r, 450);
    p->sessions_to_login = p->hist == H_EXISTING ? 0 : (uint8_t)(1 + rng_below(r, 4));
    p->fav_fund = (uint16_t)rng_below(r, N_FUNDS);
    p->last_fund = p->fav_fund;
    /* activity: tier and a heavy-tailed personal factor */
    static const double tier_f[] = {1.6, 1.2, 0.9};
    static const double act[] = {0.25, 0.5, 0.8, 1.2, 1.8, 3.0};
    static const uint16_t act_w[] = {20, 22, 22, 18, 12, 6};
    p->sessions_per_day = 0.36 * tier_f[p->tier] * act[rng_weighted(r, act_w, N(act_w))];
    if (p->hist == H_VISITOR)
        p->sessions_per_day *= 0.5;
    p->t = opt->start_ms;
}

/* ----------------------------------------------------------- record head */

/* Writes the envelope up to and including the opening of "properties" and
 * the channel's preset properties. Identity fields follow the person's IDM
 * version and login state. */
static void event_head(out_t *o, person_t *p, int ch, const char *type, const char *event)
{
    rec_begin(o);
    PUT(o, "{\"type\":\"");
    put_s(o, type);
    PUT(o, "\",\"event\":\"");
    put_s(o, event);
    PUT(o, "\",\"distinct_id\":");
    put_str(o, p->logged_in ? p->login : p->anon);
    PUT(o, ",\"time\":");
    put_i64(o, p->t);
    PUT(o, ",\"_track_id\":");
    put_u64(o, rng_next(&p->r) >> 33);
    int client = ch <= CH_MP;
    if (client) {
        if (p->logged_in) {
            PUT(o, ",\"login_id\":");
            put_str(o, p->login);
        }
        PUT(o, ",\"anonymous_id\":");
        put_str(o, p->anon);
    }
    if (p->idm3) {
        PUT(o, ",\"identities\":{");
        int first = 1;
        if (p->logged_in) {
            PUT(o, "\"$identity_login_id\":");
            put_str(o, p->login);
            first = 0;
        }
        if (client) {
            if (!first)
                PUT(o, ",");
            put_s(o, p->primary == CH_APP ? "\"$identity_anonymous_id\":" : "\"$identity_cookie_id\":");
            put_str(o, p->anon);
        }
        PUT(o, "}");
    }
    if (ch == CH_H5 || ch == CH_MP) {
        PUT(o, ",\"_flush_time\":");
        put_i64(o, p->t + 200 + rng_below(&p->r, 6000));
    }
    switch (ch) {
    case CH_APP:
        PUT(o, ",\"lib\":{\"$lib\":");
        put_s(o, p->ios ? "\"iOS\",\"$lib_version\":\"4.5.6\"" : "\"Android\",\"$lib_version\":\"6.8.0\"");
        PUT(o, ",\"$lib_method\":\"code\",\"$app_version\":");
        put_str(o, APP_VERSIONS[p->app_ver]);
        PUT(o, "},\"properties\":{\"$lib\":");
        put_s(o, p->ios ? "\"iOS\",\"$lib_version\":\"4.5.6\"" : "\"Android\",\"$lib_version\":\"6.8.0\"");
        PUT(o, ",\"$app_version\":");
        put_str(o, APP_VERSIONS[p->app_ver]);
        if (p->ios) {
            PUT(o, ",\"$os\":\"iOS\",\"$os_version\":\"17.5\",\"$manufacturer\":\"Apple\",\"$model\":");
            put_str(o, IOS_MODELS[p->model]);
            PUT(o, ",\"$screen_width\":390,\"$screen_height\":844");
        } else {
            PUT(o, ",\"$os\":\"Android\",\"$os_version\":\"13\",\"$manufacturer\":");
            put_str(o, ANDROID_MODELS[p->model][0]);
            PUT(o, ",\"$model\":");
            put_str(o, ANDROID_MODELS[p->model][1]);
            PUT(o, ",\"$screen_width\":1080,\"$screen_height\":2400");
        }
        PUT(o, ",\"$carrier\":");
        put_str(o, CARRIERS[p->carrier]);
        put_s(o, rng_permille(&p->r, 650) ? ",\"$wifi\":true,\"$network_type\":\"WIFI\""
                                         : ",\"$wifi\":false,\"$network_type\":\"5G\"");
        PUT(o, ",\"$timezone_offset\":-480");
        break;
    case CH_H5:
        PUT(o, ",\"lib\":{\"$lib\":\"js\",\"$lib_version\":\"1.26.7\",\"$lib_method\":\"code\"}"
               ",\"properties\":{\"$lib\":\"js\",\"$lib_version\":\"1.26.7\"");
        put_s(o, p->ios ? ",\"$os\":\"iOS\",\"$screen_width\":390,\"$screen_height\":844"
                        : ",\"$os\":\"Android\",\"$screen_width\":412,\"$screen_height\":915");
        PUT(o, ",\"$timezone_offset\":-480,\"$browser\":\"WeChat\"");
        break;
    case CH_MP:
        PUT(o, ",\"lib\":{\"$lib\":\"MiniProgram\",\"$lib_version\":\"1.22.8\",\"$lib_method\":\"code\"}"
               ",\"properties\":{\"$lib\":\"MiniProgram\",\"$lib_version\":\"1.22.8\"");
        put_s(o, p->ios ? ",\"$os\":\"iOS\",\"$os_version\":\"17.5\"" : ",\"$os\":\"Android\",\"$os_version\":\"13\"");
        PUT(o, ",\"$scene\":\"1089\",\"$network_type\":\"WIFI\",\"$timezone_offset\":-480");
        break;
    default: /* WeCom and branch systems report through the Java server SDK */
        PUT(o, ",\"lib\":{\"$lib\":\"Java\",\"$lib_version\":\"3.6.8\",\"$lib_method\":\"code\"}"
               ",\"properties\":{\"$lib\":\"Java\",\"$lib_version\":\"3.6.8\"");
        break;
    }
    KEY(o, "channel");
    put_str(o, CHANNELS[ch]);
    if (p->logged_in)
        PUT(o, ",\"$is_login_id\":true");
    o->st.events++;
}

/* H5 and mini-program events carry the page they happened on. */
static void put_page(out_t *o, int ch, const char *path, const char *title)
{
    if (ch == CH_H5) {
        PUT(o, ",\"$url\":\"https://m.waymark-sec.cn");
        put_s(o, path);
        PUT(o, "\",\"$url_path\":");
        put_str(o, path);
        KEY(o, "$title");
        put_str(o, title);
    } else if (ch == CH_MP) {
        PUT(o, ",\"$url_path\":\"pages");
        put_s(o, path);
        PUT(o, "\",\"$title\":");
        put_str(o, title);
    }
}

static void event_end(out_t *o)
{
    PUT(o, "}");
    rec_end(o);
}

/* ------------------------------------------------------------ the events */

static void ev_start(out_t *o, person_t *p, int ch, int first)
{
    if (ch == CH_APP) {
        event_head(o, p, ch, "track", "$AppStart");
        PUT(o, ",\"$is_first_time\":");
        put_s(o, first ? "true" : "false");
        PUT(o, ",\"$resume_from_background\":");
        put_s(o, !first && rng_permille(&p->r, 400) ? "true" : "false");
    } else {
        event_head(o, p, ch, "track", "$pageview");
        put_page(o, ch, "/index", "首页");
        KEY(o, "$is_first_day");
        put_s(o, first ? "true" : "false");
    }
    event_end(o);
}

static void ev_login(out_t *o, person_t *p, int ch)
{
    event_head(o, p, ch, "track", "Login");
    put_page(o, ch, "/login", "登录");
    KEY(o, "login_method");
    put_str(o, LOGIN_METHODS[rng_below(&p->r, N(LOGIN_METHODS))]);
    event_end(o);
}

static void rec_lib_java(out_t *o)
{
    PUT(o, ",\"lib\":{\"$lib\":\"Java\",\"$lib_version\":\"3.6.8\",\"$lib_method\":\"code\"}");
}

static void write_profile(out_t *o, person_t *p)
{
    rec_begin(o);
    PUT(o, "{\"type\":\"profile_set\",\"distinct_id\":");
    put_str(o, p->login);
    PUT(o, ",\"time\":");
    put_i64(o, p->t);
    rec_lib_java(o);
    PUT(o, ",\"properties\":{\"$is_login_id\":true,\"name\":");
    char name[32];
    make_person_name(&p->r, name, sizeof name);
    put_str(o, name);
    KEY(o, "mobile");
    put_str(o, p->mobile);
    KEY(o, "gender");
    put_str(o, rng_permille(&p->r, 520) ? "男" : "女");
    KEY(o, "age");
    put_u64(o, (uint64_t)rng_range(&p->r, 20, 68));
    KEY(o, "city");
    put_str(o, CITIES[rng_weighted(&p->r, CITY_W, N(CITY_W))]);
    PUT(o, ",\"risk_level\":\"C");
    o->buf[o->len++] = (char)('0' + p->risk);
    o->buf[o->len++] = '"';
    KEY(o, "tier");
    put_str(o, TIERS[p->tier]);
    KEY(o, "register_channel");
    put_str(o, REG_CHANNELS[rng_weighted(&p->r, REG_CHANNEL_W, N(REG_CHANNEL_W))]);
    PUT(o, ",\"timezone\":\"Asia/Shanghai\",\"account_opened\":");
    put_s(o, p->account ? "true" : "false");
    KEY(o, "aum");
    static const int64_t lo[] = {6000000, 500000, 0}, hi[] = {50000000, 6000000, 500000};
    int64_t aum = p->account ? lo[p->tier] + (int64_t)(rng_unit(&p->r) * (double)(hi[p->tier] - lo[p->tier])) : 0;
    put_fixed(o, aum * 100 + rng_below(&p->r, 100), 2);
    KEY(o, "customer_no");
    put_str(o, p->login);
    PUT(o, "}");
    rec_end(o);
}

/* The moment a person logs in for the first time on this device: IDM 2
 * sends $SignUp linking the anonymous id, IDM 3 binds login id and mobile. */
static void identify(out_t *o, person_t *p, int ch)
{
    p->logged_in = 1;
    if (p->idm3) {
        rec_begin(o);
        PUT(o, "{\"type\":\"track_id_bind\",\"event\":\"$BindID\",\"distinct_id\":");
        put_str(o, p->login);
        PUT(o, ",\"time\":");
        put_i64(o, p->t);
        PUT(o, ",\"_track_id\":");
        put_u64(o, rng_next(&p->r) >> 33);
        PUT(o, ",\"identities\":{\"$identity_login_id\":");
        put_str(o, p->login);
        PUT(o, ",\"$identity_mobile\":");
        put_str(o, p->mobile);
        put_s(o, p->primary == CH_APP ? ",\"$identity_anonymous_id\":" : ",\"$identity_cookie_id\":");
        put_str(o, p->anon);
        PUT(o, "}");
        rec_lib_java(o);
        PUT(o, ",\"properties\":{\"$lib\":\"Java\",\"$lib_version\":\"3.6.8\",\"$is_login_id\":true}");
        rec_end(o);
        o->st.events++;
    } else {
        event_head(o, p, ch, "track_signup", "$SignUp");
        PUT(o, "}"); /* close properties; original_id follows (field order is free) */
        PUT(o, ",\"original_id\":");
        put_str(o, p->anon);
        rec_end(o);
    }
    p->t += 1;
    write_profile(o, p);
}

static void ev_register(out_t *o, person_t *p, int ch)
{
    event_head(o, p, ch, "track", "Register");
    put_page(o, ch, "/register", "注册");
    KEY(o, "register_channel");
    put_str(o, REG_CHANNELS[rng_weighted(&p->r, REG_CHANNEL_W, N(REG_CHANNEL_W))]);
    event_end(o);
    p->registered = 1;
}

static void ev_open_account(out_t *o, person_t *p, int ch, int ok)
{
    event_head(o, p, ch, "track", "OpenAccount");
    put_page(o, ch, "/account/open", "开户");
    KEY(o, "branch_name");
    put_str(o, BRANCHES[rng_below(&p->r, N(BRANCHES))]);
    KEY(o, "is_success");
    put_s(o, ok ? "true" : "false");
    event_end(o);
    if (!ok)
        return;
    p->account = 1;
    p->t += 500;
    rec_begin(o);
    PUT(o, "{\"type\":\"profile_set\",\"distinct_id\":");
    put_str(o, p->login);
    PUT(o, ",\"time\":");
    put_i64(o, p->t);
    rec_lib_java(o);
    PUT(o, ",\"properties\":{\"$is_login_id\":true,\"account_opened\":true,\"open_date\":");
    put_date(o, p->t);
    PUT(o, "}");
    rec_end(o);
}

static void ev_news(out_t *o, person_t *p, int ch)
{
    event_head(o, p, ch, "track", "BrowseNews");
    put_page(o, ch, "/news", "资讯");
    KEY(o, "column");
    put_str(o, NEWS_COLUMNS[rng_below(&p->r, N(NEWS_COLUMNS))]);
    event_end(o);
}

static void ev_article(out_t *o, person_t *p, int ch)
{
    uint32_t a = rng_below(&p->r, 400);
    event_head(o, p, ch, "track", "ReadArticle");
    put_page(o, ch, "/article", "文章详情");
    PUT(o, ",\"article_id\":\"A");
    put_digits(o, 2026000 + a, 7);
    PUT(o, "\",\"topic\":");
    put_str(o, TOPICS[a % N(TOPICS)]);
    KEY(o, "article_title");
    put_str(o, ARTICLE_TITLES[a % N(ARTICLE_TITLES)]);
    KEY(o, "read_duration");
    put_fixed(o, rng_range(&p->r, 30, 4000), 1);
    event_end(o);
}

static void put_fund_props(out_t *o, const fund_t *f)
{
    KEY(o, "fund_code");
    put_str(o, f->code);
    KEY(o, "fund_name");
    put_str(o, f->name);
    KEY(o, "fund_type");
    put_str(o, FUND_TYPES[f->type]);
    PUT(o, ",\"risk_level\":\"R");
    o->buf[o->len++] = (char)('0' + f->risk);
    o->buf[o->len++] = '"';
}

static uint16_t pick_fund(person_t *p)
{
    /* the favourite fund comes back often: "viewed 3 times in 7 days" */
    if (rng_permille(&p->r, 450))
        return p->fav_fund;
    return (uint16_t)rng_below(&p->r, N_FUNDS);
}

static void ev_view_fund(out_t *o, person_t *p, int ch)
{
    uint16_t fi = pick_fund(p);
    const fund_t *f = &p->cat->funds[fi];
    p->last_fund = fi;
    p->viewed_fav |= fi == p->fav_fund;
    event_head(o, p, ch, "track", "ViewFundDetail");
    put_page(o, ch, "/fund/detail", "基金详情");
    put_fund_props(o, f);
    KEY(o, "nav");
    put_fixed(o, f->nav_1e4, 4);
    static const char *const from[] = {"home_banner", "search", "rank_list", "article", "push"};
    KEY(o, "from_page");
    put_str(o, from[rng_below(&p->r, N(from))]);
    event_end(o);
}

static void ev_compare(out_t *o, person_t *p, int ch)
{
    uint32_t n = 2 + rng_below(&p->r, 2);
    event_head(o, p, ch, "track", "CompareFunds");
    put_page(o, ch, "/fund/compare", "基金对比");
    PUT(o, ",\"fund_codes\":[");
    put_str(o, p->cat->funds[p->last_fund].code);
    for (uint32_t i = 1; i < n; i++) {
        PUT(o, ",");
        put_str(o, p->cat->funds[rng_below(&p->r, N_FUNDS)].code);
    }
    PUT(o, "],\"fund_count\":");
    put_u64(o, n);
    event_end(o);
}

static int64_t amount_cents(person_t *p)
{
    static const int64_t base[] = {5000000, 500000, 50000}; /* yuan x 100 by tier, typical */
    int64_t b = base[p->tier];
    return (b / 10 + (int64_t)(rng_unit(&p->r) * (double)b)) / 100 * 100;
}

/* Suitability: never subscribe above the customer's risk level. */
static int suitable(const person_t *p, const fund_t *f) { return f->risk <= p->risk; }

static void ev_subscribe(out_t *o, person_t *p, int ch)
{
    const fund_t *f = &p->cat->funds[p->last_fund];
    event_head(o, p, ch, "track", "SubscribeFund");
    put_page(o, ch, "/fund/buy", "基金申购");
    put_fund_props(o, f);
    KEY(o, "amount");
    put_fixed(o, amount_cents(p), 2);
    KEY(o, "pay_method");
    put_str(o, rng_permille(&p->r, 700) ? "balance" : "bank_card");
    event_end(o);
}

static void ev_sip(out_t *o, person_t *p, int ch)
{
    const fund_t *f = &p->cat->funds[p->last_fund];
    event_head(o, p, ch, "track", "StartSIP");
    put_page(o, ch, "/fund/sip", "基金定投");
    put_fund_props(o, f);
    KEY(o, "amount");
    put_fixed(o, (int64_t)(1 + rng_below(&p->r, 20)) * 50000, 2);
    KEY(o, "period");
    put_str(o, SIP_PERIODS[rng_below(&p->r, N(SIP_PERIODS))]);
    KEY(o, "deduct_day");
    put_u64(o, 1 + rng_below(&p->r, 28));
    event_end(o);
}

static void ev_sell(out_t *o, person_t *p, int ch)
{
    const fund_t *f = &p->cat->funds[p->fav_fund];
    event_head(o, p, ch, "track", "SellFund");
    put_page(o, ch, "/fund/sell", "基金赎回");
    put_fund_props(o, f);
    KEY(o, "amount");
    put_fixed(o, amount_cents(p) / 2, 2);
    event_end(o);
}

static void ev_transfer(out_t *o, person_t *p, int ch)
{
    event_head(o, p, ch, "track", "TransferIn");
    put_page(o, ch, "/transfer", "银证转账");
    KEY(o, "amount");
    put_fixed(o, amount_cents(p), 2);
    KEY(o, "bank");
    put_str(o, BANKS[rng_below(&p->r, N(BANKS))]);
    event_end(o);
}

static void ev_ipo_subscribe(out_t *o, person_t *p, int ch, uint32_t ii)
{
    const ipo_t *ipo = &p->cat->ipos[ii];
    event_head(o, p, ch, "track", "IPOSubscribe");
    put_page(o, ch, "/ipo", "新股申购");
    KEY(o, "stock_code");
    put_str(o, ipo->code);
    KEY(o, "stock_name");
    put_str(o, ipo->name);
    KEY(o, "issue_price");
    put_fixed(o, ipo->price_100, 2);
    event_end(o);
    /* about one in eight wins a lot, announced on the lot day evening */
    if (p->n_pending < PENDING_MAX && rng_permille(&p->r, 125)) {
        pending_t *pe = &p->pending[p->n_pending++];
        pe->t = ipo->lot_ms + (18 * 3600 + (int64_t)rng_below(&p->r, 7200)) * 1000;
        pe->ipo = (uint16_t)ii;
        pe->lots = (uint16_t)(1 + rng_below(&p->r, 2));
    }
}

static void ev_lot_won(out_t *o, person_t *p, const pending_t *pe)
{
    const ipo_t *ipo = &p->cat->ipos[pe->ipo];
    p->t = pe->t > p->t ? pe->t : p->t + 1;
    /* the broker's back office reports lot results server-side */
    event_head(o, p, CH_BRANCH, "track", "IPOLotWon");
    KEY(o, "stock_code");
    put_str(o, ipo->code);
    KEY(o, "stock_name");
    put_str(o, ipo->name);
    KEY(o, "lots");
    put_u64(o, pe->lots);
    KEY(o, "amount");
    put_fixed(o, (int64_t)ipo->price_100 * 500 * pe->lots, 2);
    event_end(o);
}

/* Emits pending lot wins due before `t`, keeping the person's records in
 * time order. Pendings are added in time order, so the queue is sorted. */
static void flush_pending(out_t *o, person_t *p, int64_t t)
{
    uint32_t done = 0;
    while (done < p->n_pending && p->pending[done].t <= t)
        ev_lot_won(o, p, &p->pending[done++]);
    if (done) {
        memmove(p->pending, p->pending + done, (p->n_pending - done) * sizeof p->pending[0]);
        p->n_pending = (uint8_t)(p->n_pending - done);
    }
}

/* ------------------------------------------------------------- sessions */

typedef struct day_ctx {
    int64_t day_ms;   /* 00:00 local of this day */
    int32_t ipo_today; /* index of an IPO subscribable today, or -1 */
} day_ctx_t;

static void advance(out_t *o, person_t *p, uint32_t lo_s, uint32_t hi_s)
{
    p->t += (int64_t)(lo_s + rng_below(&p->r, hi_s - lo_s + 1)) * 1000 + rng_below(&p->r, 1000);
    flush_pending(o, p, p->t);
}

/* One content event chosen by the funnel; returns 0 when the session ends.
 * A trade the person cannot make (not logged in, no account, product above
 * their risk level, no IPO today) turns into one more fund view: that is the
 * "many view, few buy" shape of real funnels. */
static int content_event(out_t *o, person_t *p, int ch, const day_ctx_t *dc)
{
    rng_t *r = &p->r;
    uint32_t x = rng_below(r, 1000);
    int can_trade = p->logged_in && p->account;
    int fits = suitable(p, &p->cat->funds[p->last_fund]);
    if (x < 240) {
        ev_news(o, p, ch);
    } else if (x < 430) {
        ev_article(o, p, ch);
    } else if (x < 820 && x >= 770) {
        ev_compare(o, p, ch);
    } else if (x < 860 && x >= 820 && can_trade && fits && rng_permille(r, 400)) {
        ev_subscribe(o, p, ch);
    } else if (x < 880 && x >= 860 && can_trade && fits && rng_permille(r, 400)) {
        ev_sip(o, p, ch);
    } else if (x < 910 && x >= 880 && can_trade && dc->ipo_today >= 0) {
        ev_ipo_subscribe(o, p, ch, (uint32_t)dc->ipo_today);
    } else if (x < 915 && x >= 910 && can_trade) {
        ev_sell(o, p, ch);
    } else if (x < 930 && x >= 915 && can_trade) {
        ev_transfer(o, p, ch);
    } else if (x >= 930) {
        return 0;
    } else {
        ev_view_fund(o, p, ch);
    }
    return 1;
}

static int pick_channel(person_t *p)
{
    if (!p->logged_in)
        return p->primary;
    uint32_t x = rng_below(&p->r, 100);
    if (x < 6)
        return CH_WECOM;
    if (x < 8)
        return CH_BRANCH;
    if (x < 18)
        return p->primary == CH_H5 ? CH_APP : CH_H5;
    return p->primary;
}

/* Starts the session: the app launch or landing page, and the login that a
 * visit needs (first identification, registration, or a returning login). */
static void session_open(out_t *o, person_t *p, int ch, int first)
{
    if (ch <= CH_MP)
        ev_start(o, p, ch, first);
    if (p->logged_in) {
        if (ch != CH_APP && ch <= CH_MP && rng_permille(&p->r, 300)) {
            advance(o, p, 3, 20);
            ev_login(o, p, ch);
        }
        return;
    }
    if (p->hist == H_VISITOR || p->sessions_to_login-- > 1)
        return;
    advance(o, p, 5, 40);
    if (!p->registered)
        ev_register(o, p, ch);
    identify(o, p, ch);
    advance(o, p, 1, 5);
    ev_login(o, p, ch);
}

static void session(out_t *o, person_t *p, const day_ctx_t *dc, int first)
{
    int ch = pick_channel(p);
    session_open(o, p, ch, first);
    if (p->will_open && p->logged_in && !p->account && rng_permille(&p->r, 300)) {
        advance(o, p, 20, 300);
        ev_open_account(o, p, ch, rng_permille(&p->r, 800));
    }
    uint32_t n = 1 + rng_below(&p->r, 4);
    for (uint32_t i = 0; i < n; i++) {
        advance(o, p, 5, 180);
        if (!content_event(o, p, ch, dc))
            break;
    }
}

/* Hour of day weighted to trading hours and the evening. */
static const uint16_t HOUR_W[24] = {1, 1, 1, 1, 1, 1, 3, 8, 14, 22, 20, 16,
                                    12, 16, 18, 12, 8, 8, 9, 12, 14, 13, 9, 4};

static uint32_t poisson(rng_t *r, double lambda)
{
    double l = exp(-lambda), prod = rng_unit(r);
    uint32_t k = 0;
    while (prod > l && k < 8) {
        prod *= rng_unit(r);
        k++;
    }
    return k;
}

static void write_person(out_t *o, const wm_gen_opts_t *opt, const catalogue_t *cat, uint64_t idx)
{
    person_t p;
    person_init(&p, opt, cat, idx);
    int first = 1;
    for (uint32_t d = 0; d < opt->days; d++) {
        day_ctx_t dc = {.day_ms = opt->start_ms + (int64_t)d * DAY_MS, .ipo_today = -1};
        for (uint32_t i = 0; i < cat->n_ipos; i++)
            if (cat->ipos[i].subscribe_ms == dc.day_ms)
                dc.ipo_today = (int32_t)i;
        uint32_t k = poisson(&p.r, p.sessions_per_day);
        /* the first session of the window is forced on day 0 for the
         * identification stories to start early */
        if (d == 0 && k == 0 && rng_permille(&p.r, 500))
            k = 1;
        uint32_t hours[8];
        for (uint32_t i = 0; i < k; i++)
            hours[i] = rng_weighted(&p.r, HOUR_W, 24);
        for (uint32_t i = 1; i < k; i++) /* insertion sort, k <= 8 */
            for (uint32_t j = i; j > 0 && hours[j] < hours[j - 1]; j--) {
                uint32_t t = hours[j];
                hours[j] = hours[j - 1];
                hours[j - 1] = t;
            }
        for (uint32_t i = 0; i < k; i++) {
            int64_t start = dc.day_ms + ((int64_t)hours[i] * 3600 + rng_below(&p.r, 3600)) * 1000;
            flush_pending(o, &p, start);
            p.t = start > p.t ? start : p.t + 1000;
            session(o, &p, &dc, first);
            first = 0;
        }
    }
    flush_pending(o, &p, opt->start_ms + (int64_t)opt->days * DAY_MS);
}

/* ------------------------------------------------------------------ API */

void wm_gen_opts_init(wm_gen_opts_t *o)
{
    memset(o, 0, sizeof *o);
    o->users = 1000;
    o->days = 30;
    o->seed = 1;
    wm_gen_parse_date("2026-10-01", &o->start_ms);
}

static int valid_name(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > WM_NAME_LEN_MAX)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        int alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == '$';
        if (!alpha && (i == 0 || c < '0' || c > '9'))
            return 0;
    }
    return 1;
}

int wm_gen_write(const wm_gen_opts_t *opt, FILE *f, wm_gen_stats_t *stats)
{
    if (!opt || !f || opt->users > WM_GEN_USERS_MAX || opt->days == 0 || opt->days > WM_GEN_DAYS_MAX ||
        (opt->project && !valid_name(opt->project)))
        return WM_EINVAL;
    out_t o = {.f = f, .project = opt->project};
    o.buf = wm_malloc(OUT_BUF_BYTES);
    catalogue_t *cat = wm_malloc(sizeof *cat);
    if (!o.buf || !cat) {
        wm_free(o.buf);
        wm_free(cat);
        return WM_ENOMEM;
    }
    write_catalogue(&o, opt, cat);
    for (uint64_t i = 0; i < opt->users && !o.err; i++)
        write_person(&o, opt, cat, i);
    out_flush(&o);
    if (stats)
        *stats = o.st;
    wm_free(o.buf);
    wm_free(cat);
    return o.err;
}
