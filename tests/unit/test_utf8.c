/* test_utf8.c — strict validation (overlongs, surrogates, truncation) and counting. */
#include "ut.h"
#include "core/err.h"
#include "core/utf8.h"

typedef struct {
    const char *s;
    int ok;
    size_t ncp;    /* when ok */
    size_t bad_at; /* when not ok */
} vcase;

static void t_validate(ut_ctx *t)
{
    static const vcase cases[] = {
        {"", 1, 0, 0},
        {"hello", 1, 5, 0},
        {"h\xc3\xa9llo", 1, 5, 0},                 /* é */
        {"\xe2\x82\xac", 1, 1, 0},                 /* € */
        {"\xf0\x9f\x98\x80!", 1, 2, 0},            /* U+1F600 */
        {"\xe6\x97\xa5\xe6\x9c\xac", 1, 2, 0},     /* 日本 */
        {"\xf4\x8f\xbf\xbf", 1, 1, 0},             /* U+10FFFF */
        {"ab\xff", 0, 0, 2},                       /* invalid byte */
        {"\x80", 0, 0, 0},                         /* lone continuation */
        {"\xc0\xaf", 0, 0, 0},                     /* overlong '/' */
        {"\xc1\xbf", 0, 0, 0},                     /* overlong */
        {"\xe0\x80\xaf", 0, 0, 0},                 /* overlong 3-byte */
        {"\xf0\x80\x80\xaf", 0, 0, 0},             /* overlong 4-byte */
        {"x\xed\xa0\x80", 0, 0, 1},                /* surrogate U+D800 */
        {"\xf4\x90\x80\x80", 0, 0, 0},             /* U+110000 */
        {"\xf5\x80\x80\x80", 0, 0, 0},             /* lead > F4 */
        {"abc\xe2\x82", 0, 0, 3},                  /* truncated */
        {"\xc3(", 0, 0, 0},                        /* bad continuation */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t n = 99, bad = 99;
        int rc = utf8_validate(cases[i].s, strlen(cases[i].s), &n, &bad);
        if (cases[i].ok) {
            if (rc != 0) ut_fail(t, __FILE__, __LINE__, "case %zu: expected valid, got %d", i, rc);
            if (n != cases[i].ncp)
                ut_fail(t, __FILE__, __LINE__, "case %zu: expected %zu code points, got %zu", i,
                        cases[i].ncp, n);
        } else {
            if (rc != ERR_FORMAT)
                ut_fail(t, __FILE__, __LINE__, "case %zu: expected ERR_FORMAT, got %d", i, rc);
            if (bad != cases[i].bad_at)
                ut_fail(t, __FILE__, __LINE__, "case %zu: expected bad_at %zu, got %zu", i,
                        cases[i].bad_at, bad);
        }
    }
}

static void t_decode(ut_ctx *t)
{
    uint32_t cp = 0;
    UT_EQ_INT(t, 2, utf8_decode("\xc3\xa9", 2, &cp));
    UT_EQ_INT(t, 0xE9, cp);
    UT_EQ_INT(t, 4, utf8_decode("\xf0\x9f\x98\x80", 4, &cp));
    UT_EQ_INT(t, 0x1F600, cp);
    UT_EQ_INT(t, 0, utf8_decode("\xf0\x9f\x98", 3, &cp));
    UT_EQ_INT(t, 0, utf8_decode("", 0, &cp));
}

static void t_trim(ut_ctx *t)
{
    const char *s = "a\xe2\x82\xac"; /* a€ : 4 bytes */
    UT_EQ_INT(t, 4, utf8_trim_len(s, 4));
    UT_EQ_INT(t, 1, utf8_trim_len(s, 3));
    UT_EQ_INT(t, 1, utf8_trim_len(s, 2));
    UT_EQ_INT(t, 1, utf8_trim_len(s, 1));
    UT_EQ_INT(t, 0, utf8_trim_len(s, 0));
    UT_EQ_INT(t, 3, utf8_trim_len("abc", 3));
}

static const ut_case cases[] = {{"validate", t_validate}, {"decode", t_decode}, {"trim", t_trim}};
UT_SUITE(utf8, cases)
