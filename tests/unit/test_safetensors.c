/* test_safetensors.c — the safetensors reader accepts well-formed files, converts every
 * dtype to f32, and refuses hostile headers with a message naming the problem. */
#include "ut.h"
#include "core/err.h"
#include "model/safetensors.h"

#include <stdint.h>

/* Builds [u64 len][header][data] into out (cap bytes); returns total length. */
static size_t mk(unsigned char *out, size_t cap, const char *hdr, const void *data, size_t dn)
{
    size_t hl = strlen(hdr);
    if (8 + hl + dn > cap) abort();
    for (int i = 0; i < 8; i++) out[i] = (unsigned char)((uint64_t)hl >> (8 * i));
    memcpy(out + 8, hdr, hl);
    if (dn) memcpy(out + 8 + hl, data, dn);
    return 8 + hl + dn;
}

static int open_hdr(const char *hdr, size_t dn, char *err, size_t errlen)
{
    static unsigned char buf[4096];
    unsigned char data[256] = {0};
    size_t n = mk(buf, sizeof buf, hdr, data, dn);
    st_file *f = NULL;
    int rc = st_open_mem(&f, buf, n, err, errlen);
    st_close(f);
    return rc;
}

static void t_valid(ut_ctx *t)
{
    unsigned char buf[512];
    float a[6] = {1, 2, 3, 4, 5, 6};
    unsigned char d[24 + 4];
    memcpy(d, a, 24);
    uint16_t bf[2] = {0x3f80, 0xc000}; /* 1.0, -2.0 */
    memcpy(d + 24, bf, 4);
    const char *h = "{\"__metadata__\":{\"format\":\"pt\"},"
                    "\"w\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,24]},"
                    "\"b\":{\"dtype\":\"BF16\",\"shape\":[2],\"data_offsets\":[24,28]},"
                    "\"e\":{\"dtype\":\"F32\",\"shape\":[0,3],\"data_offsets\":[28,28]}}   ";
    size_t n = mk(buf, sizeof buf, h, d, sizeof d);
    char err[256] = "";
    st_file *f = NULL;
    int rc = st_open_mem(&f, buf, n, err, sizeof err);
    if (rc) ut_fail(t, __FILE__, __LINE__, "open: %s", err);
    UT_EQ_INT(t, 3, st_count(f));
    UT_EQ_STR(t, "w", st_at(f, 0)->name);
    UT_EQ_STR(t, "pt", st_meta(f, "format"));
    UT_CHECK(t, st_meta(f, "nope") == NULL);
    const st_tensor *w = st_find(f, "w");
    UT_CHECK(t, w != NULL);
    UT_EQ_INT(t, 2, w->ndim);
    UT_EQ_INT(t, 3, w->shape[1]);
    UT_EQ_INT(t, 6, w->numel);
    float o[6];
    UT_EQ_INT(t, 0, st_to_f32(w, o, 6, err, sizeof err));
    UT_NEAR(t, 6.0, o[5], 0);
    const st_tensor *b = st_find(f, "b");
    UT_EQ_INT(t, 0, st_to_f32(b, o, 2, err, sizeof err));
    UT_NEAR(t, 1.0, o[0], 0);
    UT_NEAR(t, -2.0, o[1], 0);
    UT_EQ_INT(t, ERR_INVAL, st_to_f32(b, o, 3, err, sizeof err));
    UT_CHECK(t, st_find(f, "zz") == NULL);
    UT_EQ_INT(t, 0, st_expect(f, "w", 2, (const int64_t[]){2, 3}, &w, err, sizeof err));
    UT_EQ_INT(t, ERR_FORMAT, st_expect(f, "w", 2, (const int64_t[]){3, 2}, NULL, err, sizeof err));
    UT_CHECK(t, strstr(err, "'w'") && strstr(err, "[3, 2]") && strstr(err, "[2, 3]"));
    UT_EQ_INT(t, ERR_NOTFOUND, st_expect(f, "q", 1, (const int64_t[]){1}, NULL, err, sizeof err));
    UT_CHECK(t, strstr(err, "'q'") != NULL);
    st_close(f);
}

static void t_dtypes(ut_ctx *t)
{
    /* F16: 1.0 = 0x3c00, -0.5 = 0xb800, smallest subnormal 0x0001 = 2^-24, inf 0x7c00 */
    unsigned char d[2 * 4 + 8 + 8 + 4 + 2 + 1 + 1 + 1];
    uint16_t h[4] = {0x3c00, 0xb800, 0x0001, 0x7c00};
    double dd = -3.25;
    int64_t i64 = -7;
    int32_t i32 = 123456;
    int16_t i16 = -300;
    int8_t i8 = -5;
    uint8_t u8 = 200, bo = 1;
    size_t o = 0;
    memcpy(d + o, h, 8), o += 8;
    memcpy(d + o, &dd, 8), o += 8;
    memcpy(d + o, &i64, 8), o += 8;
    memcpy(d + o, &i32, 4), o += 4;
    memcpy(d + o, &i16, 2), o += 2;
    memcpy(d + o, &i8, 1), o += 1;
    memcpy(d + o, &u8, 1), o += 1;
    memcpy(d + o, &bo, 1), o += 1;
    const char *hd = "{\"h\":{\"dtype\":\"F16\",\"shape\":[4],\"data_offsets\":[0,8]},"
                     "\"d\":{\"dtype\":\"F64\",\"shape\":[],\"data_offsets\":[8,16]},"
                     "\"l\":{\"dtype\":\"I64\",\"shape\":[1],\"data_offsets\":[16,24]},"
                     "\"i\":{\"dtype\":\"I32\",\"shape\":[1],\"data_offsets\":[24,28]},"
                     "\"s\":{\"dtype\":\"I16\",\"shape\":[1],\"data_offsets\":[28,30]},"
                     "\"c\":{\"dtype\":\"I8\",\"shape\":[1],\"data_offsets\":[30,31]},"
                     "\"u\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[31,32]},"
                     "\"b\":{\"dtype\":\"BOOL\",\"shape\":[1],\"data_offsets\":[32,33]}}";
    unsigned char buf[1024];
    size_t n = mk(buf, sizeof buf, hd, d, o);
    char err[256] = "";
    st_file *f = NULL;
    if (st_open_mem(&f, buf, n, err, sizeof err)) ut_fail(t, __FILE__, __LINE__, "open: %s", err);
    float v[4];
    UT_EQ_INT(t, 0, st_to_f32(st_find(f, "h"), v, 4, err, sizeof err));
    UT_NEAR(t, 1.0, v[0], 0);
    UT_NEAR(t, -0.5, v[1], 0);
    UT_NEAR(t, 5.9604644775390625e-08, v[2], 0);
    UT_CHECK(t, isinf(v[3]) && v[3] > 0);
    UT_EQ_INT(t, 0, st_find(f, "d")->ndim);
    UT_EQ_INT(t, 1, st_find(f, "d")->numel);
    UT_EQ_INT(t, 0, st_to_f32(st_find(f, "d"), v, 1, err, sizeof err));
    UT_NEAR(t, -3.25, v[0], 0);
    UT_EQ_INT(t, 0, st_to_f32(st_find(f, "l"), v, 1, err, sizeof err));
    UT_NEAR(t, -7, v[0], 0);
    UT_EQ_INT(t, 0, st_to_f32(st_find(f, "i"), v, 1, err, sizeof err));
    UT_NEAR(t, 123456, v[0], 0);
    UT_EQ_INT(t, 0, st_to_f32(st_find(f, "s"), v, 1, err, sizeof err));
    UT_NEAR(t, -300, v[0], 0);
    UT_EQ_INT(t, 0, st_to_f32(st_find(f, "c"), v, 1, err, sizeof err));
    UT_NEAR(t, -5, v[0], 0);
    UT_EQ_INT(t, 0, st_to_f32(st_find(f, "u"), v, 1, err, sizeof err));
    UT_NEAR(t, 200, v[0], 0);
    UT_EQ_INT(t, 0, st_to_f32(st_find(f, "b"), v, 1, err, sizeof err));
    UT_NEAR(t, 1, v[0], 0);
    st_close(f);
}

typedef struct bad_case {
    const char *hdr;
    size_t dn;
    int code;
    const char *needle; /* substring expected in the message */
} bad_case;

static void t_hostile(ut_ctx *t)
{
    static const bad_case cases[] = {
        {"[1,2]", 0, ERR_FORMAT, "not a JSON object"},
        {"{\"a\":1", 0, ERR_FORMAT, "not valid JSON"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}} x", 4, ERR_FORMAT, "trailing"},
        {"{\"a\":{\"dtype\":\"Q4\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4, ERR_FORMAT, "'a'"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,4]}}", 8, ERR_FORMAT, "needs 8 bytes"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,8]}}", 4, ERR_FORMAT, "beyond data block"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,4]}}", 8, ERR_FORMAT, "bad data_offsets"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[-4,0]}}", 8, ERR_FORMAT, "bad data_offsets"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
         "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}",
         8, ERR_FORMAT, "overlaps"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
         "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}",
         8, ERR_FORMAT, "duplicate tensor name 'a'"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,16],\"data_offsets\":[0,4]}}", 4, ERR_FORMAT,
         "overflow"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1.5],\"data_offsets\":[0,4]}}", 4, ERR_FORMAT, "bad shape"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}", 4, ERR_FORMAT, "bad shape"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,4]}}", 4, ERR_FORMAT, "dims"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1]}}", 4, ERR_FORMAT, "data_offsets"},
        {"{\"a\":{\"shape\":[1],\"data_offsets\":[0,4]}}", 4, ERR_FORMAT, "dtype"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4],\"x\":1}}", 4, ERR_FORMAT, "unknown field"},
        {"{\"a\":[1]}", 4, ERR_FORMAT, "not an object"},
        {"{\"__metadata__\":{\"k\":1}}", 0, ERR_FORMAT, "__metadata__"},
        {"{\"__metadata__\":[]}", 0, ERR_FORMAT, "__metadata__"},
    };
    char err[256];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        err[0] = 0;
        int rc = open_hdr(cases[i].hdr, cases[i].dn, err, sizeof err);
        if (rc != cases[i].code || !strstr(err, cases[i].needle))
            ut_fail(t, __FILE__, __LINE__, "case %zu (%s): expected code %d with \"%s\", got %d \"%s\"", i,
                    cases[i].hdr, cases[i].code, cases[i].needle, rc, err);
    }
}

static void t_lengths(ut_ctx *t)
{
    char err[256];
    st_file *f = NULL;
    unsigned char b[16] = {0};
    UT_EQ_INT(t, ERR_FORMAT, st_open_mem(&f, b, 7, err, sizeof err)); /* truncated prefix */
    UT_CHECK(t, f == NULL);
    /* header length larger than the file */
    b[0] = 100;
    UT_EQ_INT(t, ERR_FORMAT, st_open_mem(&f, b, 16, err, sizeof err));
    UT_CHECK(t, strstr(err, "beyond end") != NULL);
    /* huge header length: refused by the cap before anything is allocated */
    memset(b, 0xff, 8);
    UT_EQ_INT(t, ERR_TOOBIG, st_open_mem(&f, b, 16, err, sizeof err));
    /* truncated data block: header promises 8 bytes, file has 4 */
    unsigned char buf[256];
    const char *h = "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}";
    size_t n = mk(buf, sizeof buf, h, "\0\0\0\0\0\0\0\0", 8);
    UT_EQ_INT(t, 0, st_open_mem(&f, buf, n, err, sizeof err));
    st_close(f);
    UT_EQ_INT(t, ERR_FORMAT, st_open_mem(&f, buf, n - 4, err, sizeof err));
    UT_CHECK(t, strstr(err, "'a'") != NULL);
    /* empty object is a valid, empty file */
    n = mk(buf, sizeof buf, "{}", NULL, 0);
    UT_EQ_INT(t, 0, st_open_mem(&f, buf, n, err, sizeof err));
    UT_EQ_INT(t, 0, st_count(f));
    st_close(f);
    UT_EQ_INT(t, ERR_NOTFOUND, st_open(&f, "/nonexistent/x.safetensors", err, sizeof err));
}

static void t_golden(ut_ctx *t)
{
    char p[512], err[512];
    st_file *f = NULL;
    int rc = st_open(&f, ut_path(p, sizeof p, "reference/pocket-tts/golden_A.safetensors"), err, sizeof err);
    if (rc) ut_fail(t, __FILE__, __LINE__, "open golden_A: %s", err);
    UT_EQ_INT(t, 862, st_count(f));
    const st_tensor *tok = NULL;
    UT_EQ_INT(t, 0, st_expect(f, "text/tokens", 2, (const int64_t[]){1, 26}, &tok, err, sizeof err));
    UT_EQ_INT(t, ST_I64, tok->dtype);
    UT_CHECK(t, st_meta(f, "info") != NULL);
    st_close(f);

    rc = st_open(&f, ut_path(p, sizeof p, "reference/pocket-tts/tiny_model.safetensors"), err, sizeof err);
    if (rc) ut_fail(t, __FILE__, __LINE__, "open tiny_model: %s", err);
    UT_EQ_INT(t, 150, st_count(f));
    const st_tensor *e = NULL;
    UT_EQ_INT(t, 0, st_expect(f, "flow_lm.conditioner.embed.weight", 2, (const int64_t[]){513, 64}, &e, err, sizeof err));
    float *v = malloc((size_t)e->numel * sizeof *v);
    UT_EQ_INT(t, 0, st_to_f32(e, v, (size_t)e->numel, err, sizeof err));
    double s = 0;
    for (int64_t i = 0; i < e->numel; i++) s += (double)v[i] * v[i];
    free(v);
    UT_CHECK(t, s > 0.5 * (double)e->numel && s < 2.0 * (double)e->numel); /* N(0,1) entries */
    st_close(f);
}

static const ut_case cases[] = {
    {"valid", t_valid}, {"dtypes", t_dtypes}, {"hostile", t_hostile}, {"lengths", t_lengths}, {"golden", t_golden},
};
UT_SUITE(safetensors, cases)
