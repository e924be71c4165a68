/* test_buf.c — the capped buffer refuses to grow past its limit. */
#include "ut.h"
#include "core/buf.h"
#include "core/err.h"

static void t_cap(ut_ctx *t)
{
    buf b;
    buf_init(&b, 8);
    UT_EQ_INT(t, 0, buf_append(&b, "abcd", 4));
    UT_EQ_INT(t, 0, buf_printf(&b, "%d", 1234));
    UT_EQ_INT(t, ERR_TOOBIG, buf_append(&b, "x", 1));
    UT_EQ_STR(t, "abcd1234", buf_cstr(&b));
    UT_EQ_INT(t, ERR_TOOBIG, buf_printf(&b, "%s", "y"));
    UT_EQ_INT(t, 8, b.len);
    buf_free(&b);
}

static void t_steal(ut_ctx *t)
{
    buf b;
    buf_init(&b, 1 << 20);
    for (int i = 0; i < 1000; i++) UT_EQ_INT(t, 0, buf_append(&b, "0123456789", 10));
    size_t n;
    char *p = buf_steal(&b, &n);
    UT_EQ_INT(t, 10000, n);
    UT_CHECK(t, p[9999] == '9');
    free(p);
    UT_EQ_STR(t, "", buf_cstr(&b));
    buf_free(&b);
}

static const ut_case cases[] = {{"cap", t_cap}, {"steal", t_steal}};
UT_SUITE(buf, cases)
