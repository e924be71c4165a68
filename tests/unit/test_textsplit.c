/* test_textsplit.c — the sentence splitter on a table of tricky inputs, plus the span
 * invariants (non-empty, trimmed, within max_len, on UTF-8 boundaries) on long text. */
#include "ut.h"
#include "core/err.h"
#include "core/textsplit.h"

/* Joins the chunks of `in` with '|' into out. */
static void ts_join(const char *in, size_t max_len, char *out, size_t cap)
{
    size_t pos = 0, o = 0, len = strlen(in);
    ts_span s;
    out[0] = 0;
    while (ts_next(in, len, &pos, max_len, &s)) {
        if (o && o + 1 < cap) out[o++] = '|';
        for (size_t k = 0; k < s.len && o + 1 < cap; k++) out[o++] = in[s.off + k];
        out[o] = 0;
    }
}

typedef struct ts_case {
    const char *in;
    size_t max_len;
    const char *want; /* chunks joined by '|' */
} ts_case;

static const ts_case ts_table[] = {
    {"Hello world.", 200, "Hello world."},
    {"Hello world. How are you? Fine!", 200, "Hello world.|How are you?|Fine!"},
    {"  leading and trailing spaces.  ", 200, "leading and trailing spaces."},
    {"", 200, ""},
    {"   \n\n  ", 200, ""},
    {"No terminator at the end", 200, "No terminator at the end"},
    {"Mr. Smith met Dr. Jones. They talked.", 200, "Mr. Smith met Dr. Jones.|They talked."},
    {"Use tools, e.g. hammers, i.e. heavy ones. Done.", 200,
     "Use tools, e.g. hammers, i.e. heavy ones.|Done."},
    {"Apples, pears, etc. are fruit. Yes.", 200, "Apples, pears, etc. are fruit.|Yes."},
    {"He lives on Main St. near the park.", 200, "He lives on Main St. near the park."},
    {"Pi is 3.14 roughly. Next.", 200, "Pi is 3.14 roughly.|Next."},
    {"J. R. R. Tolkien wrote books. Me too.", 200, "J. R. R. Tolkien wrote books.|Me too."},
    {"So did I. Then we left.", 200, "So did I.|Then we left."},
    {"Wait... what happened? Nothing... Really.", 200,
     "Wait... what happened?|Nothing...|Really."},
    {"Well\xe2\x80\xa6 maybe. Yes\xe2\x80\xa6 No.", 200,
     "Well\xe2\x80\xa6 maybe.|Yes\xe2\x80\xa6|No."},
    {"Really?! Yes!!! Ok.", 200, "Really?!|Yes!!!|Ok."},
    {"He said \"Stop.\" Then he left.", 200, "He said \"Stop.\"|Then he left."},
    {"(This is quoted.) And this (too!) is fine.", 200,
     "(This is quoted.)|And this (too!) is fine."},
    {"Visit example.com today. Bye.", 200, "Visit example.com today.|Bye."},
    {"The U.S. economy grew. Fine.", 200, "The U.S. economy grew.|Fine."},
    {"First line\nSecond line\n\nThird paragraph.", 200,
     "First line|Second line|Third paragraph."},
    {"- item one\r\n- item two\r\n", 200, "- item one|- item two"},
    {"\xe4\xbb\x8a\xe6\x97\xa5\xe3\x81\xaf\xe3\x80\x82\xe5\x85\x83\xe6\xb0\x97\xef\xbc\x9f"
     "\xe3\x81\xaf\xe3\x81\x84\xef\xbc\x81",
     200,
     "\xe4\xbb\x8a\xe6\x97\xa5\xe3\x81\xaf\xe3\x80\x82|\xe5\x85\x83\xe6\xb0\x97\xef\xbc\x9f|"
     "\xe3\x81\xaf\xe3\x81\x84\xef\xbc\x81"},
    {"\xe3\x80\x8c\xe3\x81\xaf\xe3\x81\x84\xe3\x80\x82\xe3\x80\x8d\xe3\x81\x9d\xe3\x81\x86",
     200, "\xe3\x80\x8c\xe3\x81\xaf\xe3\x81\x84\xe3\x80\x82\xe3\x80\x8d|\xe3\x81\x9d\xe3\x81\x86"},
    {"1. Buy milk\n2. Call Mom. Then rest.", 200, "1. Buy milk|2. Call Mom.|Then rest."},
    {"It was in 1999. Then it ended.", 200, "It was in 1999.|Then it ended."},
    {"We won 3. The others lost.", 200, "We won 3.|The others lost."},
    /* Long sentences: ; : first, then comma, then space, then a hard cut. */
    {"one two three four; five six seven eight nine ten", 30,
     "one two three four;|five six seven eight nine ten"},
    {"alpha beta gamma, delta epsilon zeta eta theta", 30,
     "alpha beta gamma,|delta epsilon zeta eta theta"},
    {"aaaa bbbb cccc dddd eeee ffff gggg hhhh", 20, "aaaa bbbb cccc dddd|eeee ffff gggg hhhh"},
    {"abcdefghijklmnopqrstuvwxyz0123456789", 16, "abcdefghijklmnop|qrstuvwxyz012345|6789"},
    /* Hard cut must not split a 2-byte character: 15 'x' then 'é' straddles byte 16. */
    {"xxxxxxxxxxxxxxx\xc3\xa9yy", 16, "xxxxxxxxxxxxxxx|\xc3\xa9yy"},
    /* A boundary right at the limit still fits. */
    {"abcdefghijklmno. Next one.", 16, "abcdefghijklmno.|Next one."},
    /* A semicolon too early is not used (tiny chunk); the last space is. */
    {"a; bcdefgh ijklmnop qrstuvwx yz", 20, "a; bcdefgh ijklmnop|qrstuvwx yz"},
};

static void t_table(ut_ctx *t)
{
    char got[512];
    for (size_t i = 0; i < sizeof ts_table / sizeof ts_table[0]; i++) {
        const ts_case *c = &ts_table[i];
        ts_join(c->in, c->max_len, got, sizeof got);
        if (strcmp(got, c->want))
            ut_fail(t, __FILE__, __LINE__, "case %zu \"%s\" (max %zu):\n  expected \"%s\"\n  got      \"%s\"",
                    i, c->in, c->max_len, c->want, got);
    }
}

/* Span invariants over a long mixed text at several limits. */
static void t_invariants(ut_ctx *t)
{
    static const char piece[] =
        "Dr. Who? \xe4\xbd\xa0\xe5\xa5\xbd\xe3\x80\x82 The sum is 3.5, or so; maybe \xc3\xa9t\xc3\xa9!\n"
        "averyveryverylongwordwithoutanyspacesatallthatmustbecut \xf0\x9f\x98\x80\xf0\x9f\x98\x80 ";
    char text[4096];
    size_t len = 0;
    while (len + sizeof piece < sizeof text) {
        memcpy(text + len, piece, sizeof piece - 1);
        len += sizeof piece - 1;
    }
    static const size_t limits[] = {16, 17, 19, 23, 40, 64, 300};
    for (size_t li = 0; li < sizeof limits / sizeof limits[0]; li++) {
        size_t pos = 0, covered = 0, count = 0, last_end = 0;
        ts_span s;
        while (ts_next(text, len, &pos, limits[li], &s)) {
            count++;
            UT_CHECK(t, s.len > 0);
            UT_CHECK(t, s.len <= limits[li]);
            UT_CHECK(t, s.off >= last_end);
            unsigned char f = (unsigned char)text[s.off], l = (unsigned char)text[s.off + s.len - 1];
            UT_CHECK(t, f != ' ' && f != '\n' && l != ' ' && l != '\n');
            UT_CHECK(t, (f & 0xC0) != 0x80);
            UT_CHECK(t, s.off + s.len == len || ((unsigned char)text[s.off + s.len] & 0xC0) != 0x80);
            for (size_t k = s.off; k < s.off + s.len; k++) covered += text[k] != ' ' && text[k] != '\n';
            last_end = s.off + s.len;
            UT_CHECK(t, count < len); /* always progresses */
        }
        size_t nonspace = 0;
        for (size_t k = 0; k < len; k++) nonspace += text[k] != ' ' && text[k] != '\n';
        UT_EQ_INT(t, nonspace, covered); /* nothing dropped, nothing duplicated */
    }
}

static void t_split_cap(ut_ctx *t)
{
    ts_span sp[2];
    size_t n = 0;
    char err[128];
    UT_EQ_INT(t, 0, ts_split("One. Two.", 9, 100, sp, 2, &n, err, sizeof err));
    UT_EQ_INT(t, 2, n);
    UT_EQ_INT(t, 5, sp[1].off);
    UT_EQ_INT(t, ERR_TOOBIG, ts_split("One. Two. Three.", 16, 100, sp, 2, &n, err, sizeof err));
    UT_EQ_INT(t, 2, n);
}

static const ut_case cases[] = {
    {"table", t_table},
    {"invariants", t_invariants},
    {"split_cap", t_split_cap},
};
UT_SUITE(textsplit, cases)
