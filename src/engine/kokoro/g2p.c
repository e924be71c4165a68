/* g2p.c — see g2p.h. A port of misaki's English G2P (hexgrad/misaki en.py @ fba1236),
 * written from its rules; function names follow misaki's (lookup, get_word, stem_s, ...)
 * so the two can be read side by side.
 *
 * Strings: words and phonemes are UTF-8; rules that index characters (stem[-2], "first
 * vowel after a stress mark") decode to code points. Every phoneme string of one word lives
 * in a KG2P_WORD_MAX buffer; a word that would outgrow it is treated as unknown.
 * Lexicon: two open-addressing hash tables (gold, silver) over an arena, each holding the
 * JSON entries plus misaki's grow_dictionary() case variants. Values are a string, or a
 * list of (tag, phonemes-or-NULL) pairs with a DEFAULT.
 * Python's None is NAN for a stress and -1 for a tri-state (future_vowel).
 */
#include "engine/kokoro/g2p.h"

#include "core/err.h"
#include "core/utf8.h"

#include <cJSON.h>
#include <espeak-ng/speak_lib.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define WMAX KG2P_WORD_MAX

/* ---- arena ------------------------------------------------------------------------- */

typedef struct ablock {
    struct ablock *next;
    size_t used, cap;
    char data[];
} ablock;

typedef struct arena {
    ablock *head;
} arena;

static void *arena_alloc(arena *a, size_t n)
{
    n = (n + 7) & ~(size_t)7;
    if (!a->head || a->head->cap - a->head->used < n) {
        size_t cap = n > (1u << 20) ? n : (1u << 20);
        ablock *b = malloc(sizeof *b + cap);
        if (!b) return NULL;
        b->next = a->head;
        b->used = 0;
        b->cap = cap;
        a->head = b;
    }
    void *p = a->head->data + a->head->used;
    a->head->used += n;
    return p;
}

static char *arena_str(arena *a, const char *s)
{
    size_t n = strlen(s) + 1;
    char *p = arena_alloc(a, n);
    if (p) memcpy(p, s, n);
    return p;
}

static void arena_free(arena *a)
{
    while (a->head) {
        ablock *n = a->head->next;
        free(a->head);
        a->head = n;
    }
}

/* ---- lexicon tables ---------------------------------------------------------------- */

typedef struct lexpair {
    const char *tag;
    const char *ps; /* NULL = null entry */
} lexpair;

typedef struct lexval {
    const char *ps;       /* string entry, or NULL when dict */
    const lexpair *dict;  /* [nd] */
    int nd;
} lexval;

typedef struct lexent {
    const char *key;
    const lexval *v;
} lexent;

typedef struct lextab {
    lexent *e;
    size_t cap, n; /* cap is a power of two */
} lextab;

struct kg2p {
    lextab gold, silver;
    arena ar;
    int british;
    kg2p_fallback_fn fallback;
    void *fallback_user;
};

static uint64_t fnv(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

static const lexval *tab_get(const lextab *t, const char *k)
{
    if (!t->cap) return NULL;
    for (size_t i = fnv(k) & (t->cap - 1);; i = (i + 1) & (t->cap - 1)) {
        if (!t->e[i].key) return NULL;
        if (!strcmp(t->e[i].key, k)) return t->e[i].v;
    }
}

/* Inserts (or, with replace, overwrites). Table must have room (cap >= 2 n). */
static void tab_put(lextab *t, const char *k, const lexval *v, int replace)
{
    for (size_t i = fnv(k) & (t->cap - 1);; i = (i + 1) & (t->cap - 1)) {
        if (!t->e[i].key) {
            t->e[i].key = k;
            t->e[i].v = v;
            t->n++;
            return;
        }
        if (!strcmp(t->e[i].key, k)) {
            if (replace) t->e[i].v = v;
            return;
        }
    }
}

/* ---- character classes --------------------------------------------------------------- */

static int cp_at(const char *s, size_t n, uint32_t *cp)
{
    int k = utf8_decode(s, n, cp);
    if (k <= 0) {
        *cp = (unsigned char)*s;
        k = 1;
    }
    return k;
}

static int in_set(uint32_t cp, const char *set)
{
    size_t n = strlen(set);
    for (size_t i = 0; i < n;) {
        uint32_t c;
        i += (size_t)cp_at(set + i, n - i, &c);
        if (c == cp) return 1;
    }
    return 0;
}

static const char VOWELS[] = "AIOQWYaiuæɑɒɔəɛɜɪʊʌᵻ";
static const char CONSONANTS[] = "bdfhjklmnpstvwzðŋɡɹɾʃʒʤʧθ";
static const char US_TAUS[] = "AIOWYiuæɑəɛɪɹʊʌ";
static const char DIPHTHONGS[] = "AIOQWYʤʧ";
static const char NON_QUOTE_PUNCTS[] = ";:,.!?—…";
static const char SUBTOKEN_JUNKS[] = "',-._‘’/";
#define PRIMARY "ˈ"
#define SECONDARY "ˌ"
#define CP_PRIMARY 0x2C8u
#define CP_SECONDARY 0x2CCu

static int is_lu(uint32_t c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 0xC0 && c <= 0xDE && c != 0xD7) ||
           (c >= 0x100 && c <= 0x17F && !(c & 1)) || (c >= 0x391 && c <= 0x3A9) || (c >= 0x410 && c <= 0x42F);
}

static int is_ll(uint32_t c)
{
    return (c >= 'a' && c <= 'z') || (c >= 0xDF && c <= 0xFF && c != 0xF7) ||
           (c >= 0x100 && c <= 0x17F && (c & 1)) || (c >= 0x3B1 && c <= 0x3C9) || (c >= 0x430 && c <= 0x44F);
}

/* \p{L}, approximately: ASCII letters, and non-ASCII outside punctuation/symbol blocks. */
static int is_letter(uint32_t c)
{
    if (c < 0x80) return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
    if (c < 0xC0 || c == 0xD7 || c == 0xF7) return 0;
    if (c >= 0x2000 && c <= 0x2BFF) return 0; /* punctuation, symbols, arrows, math */
    if (c >= 0x3000 && c <= 0x303F) return 0;
    if (c >= 0xFE30 && c <= 0xFE4F) return 0;
    if (c >= 0xFF00 && c <= 0xFF20) return 0;
    if (c >= 0x1F000) return 0; /* emoji and friends */
    if (c >= 0x300 && c <= 0x36F) return 0; /* combining marks */
    return 1;
}

static int is_digitc(uint32_t c) { return c >= '0' && c <= '9'; }
static int is_apos(uint32_t c) { return c == '\'' || c == 0x2018 || c == 0x2019; }

/* Python str.isalpha() on UTF-8 (non-empty, all letters). */
static int s_isalpha(const char *s)
{
    size_t n = strlen(s);
    if (!n) return 0;
    for (size_t i = 0; i < n;) {
        uint32_t c;
        i += (size_t)cp_at(s + i, n - i, &c);
        if (!is_letter(c)) return 0;
    }
    return 1;
}

static char lower_c(char c) { return c >= 'A' && c <= 'Z' ? (char)(c + 32) : c; }
static char upper_c(char c) { return c >= 'a' && c <= 'z' ? (char)(c - 32) : c; }

/* ASCII case mapping (lexicon keys are ASCII). dst must hold strlen(src) + 1. */
static void s_lower(char *d, const char *s)
{
    while ((*d++ = lower_c(*s++)));
}
static void s_capitalize(char *d, const char *s)
{
    s_lower(d, s);
    if (*d) *d = upper_c(*d);
}

static int s_has_lower(const char *s)
{
    for (; *s; s++)
        if (*s >= 'a' && *s <= 'z') return 1;
    return 0;
}
static int s_has_upper(const char *s)
{
    for (; *s; s++)
        if (*s >= 'A' && *s <= 'Z') return 1;
    return 0;
}
static int is_lowerword(const char *s) { return !s_has_upper(s); } /* s == s.lower() */
static int is_upperword(const char *s) { return !s_has_lower(s); } /* s == s.upper() */

static int ends_with(const char *s, const char *suf)
{
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && !memcmp(s + a - b, suf, b);
}

static int lexicon_ords(const char *s)
{
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (!(c == 39 || c == 45 || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z'))) return 0;
    }
    return 1;
}

static int is_digits(const char *s) /* ^[0-9]+$ */
{
    if (!*s) return 0;
    for (; *s; s++)
        if (*s < '0' || *s > '9') return 0;
    return 1;
}

size_t kg2p_cplen(const char *s)
{
    size_t n = 0;
    for (; *s; s++) n += ((unsigned char)*s & 0xC0) != 0x80;
    return n;
}

/* Code point k from the end (k = 1: last); 0 if none. */
static uint32_t last_cp(const char *s, int k)
{
    size_t n = strlen(s);
    size_t i = n;
    uint32_t c = 0;
    while (k-- > 0) {
        if (!i) return 0;
        do i--; while (i > 0 && ((unsigned char)s[i] & 0xC0) == 0x80);
        cp_at(s + i, n - i, &c);
    }
    return c;
}

static int has_any(const char *s, const char *set)
{
    size_t n = strlen(s);
    for (size_t i = 0; i < n;) {
        uint32_t c;
        i += (size_t)cp_at(s + i, n - i, &c);
        if (in_set(c, set)) return 1;
    }
    return 0;
}

/* ---- bounded string building --------------------------------------------------------- */

/* dst[cap] = a + b; -1 if it does not fit. */
static int cat2(char *dst, size_t cap, const char *a, const char *b)
{
    size_t x = strlen(a), y = strlen(b);
    if (x + y + 1 > cap || x + y + 1 > WMAX * 8) return -1;
    char tmp[WMAX * 8]; /* a or b may alias dst */
    memcpy(tmp, a, x);
    memcpy(tmp + x, b, y + 1);
    memcpy(dst, tmp, x + y + 1);
    return 0;
}

static int append(char *dst, size_t cap, const char *b) { return cat2(dst, cap, dst, b); }

/* In place: every `from` -> `to`. -1 on overflow (dst then holds a prefix). */
static int replace_all(char *s, size_t cap, const char *from, const char *to)
{
    size_t fl = strlen(from), tl = strlen(to);
    if (!fl || !strstr(s, from)) return 0;
    char tmp[WMAX * 2];
    size_t o = 0;
    for (const char *p = s; *p;) {
        if (!strncmp(p, from, fl)) {
            if (o + tl >= sizeof tmp) return -1;
            memcpy(tmp + o, to, tl);
            o += tl;
            p += fl;
        } else {
            if (o + 1 >= sizeof tmp) return -1;
            tmp[o++] = *p++;
        }
    }
    tmp[o] = 0;
    if (o + 1 > cap) return -1;
    memcpy(s, tmp, o + 1);
    return 0;
}

/* replace_all for strings of any length (heap temp). */
static int replace_all_big(char *s, size_t cap, const char *from, const char *to)
{
    size_t fl = strlen(from), tl = strlen(to), n = strlen(s), cnt = 0;
    if (!fl) return 0;
    for (const char *p = strstr(s, from); p; p = strstr(p + fl, from)) cnt++;
    if (!cnt) return 0;
    size_t need = n + cnt * tl - cnt * fl + 1;
    if (need > cap) return -1;
    char *tmp = malloc(need);
    if (!tmp) return -1;
    size_t o = 0;
    for (const char *p = s; *p;) {
        if (!strncmp(p, from, fl)) {
            memcpy(tmp + o, to, tl);
            o += tl;
            p += fl;
        } else {
            tmp[o++] = *p++;
        }
    }
    tmp[o] = 0;
    memcpy(s, tmp, o + 1);
    free(tmp);
    return 0;
}

/* ---- stress ------------------------------------------------------------------------- */

#define NONE NAN
static int is_none(double x) { return isnan(x); }

/* misaki restress: every stress mark moves to just before the first vowel at or after it. */
static void restress(char *ps, size_t cap)
{
    uint32_t cp[WMAX];
    double pos[WMAX];
    int n = 0;
    size_t len = strlen(ps);
    for (size_t i = 0; i < len && n < WMAX;) {
        i += (size_t)cp_at(ps + i, len - i, &cp[n]);
        pos[n] = n;
        n++;
    }
    for (int i = 0; i < n; i++) {
        if (cp[i] != CP_PRIMARY && cp[i] != CP_SECONDARY) continue;
        int j = i;
        while (j < n && !in_set(cp[j], VOWELS)) j++;
        if (j < n) pos[i] = j - 0.5;
    }
    /* stable sort by (pos, cp): n is tiny */
    int idx[WMAX];
    for (int i = 0; i < n; i++) idx[i] = i;
    for (int i = 1; i < n; i++) {
        int v = idx[i], k = i - 1;
        while (k >= 0 && (pos[idx[k]] > pos[v] || (pos[idx[k]] == pos[v] && cp[idx[k]] > cp[v]))) {
            idx[k + 1] = idx[k];
            k--;
        }
        idx[k + 1] = v;
    }
    char out[WMAX];
    size_t o = 0;
    for (int i = 0; i < n; i++) {
        uint32_t c = cp[idx[i]];
        char b[4];
        int k;
        if (c < 0x80) { b[0] = (char)c; k = 1; }
        else if (c < 0x800) { b[0] = (char)(0xC0 | (c >> 6)); b[1] = (char)(0x80 | (c & 63)); k = 2; }
        else if (c < 0x10000) { b[0] = (char)(0xE0 | (c >> 12)); b[1] = (char)(0x80 | ((c >> 6) & 63)); b[2] = (char)(0x80 | (c & 63)); k = 3; }
        else { b[0] = (char)(0xF0 | (c >> 18)); b[1] = (char)(0x80 | ((c >> 12) & 63)); b[2] = (char)(0x80 | ((c >> 6) & 63)); b[3] = (char)(0x80 | (c & 63)); k = 4; }
        if (o + (size_t)k + 1 > sizeof out) break;
        memcpy(out + o, b, (size_t)k);
        o += (size_t)k;
    }
    out[o] = 0;
    if (o + 1 <= cap) memcpy(ps, out, o + 1);
}

/* misaki apply_stress, in place. */
static void apply_stress(char *ps, size_t cap, double stress)
{
    if (is_none(stress)) return;
    int hasP = strstr(ps, PRIMARY) != NULL, hasS = strstr(ps, SECONDARY) != NULL;
    if (stress < -1) {
        replace_all(ps, cap, PRIMARY, "");
        replace_all(ps, cap, SECONDARY, "");
    } else if (stress == -1 || ((stress == 0 || stress == -0.5) && hasP)) {
        replace_all(ps, cap, SECONDARY, "");
        replace_all(ps, cap, PRIMARY, SECONDARY);
    } else if ((stress == 0 || stress == 0.5 || stress == 1) && !hasP && !hasS) {
        if (!has_any(ps, VOWELS)) return;
        if (cat2(ps, cap, SECONDARY, ps) == 0) restress(ps, cap);
    } else if (stress >= 1 && !hasP && hasS) {
        replace_all(ps, cap, SECONDARY, PRIMARY);
    } else if (stress > 1 && !hasP && !hasS) {
        if (!has_any(ps, VOWELS)) return;
        if (cat2(ps, cap, PRIMARY, ps) == 0) restress(ps, cap);
    }
}

static int stress_weight(const char *ps)
{
    int w = 0;
    size_t n = strlen(ps);
    for (size_t i = 0; i < n;) {
        uint32_t c;
        i += (size_t)cp_at(ps + i, n - i, &c);
        w += in_set(c, DIPHTHONGS) ? 2 : 1;
    }
    return w;
}

/* ---- lexicon ------------------------------------------------------------------------ */

typedef struct ctx {
    int future_vowel; /* -1 None, 0, 1 */
    int future_to;
} ctx;

static const lexval *gold(const kg2p *g, const char *w) { return tab_get(&g->gold, w); }
static const lexval *silver(const kg2p *g, const char *w) { return tab_get(&g->silver, w); }

static const char *parent_tag(const char *tag)
{
    if (!tag) return NULL;
    if (!strncmp(tag, "VB", 2)) return "VERB";
    if (!strncmp(tag, "NN", 2)) return "NOUN";
    if (!strncmp(tag, "ADV", 3) || !strncmp(tag, "RB", 2)) return "ADV";
    if (!strncmp(tag, "ADJ", 3) || !strncmp(tag, "JJ", 2)) return "ADJ";
    return tag;
}

static const lexpair *dict_find(const lexval *v, const char *tag)
{
    if (!tag) return NULL;
    for (int i = 0; i < v->nd; i++)
        if (!strcmp(v->dict[i].tag, tag)) return &v->dict[i];
    return NULL;
}

/* ps of a dict value under tag (misaki: ps.get(tag, ps['DEFAULT'])). */
static const char *dict_get(const lexval *v, const char *tag)
{
    const lexpair *p = dict_find(v, tag);
    if (!p) p = dict_find(v, "DEFAULT");
    return p ? p->ps : NULL;
}

static int put(char *out, const char *ps)
{
    if (!ps || strlen(ps) + 1 > WMAX) return 0;
    memcpy(out, ps, strlen(ps) + 1);
    return 1;
}

static int is_known(const kg2p *g, const char *word);
static int lookup(const kg2p *g, const char *word, const char *tag, double stress, const ctx *c, char *out,
                  int *rating);

static int get_NNP(const kg2p *g, const char *word, char *out, int *rating)
{
    char ps[WMAX] = "";
    size_t n = strlen(word);
    for (size_t i = 0; i < n;) {
        uint32_t c;
        int k = cp_at(word + i, n - i, &c);
        if (is_letter(c)) {
            if (c >= 0x80) return 0;
            char key[2] = {upper_c((char)c), 0};
            const lexval *v = gold(g, key);
            if (!v || !v->ps) return 0;
            if (append(ps, sizeof ps, v->ps)) return 0;
        }
        i += (size_t)k;
    }
    apply_stress(ps, sizeof ps, 0);
    char *last = NULL;
    for (char *p = strstr(ps, SECONDARY); p; p = strstr(p + 1, SECONDARY)) last = p;
    if (last) memcpy(last, PRIMARY, strlen(PRIMARY)); /* same byte length (2) */
    *rating = 3;
    return put(out, ps);
}

static int lookup(const kg2p *g, const char *word0, const char *tag, double stress, const ctx *c, char *out,
                  int *rating)
{
    char word[WMAX];
    if (!put(word, word0)) return 0;
    int is_NNP = 0;
    if (is_upperword(word) && !gold(g, word)) {
        s_lower(word, word0);
        is_NNP = tag && !strcmp(tag, "NNP");
    }
    const lexval *v = gold(g, word);
    *rating = 4;
    if (!v && !is_NNP) {
        v = silver(g, word);
        *rating = 3;
    }
    const char *ps = NULL;
    if (v && v->ps) {
        ps = v->ps;
    } else if (v) {
        const char *t = tag;
        if (c && c->future_vowel < 0 && dict_find(v, "None"))
            t = "None";
        else if (!dict_find(v, t))
            t = parent_tag(t);
        ps = dict_get(v, t);
    }
    if (!ps || (is_NNP && !strstr(ps, PRIMARY))) {
        if (get_NNP(g, word, out, rating)) return 1;
    }
    if (!ps) return 0;
    if (!put(out, ps)) return 0;
    apply_stress(out, WMAX, stress);
    return 1;
}

static const char *symbol_word(const char *w)
{
    if (!strcmp(w, "%")) return "percent";
    if (!strcmp(w, "&")) return "and";
    if (!strcmp(w, "+")) return "plus";
    if (!strcmp(w, "@")) return "at";
    return NULL;
}

static int get_special_case(const kg2p *g, const char *word, const char *tag, double stress, const ctx *c,
                            char *out, int *rating)
{
    tag = tag ? tag : "";
    const char *sym = symbol_word(word);
    if (!strcmp(tag, "ADD") && (!strcmp(word, ".") || !strcmp(word, "/")))
        return lookup(g, !strcmp(word, ".") ? "dot" : "slash", NULL, -0.5, c, out, rating);
    if (sym) return lookup(g, sym, NULL, NONE, c, out, rating);
    {
        /* '.' in word.strip('.') and word.replace('.', '').isalpha() and longest part < 3 */
        size_t n = strlen(word), a = 0, b = n;
        while (a < n && word[a] == '.') a++;
        while (b > a && word[b - 1] == '.') b--;
        if (memchr(word + a, '.', b - a)) {
            char nodot[WMAX];
            size_t o = 0, run = 0, maxrun = 0;
            for (size_t i = 0; i < n && o + 1 < sizeof nodot; i++) {
                if (word[i] == '.') {
                    run = 0;
                } else {
                    nodot[o++] = word[i];
                    if (++run > maxrun) maxrun = run;
                }
            }
            nodot[o] = 0;
            if (s_isalpha(nodot) && maxrun < 3) return get_NNP(g, word, out, rating);
        }
    }
    *rating = 4;
    if (!strcmp(word, "a") || !strcmp(word, "A")) return put(out, !strcmp(tag, "DT") ? "ɐ" : "ˈA");
    if (!strcmp(word, "am") || !strcmp(word, "Am") || !strcmp(word, "AM")) {
        if (!strncmp(tag, "NN", 2)) return get_NNP(g, word, out, rating);
        if (!c || c->future_vowel < 0 || strcmp(word, "am") || (!is_none(stress) && stress > 0)) {
            const lexval *v = gold(g, "am");
            return v && put(out, v->ps ? v->ps : dict_get(v, NULL));
        }
        return put(out, "ɐm");
    }
    if (!strcmp(word, "an") || !strcmp(word, "An") || !strcmp(word, "AN")) {
        if (!strcmp(word, "AN") && !strncmp(tag, "NN", 2)) return get_NNP(g, word, out, rating);
        return put(out, "ɐn");
    }
    if (!strcmp(word, "I") && !strcmp(tag, "PRP")) return put(out, SECONDARY "I");
    if ((!strcmp(word, "by") || !strcmp(word, "By") || !strcmp(word, "BY")) &&
        !strcmp(parent_tag(tag), "ADV"))
        return put(out, "bˈI");
    if (!strcmp(word, "to") || !strcmp(word, "To") ||
        (!strcmp(word, "TO") && (!strcmp(tag, "TO") || !strcmp(tag, "IN")))) {
        if (c && c->future_vowel == 0) return put(out, "tə");
        if (c && c->future_vowel == 1) return put(out, "tʊ");
        const lexval *v = gold(g, "to");
        return v && put(out, v->ps ? v->ps : dict_get(v, NULL));
    }
    if (!strcmp(word, "in") || !strcmp(word, "In") || (!strcmp(word, "IN") && strcmp(tag, "NNP"))) {
        int prim = !c || c->future_vowel < 0 || strcmp(tag, "IN");
        return put(out, prim ? PRIMARY "ɪn" : "ɪn");
    }
    if (!strcmp(word, "the") || !strcmp(word, "The") || (!strcmp(word, "THE") && !strcmp(tag, "DT")))
        return put(out, c && c->future_vowel == 1 ? "ði" : "ðə");
    if (!strcmp(tag, "IN") && (!strcasecmp(word, "vs") || !strcasecmp(word, "vs.")))
        return lookup(g, "versus", NULL, NONE, c, out, rating);
    if (!strcmp(word, "used") || !strcmp(word, "Used") || !strcmp(word, "USED")) {
        const lexval *v = gold(g, "used");
        if (!v) return 0;
        if (v->ps) return put(out, v->ps);
        if ((!strcmp(tag, "VBD") || !strcmp(tag, "JJ")) && c && c->future_to) return put(out, dict_get(v, "VBD"));
        return put(out, dict_get(v, "DEFAULT"));
    }
    return 0;
}

static int is_known(const kg2p *g, const char *word)
{
    if (gold(g, word) || symbol_word(word) || silver(g, word)) return 1;
    if (!s_isalpha(word) || !lexicon_ords(word)) return 0;
    if (strlen(word) == 1) return 1;
    char lw[WMAX];
    if (strlen(word) >= sizeof lw) return 0;
    s_lower(lw, word);
    if (is_upperword(word) && gold(g, lw)) return 1;
    return is_upperword(word + 1);
}

static int suffix_s(const kg2p *g, char *ps) /* misaki _s, in place */
{
    if (!*ps) return 0;
    uint32_t e = last_cp(ps, 1);
    if (in_set(e, "ptkfθ")) return append(ps, WMAX, "s") == 0;
    if (in_set(e, "szʃʒʧʤ")) return append(ps, WMAX, g->british ? "ɪz" : "ᵻz") == 0;
    return append(ps, WMAX, "z") == 0;
}

static int stem_s(const kg2p *g, const char *word, const char *tag, double stress, const ctx *c, char *out,
                  int *rating)
{
    size_t n = strlen(word);
    if (n < 3 || word[n - 1] != 's') return 0;
    char stem[WMAX];
    if (n >= sizeof stem) return 0;
    memcpy(stem, word, n + 1);
    if (!ends_with(word, "ss") && (stem[n - 1] = 0, is_known(g, stem))) {
    } else if ((memcpy(stem, word, n + 1), ends_with(word, "'s") || (n > 4 && ends_with(word, "es") && !ends_with(word, "ies"))) &&
               (stem[n - 2] = 0, is_known(g, stem))) {
    } else if ((memcpy(stem, word, n + 1), n > 4 && ends_with(word, "ies")) &&
               (stem[n - 3] = 'y', stem[n - 2] = 0, is_known(g, stem))) {
    } else {
        return 0;
    }
    if (!lookup(g, stem, tag, stress, c, out, rating)) return 0;
    return suffix_s(g, out);
}

static int suffix_ed(const kg2p *g, char *ps)
{
    if (!*ps) return 0;
    uint32_t e = last_cp(ps, 1);
    if (in_set(e, "pkfθʃsʧ")) return append(ps, WMAX, "t") == 0;
    if (e == 'd') return append(ps, WMAX, g->british ? "ɪd" : "ᵻd") == 0;
    if (e != 't') return append(ps, WMAX, "d") == 0;
    if (g->british || kg2p_cplen(ps) < 2) return append(ps, WMAX, "ɪd") == 0;
    if (in_set(last_cp(ps, 2), US_TAUS)) {
        ps[strlen(ps) - 1] = 0;
        return append(ps, WMAX, "ɾᵻd") == 0;
    }
    return append(ps, WMAX, "ᵻd") == 0;
}

static int stem_ed(const kg2p *g, const char *word, const char *tag, double stress, const ctx *c, char *out,
                   int *rating)
{
    size_t n = strlen(word);
    if (n < 4 || word[n - 1] != 'd') return 0;
    char stem[WMAX];
    if (n >= sizeof stem) return 0;
    memcpy(stem, word, n + 1);
    if (!ends_with(word, "dd") && (stem[n - 1] = 0, is_known(g, stem))) {
    } else if ((memcpy(stem, word, n + 1), n > 4 && ends_with(word, "ed") && !ends_with(word, "eed")) &&
               (stem[n - 2] = 0, is_known(g, stem))) {
    } else {
        return 0;
    }
    if (!lookup(g, stem, tag, stress, c, out, rating)) return 0;
    return suffix_ed(g, out);
}

static int suffix_ing(const kg2p *g, char *ps)
{
    if (!*ps) return 0;
    if (g->british) {
        uint32_t e = last_cp(ps, 1);
        if (e == 0x259 /* ə */ || e == 0x2D0 /* ː */) return 0;
    } else if (kg2p_cplen(ps) > 1 && last_cp(ps, 1) == 't' && in_set(last_cp(ps, 2), US_TAUS)) {
        ps[strlen(ps) - 1] = 0;
        return append(ps, WMAX, "ɾɪŋ") == 0;
    }
    return append(ps, WMAX, "ɪŋ") == 0;
}

static int stem_ing(const kg2p *g, const char *word, const char *tag, double stress, const ctx *c, char *out,
                    int *rating)
{
    size_t n = strlen(word);
    if (n < 5 || !ends_with(word, "ing")) return 0;
    char stem[WMAX];
    if (n >= sizeof stem) return 0;
    memcpy(stem, word, n + 1);
    stem[n - 3] = 0;
    int dbl = 0;
    if (n > 5) {
        char a = word[n - 5], b = word[n - 4];
        dbl = (a == b && strchr("bcdgklmnprstvxz", a)) || ends_with(word, "cking");
    }
    if (n > 5 && is_known(g, stem)) {
    } else if ((stem[n - 3] = 'e', stem[n - 2] = 0, is_known(g, stem))) {
    } else if (dbl && (memcpy(stem, word, n + 1), stem[n - 4] = 0, is_known(g, stem))) {
    } else {
        return 0;
    }
    if (!lookup(g, stem, tag, stress, c, out, rating)) return 0;
    return suffix_ing(g, out);
}

static int get_word(const kg2p *g, const char *word0, const char *tag, double stress, const ctx *c, char *out,
                    int *rating)
{
    if (get_special_case(g, word0, tag, stress, c, out, rating)) return 1;
    char word[WMAX], wl[WMAX], tmp[WMAX];
    if (!put(word, word0)) return 0;
    s_lower(wl, word);
    char noap[WMAX];
    {
        size_t o = 0;
        for (const char *p = word; *p; p++)
            if (*p != '\'') noap[o++] = *p;
        noap[o] = 0;
    }
    int tmpr;
    if (strlen(word) > 1 && s_isalpha(noap) && strcmp(word, wl) && (!tag || strcmp(tag, "NNP") || strlen(word) > 7) &&
        !gold(g, word) && !silver(g, word) && (is_upperword(word) || is_lowerword(word + 1)) &&
        (gold(g, wl) || silver(g, wl) || stem_s(g, wl, tag, stress, c, tmp, &tmpr) ||
         stem_ed(g, wl, tag, stress, c, tmp, &tmpr) || stem_ing(g, wl, tag, stress, c, tmp, &tmpr)))
        memcpy(word, wl, strlen(wl) + 1);
    if (is_known(g, word)) return lookup(g, word, tag, stress, c, out, rating);
    size_t n = strlen(word);
    if (ends_with(word, "s'")) {
        memcpy(tmp, word, n - 2);
        memcpy(tmp + n - 2, "'s", 3);
        if (is_known(g, tmp)) return lookup(g, tmp, tag, stress, c, out, rating);
    }
    if (ends_with(word, "'")) {
        memcpy(tmp, word, n - 1);
        tmp[n - 1] = 0;
        if (is_known(g, tmp)) return lookup(g, tmp, tag, stress, c, out, rating);
    }
    if (stem_s(g, word, tag, stress, c, out, rating)) return 1;
    if (stem_ed(g, word, tag, stress, c, out, rating)) return 1;
    if (stem_ing(g, word, tag, is_none(stress) ? 0.5 : stress, c, out, rating)) return 1;
    return 0;
}

/* ---- numbers (num2words, English) -------------------------------------------------- */

static const char *const ONES[] = {"zero", "one", "two", "three", "four", "five", "six", "seven", "eight",
                                   "nine", "ten", "eleven", "twelve", "thirteen", "fourteen", "fifteen",
                                   "sixteen", "seventeen", "eighteen", "nineteen"};
static const char *const TENS[] = {"", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"};
static const char *const SCALES[] = {"", "thousand", "million", "billion", "trillion", "quadrillion", "quintillion"};

/* Words of n < 1000 (n > 0), appended space-separated (no "and"). */
static int words_lt1000(char *out, size_t cap, unsigned n)
{
    int rc = 0;
    if (n >= 100) {
        rc |= append(out, cap, *out ? " " : "");
        rc |= append(out, cap, ONES[n / 100]);
        rc |= append(out, cap, " hundred");
        n %= 100;
    }
    if (n >= 20) {
        rc |= append(out, cap, *out ? " " : "");
        rc |= append(out, cap, TENS[n / 10]);
        if (n % 10) {
            rc |= append(out, cap, " ");
            rc |= append(out, cap, ONES[n % 10]);
        }
    } else if (n > 0) {
        rc |= append(out, cap, *out ? " " : "");
        rc |= append(out, cap, ONES[n]);
    }
    return rc;
}

static int cardinal(char *out, size_t cap, unsigned long long n)
{
    out[0] = 0;
    if (n == 0) return append(out, cap, "zero");
    unsigned part[8];
    int np = 0;
    while (n && np < 7) {
        part[np++] = (unsigned)(n % 1000);
        n /= 1000;
    }
    if (n) return -1;
    int rc = 0;
    for (int i = np - 1; i >= 0; i--) {
        if (!part[i]) continue;
        rc |= words_lt1000(out, cap, part[i]);
        if (i) {
            rc |= append(out, cap, " ");
            rc |= append(out, cap, SCALES[i]);
        }
    }
    return rc ? -1 : 0;
}

static int ordinal(char *out, size_t cap, unsigned long long n)
{
    if (cardinal(out, cap, n)) return -1;
    char *last = strrchr(out, ' ');
    last = last ? last + 1 : out;
    static const char *const from[] = {"one", "two", "three", "five", "eight", "nine", "twelve"};
    static const char *const to[] = {"first", "second", "third", "fifth", "eighth", "ninth", "twelfth"};
    for (size_t i = 0; i < sizeof from / sizeof *from; i++) {
        if (!strcmp(last, from[i])) {
            *last = 0;
            return append(out, cap, to[i]);
        }
    }
    size_t l = strlen(last);
    if (l && last[l - 1] == 'y') {
        last[l - 1] = 0;
        if (append(out, cap, "ie")) return -1;
    }
    return append(out, cap, "th");
}

static int year(char *out, size_t cap, unsigned v)
{
    unsigned high = v / 100, low = v % 100;
    if (high == 0 || (high % 10 == 0 && low < 10) || high >= 100) return cardinal(out, cap, v);
    if (cardinal(out, cap, high)) return -1;
    char lo[128];
    if (low == 0) {
        snprintf(lo, sizeof lo, "hundred");
    } else if (low < 10) {
        snprintf(lo, sizeof lo, "oh %s", ONES[low]);
    } else if (cardinal(lo, sizeof lo, low)) {
        return -1;
    }
    return append(out, cap, " ") || append(out, cap, lo) ? -1 : 0;
}

typedef struct numacc {
    char ps[WMAX];
    int rating;
    int any;
    int bad;
} numacc;

static void acc_add(numacc *a, const char *ps, int rating)
{
    if (a->any && append(a->ps, sizeof a->ps, " ")) a->bad = 1;
    if (append(a->ps, sizeof a->ps, ps)) a->bad = 1;
    if (!a->any || rating < a->rating) a->rating = rating;
    a->any = 1;
}

/* extend_num(word-string, escape=True): each [a-z]+ word looked up; "and" skipped. */
static void acc_words(const kg2p *g, numacc *a, const char *words)
{
    char w[64];
    const char *p = words;
    while (*p) {
        while (*p && !(*p >= 'a' && *p <= 'z')) p++;
        size_t k = 0;
        while (p[k] >= 'a' && p[k] <= 'z') k++;
        if (!k) break;
        if (k < sizeof w) {
            memcpy(w, p, k);
            w[k] = 0;
            if (strcmp(w, "and")) {
                char ps[WMAX];
                int r;
                if (lookup(g, w, NULL, !strcmp(w, "point") ? -2 : NONE, NULL, ps, &r))
                    acc_add(a, ps, r);
                else
                    a->bad = 1;
            }
        }
        p += k;
    }
}

static void acc_int(const kg2p *g, numacc *a, const char *digits)
{
    char buf[512];
    unsigned long long v = strtoull(digits, NULL, 10);
    if (strlen(digits) > 18 || cardinal(buf, sizeof buf, v)) {
        a->bad = 1;
        return;
    }
    acc_words(g, a, buf);
}

static int is_ordinal_suffix(const char *s)
{
    return s && (!strcmp(s, "st") || !strcmp(s, "nd") || !strcmp(s, "rd") || !strcmp(s, "th"));
}

static const char *currency_unit(const char *cur, int k) /* k 0 = main, 1 = cents */
{
    if (!cur) return NULL;
    if (!strcmp(cur, "$")) return k ? "cent" : "dollar";
    if (!strcmp(cur, "£")) return k ? "pence" : "pound";
    if (!strcmp(cur, "€")) return k ? "cent" : "euro";
    return NULL;
}

static int get_number(const kg2p *g, const char *word0, const char *currency, int is_head, char *out, int *rating)
{
    char word[WMAX], suffix[WMAX] = "";
    if (!put(word, word0)) return 0;
    size_t n = strlen(word), s = n;
    while (s > 0 && ((word[s - 1] >= 'a' && word[s - 1] <= 'z') || word[s - 1] == '\'')) s--;
    if (s < n) {
        memcpy(suffix, word + s, n - s + 1);
        word[s] = 0;
    }
    const char *suf = *suffix ? suffix : NULL;
    numacc a = {.ps = "", .rating = 4};
    char *w = word;
    if (*w == '-') {
        char ps[WMAX];
        int r;
        if (lookup(g, "minus", NULL, NONE, NULL, ps, &r)) acc_add(&a, ps, r);
        w++;
    }
    char buf[512];
    int cur_ok = currency_unit(currency, 0) != NULL;
    if (is_digits(w) && is_ordinal_suffix(suf)) {
        if (strlen(w) > 18 || ordinal(buf, sizeof buf, strtoull(w, NULL, 10))) return 0;
        acc_words(g, &a, buf);
    } else if (!a.any && strlen(w) == 4 && !cur_ok && is_digits(w)) {
        if (year(buf, sizeof buf, (unsigned)atoi(w))) return 0;
        acc_words(g, &a, buf);
    } else if (!is_head && !strchr(w, '.')) {
        char num[WMAX];
        size_t o = 0;
        for (const char *p = w; *p; p++)
            if (*p != ',') num[o++] = *p;
        num[o] = 0;
        if (!*num) return 0;
        if (num[0] == '0' || o > 3) {
            for (size_t i = 0; i < o; i++) {
                char d[2] = {num[i], 0};
                acc_int(g, &a, d);
            }
        } else if (o == 3 && !ends_with(num, "00")) {
            char d[2] = {num[0], 0};
            acc_int(g, &a, d);
            if (num[1] == '0') {
                char ps[WMAX];
                int r;
                if (lookup(g, "O", NULL, -2, NULL, ps, &r)) acc_add(&a, ps, r);
                d[0] = num[2];
                acc_int(g, &a, d);
            } else {
                acc_int(g, &a, num + 1);
            }
        } else {
            acc_int(g, &a, num);
        }
    } else if (strchr(w, '.') != strrchr(w, '.') || !is_head) {
        char num[WMAX];
        size_t o = 0;
        for (const char *p = w; *p; p++)
            if (*p != ',') num[o++] = *p;
        num[o] = 0;
        char *save = NULL;
        int first = 1;
        (void)first;
        for (char *part = strtok_r(num, ".", &save); part; part = strtok_r(NULL, ".", &save)) {
            size_t pl = strlen(part);
            int nonzero_tail = 0;
            for (size_t i = 1; i < pl; i++) nonzero_tail |= part[i] != '0';
            if (part[0] == '0' || (pl != 2 && nonzero_tail)) {
                for (size_t i = 0; i < pl; i++) {
                    char d[2] = {part[i], 0};
                    acc_int(g, &a, d);
                }
            } else {
                acc_int(g, &a, part);
            }
        }
    } else if (cur_ok && (!strchr(w, '.') || strlen(strchr(w, '.') + 1) < 3)) {
        char num[WMAX];
        size_t o = 0;
        for (const char *p = w; *p; p++)
            if (*p != ',') num[o++] = *p;
        num[o] = 0;
        char *dot = strchr(num, '.');
        unsigned long long v[2] = {0, 0};
        int np = 1;
        if ((dot ? (size_t)(dot - num) : strlen(num)) > 18) return 0; /* past num2words' range here */
        if (dot) {
            *dot = 0;
            v[1] = strtoull(dot + 1, NULL, 10);
            np = 2;
        }
        v[0] = strtoull(num, NULL, 10);
        int from = 0, to = np;
        if (np == 2) {
            if (v[1] == 0)
                to = 1;
            else if (v[0] == 0)
                from = 1;
        }
        for (int i = from; i < to; i++) {
            char ps[WMAX];
            int r;
            if (i > from && lookup(g, "and", NULL, NONE, NULL, ps, &r)) acc_add(&a, ps, r);
            if (cardinal(buf, sizeof buf, v[i])) return 0;
            acc_words(g, &a, buf);
            const char *unit = currency_unit(currency, i);
            if (v[i] != 1 && strcmp(unit, "pence")) {
                char pl[32];
                snprintf(pl, sizeof pl, "%ss", unit);
                if (stem_s(g, pl, NULL, NONE, NULL, ps, &r)) acc_add(&a, ps, r);
            } else if (lookup(g, unit, NULL, NONE, NULL, ps, &r)) {
                acc_add(&a, ps, r);
            }
        }
    } else {
        char num[WMAX];
        size_t o = 0;
        for (const char *p = w; *p; p++)
            if (*p != ',') num[o++] = *p;
        num[o] = 0;
        if (is_digits(w)) {
            acc_int(g, &a, w);
        } else if (!strchr(num, '.')) {
            if (strlen(num) > 18) return 0;
            if (is_ordinal_suffix(suf)) {
                if (ordinal(buf, sizeof buf, strtoull(num, NULL, 10))) return 0;
                acc_words(g, &a, buf);
            } else {
                acc_int(g, &a, num);
            }
        } else {
            char *dot = strchr(num, '.');
            *dot = 0;
            const char *frac = dot + 1;
            if (!*num) {
                acc_words(g, &a, "point");
            } else {
                /* num2words(float): integer part, "point", each fractional digit (Python's
                 * repr drops trailing zeros but keeps one) */
                acc_int(g, &a, num);
                acc_words(g, &a, "point");
            }
            char fr[WMAX];
            snprintf(fr, sizeof fr, "%s", frac);
            size_t fl = strlen(fr);
            if (*num) {
                while (fl > 1 && fr[fl - 1] == '0') fr[--fl] = 0;
                if (!fl) snprintf(fr, sizeof fr, "0");
            }
            for (size_t i = 0; fr[i]; i++) {
                if (fr[i] < '0' || fr[i] > '9') continue;
                acc_words(g, &a, ONES[fr[i] - '0']);
            }
        }
    }
    if (!a.any || a.bad) return 0;
    *rating = a.rating;
    if (!put(out, a.ps)) return 0;
    if (suf && (!strcmp(suf, "s") || !strcmp(suf, "'s"))) return suffix_s(g, out);
    if (suf && (!strcmp(suf, "ed") || !strcmp(suf, "'d"))) return suffix_ed(g, out);
    if (suf && !strcmp(suf, "ing")) return suffix_ing(g, out);
    return 1;
}

static int is_number(const char *word, int is_head)
{
    int anyd = 0;
    for (const char *p = word; *p; p++) anyd |= *p >= '0' && *p <= '9';
    if (!anyd) return 0;
    static const char *const sfx[] = {"ing", "'d", "ed", "'s", "st", "nd", "rd", "th", "s"};
    size_t n = strlen(word);
    for (size_t i = 0; i < sizeof sfx / sizeof *sfx; i++) {
        if (ends_with(word, sfx[i])) {
            n -= strlen(sfx[i]);
            break;
        }
    }
    for (size_t i = 0; i < n; i++) {
        char c = word[i];
        if (!((c >= '0' && c <= '9') || c == ',' || c == '.' || (is_head && i == 0 && c == '-'))) return 0;
    }
    return 1;
}

/* ---- tokens ------------------------------------------------------------------------- */

typedef struct tk {
    char *text;
    const char *tag;
    const char *alias;    /* "to" for "2" between letters */
    const char *currency; /* "$", "£", "€" or NULL */
    char *ps;             /* NULL = None */
    int ws, is_head, prespace, rating;
    double stress;
    size_t off; /* byte offset of the token in the (preprocessed) text */
} tk;

typedef struct tokv {
    tk *t;
    size_t n, cap;
    arena *ar;
    const char *base; /* the text token offsets refer to */
} tokv;

static tk *tok_push(tokv *v, const char *s, size_t len)
{
    if (v->n == v->cap) {
        size_t nc = v->cap ? v->cap * 2 : 64;
        tk *nt = realloc(v->t, nc * sizeof *nt);
        if (!nt) return NULL;
        v->t = nt;
        v->cap = nc;
    }
    char *text = arena_alloc(v->ar, len + 1);
    if (!text) return NULL;
    memcpy(text, s, len);
    text[len] = 0;
    tk *t = &v->t[v->n++];
    memset(t, 0, sizeof *t);
    t->text = text;
    t->tag = "";
    t->is_head = 1;
    t->stress = NONE;
    t->off = v->base && s >= v->base ? (size_t)(s - v->base) : 0;
    return t;
}

static int set_ps(arena *ar, tk *t, const char *ps)
{
    t->ps = arena_str(ar, ps);
    return t->ps ? 0 : -1;
}

/* misaki's SUBTOKEN_REGEX at byte offset p of s[0..n); returns the match length (0: none). */
static size_t subtoken_at(const char *s, size_t n, size_t p)
{
    uint32_t c, c2 = 0, c3 = 0;
    int k = cp_at(s + p, n - p, &c);
    size_t q = p + (size_t)k;
    int k2 = q < n ? cp_at(s + q, n - q, &c2) : 0;
    if (k2 && q + (size_t)k2 < n) cp_at(s + q + k2, n - q - (size_t)k2, &c3);
    /* 1: ^['‘’]+ */
    if (p == 0 && is_apos(c)) {
        size_t e = p;
        uint32_t x;
        while (e < n && (k = cp_at(s + e, n - e, &x), is_apos(x))) e += (size_t)k;
        return e - p;
    }
    /* 2: \p{Lu}(?=\p{Lu}\p{Ll}) */
    if (is_lu(c) && k2 && is_lu(c2) && c3 && is_ll(c3)) return (size_t)k;
    /* 3: (?:^-)?(?:\d?[,.]?\d)+ */
    {
        size_t e = p;
        if (p == 0 && s[0] == '-') e = 1;
        size_t best = 0;
        for (;;) {
            /* one group: \d? [,.]? \d (greedy, with the backtracking that matters) */
            size_t f = e;
            int ok = 0;
            if (f < n && is_digitc((unsigned char)s[f])) {
                if (f + 1 < n && (s[f + 1] == ',' || s[f + 1] == '.') && f + 2 < n && is_digitc((unsigned char)s[f + 2])) {
                    f += 3;
                    ok = 1;
                } else if (f + 1 < n && is_digitc((unsigned char)s[f + 1])) {
                    f += 2;
                    ok = 1;
                } else {
                    f += 1;
                    ok = 1;
                }
            } else if (f < n && (s[f] == ',' || s[f] == '.') && f + 1 < n && is_digitc((unsigned char)s[f + 1])) {
                f += 2;
                ok = 1;
            }
            if (!ok) break;
            e = f;
            best = e;
        }
        if (best) return best - p;
    }
    /* 4: [-_]+ */
    if (c == '-' || c == '_') {
        size_t e = p;
        while (e < n && (s[e] == '-' || s[e] == '_')) e++;
        return e - p;
    }
    /* 5: ['‘’]{2,} */
    if (is_apos(c) && k2 && is_apos(c2)) {
        size_t e = p;
        uint32_t x;
        while (e < n && (k = cp_at(s + e, n - e, &x), is_apos(x))) e += (size_t)k;
        return e - p;
    }
    /* 6: \p{L}*?\p{Ll}(?=\p{Lu}) (camelCase), 7: \p{L}+(?:['‘’]\p{L})* */
    if (is_letter(c)) {
        size_t e = p;
        uint32_t x, y;
        while (e < n) {
            int kx = cp_at(s + e, n - e, &x);
            if (!is_letter(x)) break;
            size_t f = e + (size_t)kx;
            if (is_ll(x) && f < n && (cp_at(s + f, n - f, &y), is_lu(y))) return f - p;
            e = f;
        }
        /* 7 */
        while (e < n) {
            int ka = cp_at(s + e, n - e, &x);
            if (!is_apos(x) || e + (size_t)ka >= n) break;
            int kl = cp_at(s + e + ka, n - e - (size_t)ka, &y);
            if (!is_letter(y)) break;
            e += (size_t)ka + (size_t)kl;
        }
        return e - p;
    }
    /* 8: [^-_\p{L}'‘’\d] */
    if (!is_apos(c) && !is_digitc(c) && c != '-' && c != '_') return (size_t)k;
    /* 9: ['‘’]+$ */
    if (is_apos(c)) {
        size_t e = p;
        uint32_t x;
        while (e < n && (k = cp_at(s + e, n - e, &x), is_apos(x))) e += (size_t)k;
        if (e == n) return e - p;
    }
    return 0;
}

static int is_punct_prefix(uint32_t c) { return c && in_set(c, "\"“([{«¿¡*"); }
static int is_punct_suffix(uint32_t c) { return c && in_set(c, "\"”)]}».,!?;:…*"); }
static int is_currency(uint32_t c) { return c == '$' || c == 0xA3 || c == 0x20AC; }

static const char *punct_ps(uint32_t c, int prefix)
{
    switch (c) {
    case '(': case '[': case '{': return "(";
    case ')': case ']': case '}': return ")";
    case '"': return prefix ? "“" : "”";
    case 0x201C: case 0xAB: return "“";
    case 0x201D: case 0xBB: return "”";
    case ';': return ";";
    case ':': return ":";
    case ',': return ",";
    case '.': return ".";
    case '!': return "!";
    case '?': return "?";
    case 0x2014: return "—";
    case 0x2026: return "…";
    default: return "";
    }
}

static int is_space_cp(uint32_t c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f' || c == 0xA0 ||
           (c >= 0x2000 && c <= 0x200A) || c == 0x202F || c == 0x205F || c == 0x3000;
}

/* s[0..n) ends in '.': is the dot part of the word? Lexicon entries (Mr., etc.) and
 * dotted initials of 1-3 letters (U.S., e.g., a.m.), as spaCy's exceptions keep them. */
static int is_abbrev(const kg2p *g, const char *s, size_t n)
{
    char w[64];
    if (n >= sizeof w) return 0;
    memcpy(w, s, n);
    w[n] = 0;
    if (gold(g, w) || silver(g, w)) return 1;
    int parts = 0;
    size_t run = 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == '.') {
            if (!run || run > 3) return 0;
            parts++;
            run = 0;
        } else if ((c | 32) >= 'a' && (c | 32) <= 'z') {
            run++;
        } else {
            return 0;
        }
    }
    return parts >= 2;
}

/* Splits one whitespace-free chunk into tokens (spaCy stand-in + misaki subtokenize). */
static int tokenize_chunk(const kg2p *g, tokv *v, const char *s, size_t n, int ws)
{
    size_t first = v->n;
    /* whole chunk of dashes: a pause */
    {
        uint32_t c;
        int all = 1;
        for (size_t j = 0; j < n;) {
            j += (size_t)cp_at(s + j, n - j, &c);
            all &= c == '-' || c == 0x2013 || c == 0x2014;
        }
        if (all) {
            tk *t = tok_push(v, s, n);
            if (!t || set_ps(v->ar, t, "—")) return ERR_NOMEM;
            t->tag = ":";
            t->rating = 3;
            t->ws = ws;
            return 0;
        }
    }
    size_t a = 0, b = n;
    const char *currency = NULL;
    /* prefixes */
    while (a < b) {
        uint32_t c;
        int k = cp_at(s + a, b - a, &c);
        if (is_currency(c)) {
            tk *t = tok_push(v, s + a, (size_t)k);
            if (!t || set_ps(v->ar, t, "")) return ERR_NOMEM;
            t->tag = "$";
            t->rating = 4;
            currency = c == '$' ? "$" : c == 0xA3 ? "£" : "€";
        } else if (is_punct_prefix(c)) {
            tk *t = tok_push(v, s + a, (size_t)k);
            if (!t || set_ps(v->ar, t, punct_ps(c, 1))) return ERR_NOMEM;
            t->tag = ".";
            t->rating = 4;
        } else {
            break;
        }
        a += (size_t)k;
    }
    /* suffixes (collected right to left, emitted after the core) */
    size_t sufpos[64];
    int nsuf = 0;
    while (b > a && nsuf < 64) {
        size_t i = b;
        do i--; while (i > a && ((unsigned char)s[i] & 0xC0) == 0x80);
        uint32_t c;
        cp_at(s + i, b - i, &c);
        if (!is_punct_suffix(c)) break;
        if (c == '.' && is_abbrev(g, s + a, b - a)) break;
        sufpos[nsuf++] = i;
        b = i;
    }
    /* core */
    size_t core_first = v->n;
    for (size_t p = a; p < b;) {
        size_t m = subtoken_at(s + a, b - a, p - a);
        if (!m) {
            uint32_t c;
            m = (size_t)cp_at(s + p, b - p, &c);
        }
        if (!tok_push(v, s + p, m)) return ERR_NOMEM;
        p += m;
    }
    size_t core_end = v->n;
    for (size_t i = core_first; i < core_end; i++) {
        tk *t = &v->t[i];
        int digit = is_number(t->text, 1);
        t->tag = digit ? "CD" : "";
        /* "2" between letters reads "to" */
        if (!strcmp(t->text, "2") && i > core_first && i + 1 < core_end) {
            const char *l = v->t[i - 1].text;
            char r = v->t[i + 1].text[0];
            char lc = l[strlen(l) - 1];
            if (((lc | 32) >= 'a' && (lc | 32) <= 'z') && ((r | 32) >= 'a' && (r | 32) <= 'z')) t->alias = "to";
        }
    }
    if (currency && core_end > core_first && is_number(v->t[core_end - 1].text, 1))
        v->t[core_end - 1].currency = currency;
    for (int k = nsuf - 1; k >= 0; k--) {
        size_t i = sufpos[k];
        size_t e = k > 0 ? sufpos[k - 1] : n;
        uint32_t c;
        cp_at(s + i, e - i, &c);
        tk *t = tok_push(v, s + i, e - i);
        if (!t || set_ps(v->ar, t, punct_ps(c, 0))) return ERR_NOMEM;
        t->tag = ".";
        t->rating = 4;
    }
    if (v->n > first) v->t[v->n - 1].ws = ws;
    return 0;
}

/* The few tags misaki's rules read, guessed from neighbours (see g2p.h). */
static void guess_tags(tokv *v)
{
    int sent_start = 1;
    const char *prev = NULL; /* previous word token text (lower-cased check) */
    for (size_t i = 0; i < v->n; i++) {
        tk *t = &v->t[i];
        if (t->ps) { /* punctuation */
            if (strchr(".!?", t->ps[0]) || !strcmp(t->ps, "…")) sent_start = 1;
            if (t->ps[0]) prev = NULL;
            continue;
        }
        if (!strcmp(t->tag, "CD")) {
            sent_start = 0;
            prev = t->text;
            continue;
        }
        const char *w = t->text;
        /* next word-like token */
        const tk *nx = NULL;
        for (size_t j = i + 1; j < v->n; j++) {
            if (v->t[j].ps && v->t[j].ps[0]) break;
            if (v->t[j].ps) continue;
            nx = &v->t[j];
            break;
        }
        int next_word = nx && (s_isalpha(nx->text) || !strcmp(nx->tag, "CD"));
        uint32_t c0;
        cp_at(w, strlen(w), &c0);
        if (!strcmp(w, "a") || !strcmp(w, "A")) {
            t->tag = next_word ? "DT" : "NN";
        } else if (!strcmp(w, "I")) {
            t->tag = "PRP";
        } else if (!strcasecmp(w, "the") || !strcasecmp(w, "an")) {
            t->tag = "DT";
        } else if (!strcasecmp(w, "to")) {
            t->tag = "TO";
        } else if (!strcasecmp(w, "in") || !strcasecmp(w, "vs")) {
            t->tag = "IN";
        } else if (!strcasecmp(w, "by")) {
            t->tag = next_word ? "IN" : "RB";
        } else if (!strcasecmp(w, "used")) {
            t->tag = "VBD";
        } else if (strlen(w) > 1 && s_isalpha(w) && is_upperword(w) && s_has_upper(w)) {
            t->tag = "NNP";
        } else if (is_lu(c0) && !sent_start && s_isalpha(w)) {
            t->tag = "NNP";
        } else if (prev && (!strcasecmp(prev, "the") || !strcasecmp(prev, "a") || !strcasecmp(prev, "an") ||
                            !strcasecmp(prev, "my") || !strcasecmp(prev, "your") || !strcasecmp(prev, "his") ||
                            !strcasecmp(prev, "her") || !strcasecmp(prev, "our") || !strcasecmp(prev, "their") ||
                            !strcasecmp(prev, "this") || !strcasecmp(prev, "that") || !strcasecmp(prev, "its"))) {
            t->tag = "NN";
        } else if (prev && (!strcasecmp(prev, "to") || !strcasecmp(prev, "will") || !strcasecmp(prev, "can") ||
                            !strcasecmp(prev, "would") || !strcasecmp(prev, "could") || !strcasecmp(prev, "should") ||
                            !strcasecmp(prev, "must") || !strcasecmp(prev, "might") || !strcasecmp(prev, "may") ||
                            !strcasecmp(prev, "please") || !strcasecmp(prev, "let's"))) {
            t->tag = "VB";
        }
        if (s_isalpha(w) || strchr(w, '\'')) {
            sent_start = 0;
            prev = w;
        }
    }
}

/* ---- the G2P loop (misaki G2P.__call__) -------------------------------------------- */

typedef struct wordr {
    size_t a, n; /* tokens [a, a+n); n > 1: a list */
} wordr;

static int all_junk(const char *s)
{
    size_t n = strlen(s);
    for (size_t i = 0; i < n;) {
        uint32_t c;
        i += (size_t)cp_at(s + i, n - i, &c);
        if (!in_set(c, SUBTOKEN_JUNKS)) return 0;
    }
    return 1;
}

/* A merged token of t[a, b) (misaki merge_tokens without phonemes). text into buf. */
static void merge(const tk *t, size_t a, size_t b, tk *m, char *buf, size_t cap)
{
    buf[0] = 0;
    int best = -1;
    size_t bi = a;
    const char *cur = NULL;
    double st = NONE;
    int nst = 0;
    for (size_t i = a; i < b; i++) {
        append(buf, cap, t[i].text);
        int sc = 0;
        for (const char *p = t[i].text; *p; p++) sc += (*p >= 'A' && *p <= 'Z') ? 2 : 1;
        if (sc > best) {
            best = sc;
            bi = i;
        }
        if (t[i].currency && (!cur || strcmp(t[i].currency, cur) > 0)) cur = t[i].currency;
        if (!is_none(t[i].stress)) {
            if (nst == 0 || t[i].stress != st) nst++;
            st = t[i].stress;
        }
    }
    memset(m, 0, sizeof *m);
    m->text = buf;
    m->tag = t[bi].tag;
    m->ws = t[b - 1].ws;
    m->is_head = t[a].is_head;
    m->prespace = t[a].prespace;
    m->currency = cur;
    m->stress = nst == 1 ? st : NONE;
}

/* Lexicon.__call__ */
static int lexicon_call(const kg2p *g, const tk *t, const ctx *c, char *out, int *rating)
{
    char word[WMAX];
    const char *src = t->alias ? t->alias : t->text;
    if (!put(word, src)) return 0;
    replace_all(word, sizeof word, "‘", "'");
    replace_all(word, sizeof word, "’", "'");
    double stress = is_lowerword(word) ? NONE : is_upperword(word) ? 2 : 0.5;
    if (get_word(g, word, t->tag, stress, c, out, rating)) {
        if (t->currency) {
            const char *unit = currency_unit(t->currency, 0);
            char pl[32], ps[WMAX];
            int r;
            snprintf(pl, sizeof pl, "%ss", unit);
            if (stem_s(g, pl, NULL, NONE, NULL, ps, &r)) {
                if (append(out, WMAX, " ") || append(out, WMAX, ps)) return 0;
            }
        }
        apply_stress(out, WMAX, t->stress);
        return 1;
    }
    if (is_number(word, t->is_head)) {
        if (!get_number(g, word, t->currency, t->is_head, out, rating)) return 0;
        apply_stress(out, WMAX, t->stress);
        return 1;
    }
    return 0;
}

static int fallback(const kg2p *g, const char *text, char *out)
{
    if (!g->fallback) return 0;
    /* nothing speakable: no letter and no digit */
    int speak = 0;
    size_t n = strlen(text);
    for (size_t i = 0; i < n;) {
        uint32_t c;
        i += (size_t)cp_at(text + i, n - i, &c);
        speak |= is_letter(c) || is_digitc(c);
    }
    if (!speak) return 0;
    out[0] = 0;
    return g->fallback(g->fallback_user, text, g->british, out, WMAX) == 0;
}

static void token_context(ctx *c, const char *ps, const tk *t)
{
    if (ps && *ps) {
        size_t n = strlen(ps);
        for (size_t i = 0; i < n;) {
            uint32_t x;
            i += (size_t)cp_at(ps + i, n - i, &x);
            if (in_set(x, VOWELS) || in_set(x, CONSONANTS) || in_set(x, NON_QUOTE_PUNCTS)) {
                c->future_vowel = in_set(x, NON_QUOTE_PUNCTS) ? -1 : in_set(x, VOWELS);
                break;
            }
        }
    }
    c->future_to = !strcmp(t->text, "to") || !strcmp(t->text, "To") ||
                   (!strcmp(t->text, "TO") && (!strcmp(t->tag, "TO") || !strcmp(t->tag, "IN")));
}

static void resolve_tokens(arena *ar, tk *t, size_t n)
{
    char text[WMAX * 2] = "";
    for (size_t i = 0; i < n; i++) append(text, sizeof text, t[i].text);
    int kinds = 0;
    int prespace = strchr(text, ' ') || strchr(text, '/');
    {
        size_t L = strlen(text);
        for (size_t i = 0; i < L;) {
            uint32_t c;
            i += (size_t)cp_at(text + i, L - i, &c);
            if (in_set(c, SUBTOKEN_JUNKS)) continue;
            kinds |= is_letter(c) ? 1 : is_digitc(c) ? 2 : 4;
        }
        if (kinds != 0 && kinds != 1 && kinds != 2 && kinds != 4) prespace = 1;
    }
    for (size_t i = 0; i < n; i++) {
        if (!t[i].ps) {
            if (i == n - 1 && kg2p_cplen(t[i].text) == 1 && has_any(t[i].text, NON_QUOTE_PUNCTS)) {
                set_ps(ar, &t[i], t[i].text);
                t[i].rating = 3;
            } else if (all_junk(t[i].text)) {
                set_ps(ar, &t[i], "");
                t[i].rating = 3;
            }
        } else if (i > 0) {
            t[i].prespace = prespace;
        }
    }
    if (prespace) return;
    typedef struct { int prim, w; size_t i; } ix;
    ix idx[256];
    int m = 0, sumb = 0;
    for (size_t i = 0; i < n && m < 256; i++) {
        if (!t[i].ps || !*t[i].ps) continue;
        idx[m].prim = strstr(t[i].ps, PRIMARY) != NULL;
        idx[m].w = stress_weight(t[i].ps);
        idx[m].i = i;
        sumb += idx[m].prim;
        m++;
    }
    char buf[WMAX];
    if (m == 2 && kg2p_cplen(t[idx[0].i].text) == 1) {
        size_t i = idx[1].i;
        if (put(buf, t[i].ps)) {
            apply_stress(buf, sizeof buf, -0.5);
            set_ps(ar, &t[i], buf);
        }
        return;
    }
    if (m < 2 || sumb <= (m + 1) / 2) return;
    /* sorted(indices)[:m//2]: by (prim, weight, i) */
    for (int i = 1; i < m; i++) {
        ix v = idx[i];
        int k = i - 1;
        while (k >= 0 && (idx[k].prim > v.prim || (idx[k].prim == v.prim && (idx[k].w > v.w ||
                                                                            (idx[k].w == v.w && idx[k].i > v.i))))) {
            idx[k + 1] = idx[k];
            k--;
        }
        idx[k + 1] = v;
    }
    for (int k = 0; k < m / 2; k++) {
        size_t i = idx[k].i;
        if (put(buf, t[i].ps)) {
            apply_stress(buf, sizeof buf, -0.5);
            set_ps(ar, &t[i], buf);
        }
    }
}

static int g2p_words(const kg2p *g, tokv *v, wordr *w, size_t nw)
{
    ctx c = {-1, 0};
    char ps[WMAX], mtext[WMAX * 2];
    for (size_t wi = nw; wi-- > 0;) {
        tk *t = v->t + w[wi].a;
        size_t n = w[wi].n;
        if (n == 1) {
            int r = 0;
            if (!t->ps) {
                if (lexicon_call(g, t, &c, ps, &r)) {
                    if (set_ps(v->ar, t, ps)) return ERR_NOMEM;
                    t->rating = r;
                }
            }
            if (!t->ps && fallback(g, t->text, ps)) {
                if (set_ps(v->ar, t, ps)) return ERR_NOMEM;
                t->rating = 2;
            }
            token_context(&c, t->ps, t);
            continue;
        }
        size_t left = 0, right = n;
        int should_fallback = 0;
        while (left < right) {
            int has = 0;
            for (size_t k = left; k < right; k++) has |= t[k].alias || t[k].ps;
            int found = 0, r = 0;
            tk m;
            if (!has) {
                merge(t, left, right, &m, mtext, sizeof mtext);
                found = lexicon_call(g, &m, &c, ps, &r);
            }
            if (found) {
                if (set_ps(v->ar, &t[left], ps)) return ERR_NOMEM;
                t[left].rating = r;
                for (size_t k = left + 1; k < right; k++) {
                    if (set_ps(v->ar, &t[k], "")) return ERR_NOMEM;
                    t[k].rating = r;
                }
                token_context(&c, ps, &m);
                right = left;
                left = 0;
            } else if (left + 1 < right) {
                left++;
            } else {
                right--;
                tk *x = &t[right];
                if (!x->ps) {
                    if (all_junk(x->text)) {
                        if (set_ps(v->ar, x, "")) return ERR_NOMEM;
                        x->rating = 3;
                    } else if (g->fallback) {
                        should_fallback = 1;
                        break;
                    }
                }
                left = 0;
            }
        }
        if (should_fallback) {
            tk m;
            merge(t, 0, n, &m, mtext, sizeof mtext);
            if (!fallback(g, m.text, ps)) ps[0] = 0;
            if (set_ps(v->ar, &t[0], ps)) return ERR_NOMEM;
            t[0].rating = 2;
            for (size_t k = 1; k < n; k++)
                if (set_ps(v->ar, &t[k], "")) return ERR_NOMEM;
        } else {
            resolve_tokens(v->ar, t, n);
        }
    }
    return 0;
}

/* Groups tokens into words (misaki retokenize's list building). */
static size_t group_words(tokv *v, wordr *w)
{
    size_t nw = 0;
    int open = 0; /* last word is a list still accepting tokens */
    for (size_t i = 0; i < v->n; i++) {
        tk *t = &v->t[i];
        if (t->alias || t->ps) {
            w[nw].a = i;
            w[nw++].n = 1;
            open = 0;
        } else if (open && !v->t[i - 1].ws) {
            t->is_head = 0;
            w[nw - 1].n++;
            open = !t->ws;
        } else {
            w[nw].a = i;
            w[nw++].n = 1;
            open = !t->ws;
        }
    }
    return nw;
}

/* misaki G2P.preprocess: Markdown links [text](feature) keep only their text; a feature
 * "/phonemes/" sets the text's phonemes, an integer or +-0.5 its stress; anything else (a
 * URL, "#flags#") is dropped. Spans are byte ranges of the rewritten text. */
typedef struct span {
    size_t a, b;
    const char *ps; /* phoneme override (into the rewritten buffer's tail), or NULL */
    double stress;  /* NONE = none */
} span;

#define KG2P_MAX_SPANS 256

static size_t preprocess(const char *in, size_t L, char *out, span *sp, size_t *nsp, char *psbuf, size_t pscap)
{
    size_t o = 0, pso = 0;
    *nsp = 0;
    for (size_t i = 0; i < L;) {
        if (in[i] == '[') {
            size_t j = i + 1;
            while (j < L && in[j] != ']') j++;
            if (j < L && j > i + 1 && j + 1 < L && in[j + 1] == '(') {
                size_t k = j + 2;
                while (k < L && in[k] != ')') k++;
                if (k < L) {
                    const char *f = in + j + 2;
                    size_t fl = k - (j + 2);
                    span s = {.a = o, .ps = NULL, .stress = NONE};
                    memcpy(out + o, in + i + 1, j - i - 1);
                    o += j - i - 1;
                    s.b = o;
                    size_t d0 = fl && (f[0] == '-' || f[0] == '+') ? 1 : 0, dd = d0;
                    while (dd < fl && f[dd] >= '0' && f[dd] <= '9') dd++;
                    if (fl > d0 && dd == fl) {
                        s.stress = strtod(f[0] == '+' ? f + 1 : f, NULL);
                    } else if ((fl == 3 && !memcmp(f, "0.5", 3)) || (fl == 4 && !memcmp(f, "+0.5", 4))) {
                        s.stress = 0.5;
                    } else if (fl == 4 && !memcmp(f, "-0.5", 4)) {
                        s.stress = -0.5;
                    } else if (fl > 1 && f[0] == '/' && f[fl - 1] == '/') {
                        size_t pa = 1, pb = fl;
                        while (pb > pa && f[pb - 1] == '/') pb--;
                        if (pso + (pb - pa) + 1 <= pscap) {
                            memcpy(psbuf + pso, f + pa, pb - pa);
                            psbuf[pso + (pb - pa)] = 0;
                            s.ps = psbuf + pso;
                            pso += pb - pa + 1;
                        }
                    }
                    if ((s.ps || !is_none(s.stress)) && *nsp < KG2P_MAX_SPANS) sp[(*nsp)++] = s;
                    i = k + 1;
                    continue;
                }
            }
        }
        out[o++] = in[i++];
    }
    out[o] = 0;
    return o;
}

static int apply_spans(tokv *v, const span *sp, size_t nsp)
{
    for (size_t k = 0; k < nsp; k++) {
        int first = 1;
        for (size_t i = 0; i < v->n; i++) {
            tk *t = &v->t[i];
            if (t->off < sp[k].a || t->off >= sp[k].b) continue;
            if (sp[k].ps) {
                if (set_ps(v->ar, t, first ? sp[k].ps : "")) return ERR_NOMEM;
                t->rating = 5;
                t->is_head = first;
                first = 0;
            } else {
                t->stress = sp[k].stress;
            }
        }
    }
    return 0;
}

int kg2p_run(const kg2p *g, const char *text0, kg2p_doc *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    size_t L = strlen(text0);
    if (L > KG2P_MAX_TEXT) return err_set(err, errlen, ERR_TOOBIG, "text over %u bytes", KG2P_MAX_TEXT);
    if (utf8_validate(text0, L, NULL, NULL)) return err_set(err, errlen, ERR_INVAL, "text is not valid UTF-8");
    arena ar = {0};
    tokv v = {.ar = &ar};
    int rc = 0;
    wordr *w = NULL;
    span *sp = malloc(KG2P_MAX_SPANS * sizeof *sp);
    char *text = malloc(L + 1), *psbuf = malloc(L + 1);
    size_t nsp = 0;
    if (!sp || !text || !psbuf) {
        rc = ERR_NOMEM;
        goto done;
    }
    L = preprocess(text0, L, text, sp, &nsp, psbuf, L + 1);
    v.base = text;
    /* chunks between whitespace */
    for (size_t i = 0; i < L;) {
        uint32_t c;
        int k = cp_at(text + i, L - i, &c);
        if (is_space_cp(c)) {
            i += (size_t)k;
            continue;
        }
        size_t j = i;
        while (j < L) {
            k = cp_at(text + j, L - j, &c);
            if (is_space_cp(c)) break;
            j += (size_t)k;
        }
        if ((rc = tokenize_chunk(g, &v, text + i, j - i, j < L))) goto done;
        i = j;
    }
    if ((rc = apply_spans(&v, sp, nsp))) goto done;
    guess_tags(&v);
    w = malloc((v.n ? v.n : 1) * sizeof *w);
    if (!w) {
        rc = ERR_NOMEM;
        goto done;
    }
    size_t nw = group_words(&v, w);
    if ((rc = g2p_words(g, &v, w, nw))) goto done;
    /* merge lists into output tokens (misaki merge_tokens with unk='') */
    out->tok = calloc(nw ? nw : 1, sizeof *out->tok);
    if (!out->tok) {
        rc = ERR_NOMEM;
        goto done;
    }
    for (size_t wi = 0; wi < nw; wi++) {
        tk *t = v.t + w[wi].a;
        size_t n = w[wi].n;
        char ps[WMAX * 4] = "", tx[WMAX * 4] = "";
        for (size_t k = 0; k < n; k++) {
            size_t pl = strlen(ps);
            if (t[k].prespace && pl && ps[pl - 1] != ' ' && t[k].ps && *t[k].ps) append(ps, sizeof ps, " ");
            if (t[k].ps) append(ps, sizeof ps, t[k].ps);
            append(tx, sizeof tx, t[k].text);
        }
        replace_all(ps, sizeof ps, "ɾ", "T");
        replace_all(ps, sizeof ps, "ʔ", "t");
        kg2p_tok *o = &out->tok[out->n++];
        o->text = strdup(tx);
        o->ps = strdup(ps);
        o->ws = t[n - 1].ws;
        if (!o->text || !o->ps) {
            rc = ERR_NOMEM;
            goto done;
        }
    }
done:
    free(w);
    free(v.t);
    free(sp);
    free(text);
    free(psbuf);
    arena_free(&ar);
    if (rc) {
        kg2p_doc_free(out);
        return err_set(err, errlen, rc, "G2P failed (%s)", rc == ERR_NOMEM ? "out of memory" : "error");
    }
    return 0;
}

void kg2p_doc_free(kg2p_doc *d)
{
    if (!d) return;
    for (size_t i = 0; i < d->n; i++) {
        free(d->tok[i].text);
        free(d->tok[i].ps);
    }
    free(d->tok);
    memset(d, 0, sizeof *d);
}

int kg2p_join(const kg2p_doc *d, size_t from, size_t to, char *out, size_t cap, char *err, size_t errlen)
{
    size_t o = 0;
    if (!cap) return err_set(err, errlen, ERR_TOOBIG, "no room");
    out[0] = 0;
    for (size_t i = from; i < to && i < d->n; i++) {
        size_t pl = strlen(d->tok[i].ps);
        if (o + pl + 2 > cap) return err_set(err, errlen, ERR_TOOBIG, "phonemes over %zu bytes", cap);
        memcpy(out + o, d->tok[i].ps, pl);
        o += pl;
        if (d->tok[i].ws) out[o++] = ' ';
        out[o] = 0;
    }
    /* strip */
    while (o && (out[o - 1] == ' ')) out[--o] = 0;
    size_t s = 0;
    while (out[s] == ' ') s++;
    if (s) memmove(out, out + s, o - s + 1);
    return 0;
}

/* Code points of the stripped join of [a, b). */
static size_t join_len(const kg2p_doc *d, size_t a, size_t b)
{
    size_t n = 0, lead = 1, pend = 0;
    for (size_t i = a; i < b; i++) {
        size_t k = kg2p_cplen(d->tok[i].ps);
        if (k) {
            n += pend + k;
            pend = 0;
            lead = 0;
        }
        if (d->tok[i].ws && !lead) pend++;
    }
    return n;
}

static int one_of(const char *ps, const char *set)
{
    if (kg2p_cplen(ps) != 1) return 0;
    uint32_t c;
    cp_at(ps, strlen(ps), &c);
    return in_set(c, set);
}

int kg2p_chunk(const kg2p_doc *d, size_t budget, size_t *pos, size_t *end)
{
    if (!budget || budget > KG2P_MAX_PHONEMES) budget = KG2P_MAX_PHONEMES;
    size_t start = *pos;
    if (start >= d->n) return 0;
    size_t pcount = 0;
    for (size_t i = start; i < d->n; i++) {
        const kg2p_tok *t = &d->tok[i];
        /* next_ps = ps + (" " if ws); next_pcount = pcount + len(next_ps.rstrip()) */
        size_t nps = kg2p_cplen(t->ps) + (t->ws ? 1 : 0);
        size_t next_pcount = pcount + kg2p_cplen(t->ps);
        if (next_pcount > budget && i > start) {
            static const char *const wf[] = {"!.?…", ":;", ",—"};
            size_t z = i - start;
            for (int k = 0; k < 3; k++) {
                size_t zz = (size_t)-1;
                for (size_t j = i; j-- > start;)
                    if (one_of(d->tok[j].ps, wf[k])) {
                        zz = j - start;
                        break;
                    }
                if (zz == (size_t)-1) continue;
                zz++;
                if (start + zz < i && one_of(d->tok[start + zz].ps, ")”")) zz++;
                if (next_pcount - join_len(d, start, start + zz) <= budget) {
                    z = zz;
                    break;
                }
            }
            *end = start + z;
            *pos = *end;
            return 1;
        }
        pcount += nps;
    }
    *end = d->n;
    *pos = d->n;
    return 1;
}

int kg2p_first_clause(const kg2p_doc *d, size_t minp, size_t *pos, size_t *end)
{
    size_t start = *pos, pcount = 0;
    if (start >= d->n) return 0;
    for (size_t i = start; i < d->n; i++) {
        const kg2p_tok *t = &d->tok[i];
        pcount += kg2p_cplen(t->ps);
        if (pcount > KG2P_MAX_PHONEMES) break;
        if (pcount >= minp && i + 1 < d->n && one_of(t->ps, "!.?…:;,—")) {
            size_t e = i + 1;
            if (e < d->n && one_of(d->tok[e].ps, ")”")) e++;
            *end = e;
            *pos = e;
            return 1;
        }
        pcount += t->ws ? 1 : 0;
    }
    return kg2p_chunk(d, 0, pos, end);
}

/* ---- vocab / ids ------------------------------------------------------------------- */

int kg2p_vocab_load(kg2p_vocab *v, const char *path, char *err, size_t errlen)
{
    memset(v, 0, sizeof *v);
    FILE *f = fopen(path, "rb");
    if (!f) return err_set(err, errlen, ERR_NOTFOUND, "cannot open %s", path);
    char *buf = malloc(1 << 20);
    size_t n = buf ? fread(buf, 1, (1 << 20) - 1, f) : 0;
    fclose(f);
    if (!buf) return err_set(err, errlen, ERR_NOMEM, "out of memory");
    buf[n] = 0;
    cJSON *j = cJSON_Parse(buf);
    free(buf);
    if (!j) return err_set(err, errlen, ERR_FORMAT, "%s: not JSON", path);
    const cJSON *voc = cJSON_GetObjectItemCaseSensitive(j, "vocab");
    if (!cJSON_IsObject(voc)) voc = j;
    int rc = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, voc)
    {
        if (!cJSON_IsNumber(it) || !it->string) continue;
        uint32_t cp;
        size_t sl = strlen(it->string);
        if (!sl || utf8_decode(it->string, sl, &cp) != (int)sl) continue;
        if (v->n >= KG2P_VOCAB_MAX || it->valueint < 0 || it->valueint > 32767) {
            rc = err_set(err, errlen, ERR_FORMAT, "%s: vocab too large", path);
            break;
        }
        int k = v->n++;
        while (k > 0 && v->cp[k - 1] > cp) {
            v->cp[k] = v->cp[k - 1];
            v->id[k] = v->id[k - 1];
            k--;
        }
        v->cp[k] = cp;
        v->id[k] = (int16_t)it->valueint;
    }
    cJSON_Delete(j);
    if (!rc && v->n == 0) rc = err_set(err, errlen, ERR_FORMAT, "%s: no vocab", path);
    return rc;
}

int kg2p_ids(const kg2p_vocab *v, const char *ps, int64_t *ids, size_t cap, size_t *n, char *err, size_t errlen)
{
    size_t L = strlen(ps), o = 0;
    for (size_t i = 0; i < L;) {
        uint32_t c;
        i += (size_t)cp_at(ps + i, L - i, &c);
        int lo = 0, hi = v->n - 1, id = -1;
        while (lo <= hi) {
            int mid = (lo + hi) / 2;
            if (v->cp[mid] == c) {
                id = v->id[mid];
                break;
            }
            if (v->cp[mid] < c)
                lo = mid + 1;
            else
                hi = mid - 1;
        }
        if (id < 0) continue;
        if (o >= cap) return err_set(err, errlen, ERR_TOOBIG, "more than %zu phoneme ids", cap);
        ids[o++] = id;
    }
    *n = o;
    return 0;
}

/* ---- lexicon loading ---------------------------------------------------------------- */

static char *slurp(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long sz = ftell(f);
    fseek(f, 0, SEEK_SET);
    if (sz < 0 || sz > (64l << 20)) {
        fclose(f);
        return NULL;
    }
    char *b = malloc((size_t)sz + 1);
    if (b && fread(b, 1, (size_t)sz, f) != (size_t)sz) {
        free(b);
        b = NULL;
    }
    fclose(f);
    if (b) b[sz] = 0;
    *n = (size_t)sz;
    return b;
}

static int load_lex(kg2p *g, lextab *t, const char *path, char *err, size_t errlen)
{
    size_t n;
    char *buf = slurp(path, &n);
    if (!buf) return err_set(err, errlen, ERR_NOTFOUND, "cannot read lexicon %s", path);
    cJSON *j = cJSON_Parse(buf);
    free(buf);
    if (!cJSON_IsObject(j)) {
        cJSON_Delete(j);
        return err_set(err, errlen, ERR_FORMAT, "lexicon %s is not a JSON object", path);
    }
    size_t cnt = (size_t)cJSON_GetArraySize(j);
    size_t cap = 16;
    while (cap < cnt * 4) cap <<= 1;
    t->e = calloc(cap, sizeof *t->e);
    t->cap = cap;
    if (!t->e) {
        cJSON_Delete(j);
        return err_set(err, errlen, ERR_NOMEM, "out of memory");
    }
    const cJSON *it;
    int rc = 0;
    cJSON_ArrayForEach(it, j)
    {
        lexval *v = arena_alloc(&g->ar, sizeof *v);
        const char *key = it->string ? arena_str(&g->ar, it->string) : NULL;
        if (!v || !key) {
            rc = ERR_NOMEM;
            break;
        }
        memset(v, 0, sizeof *v);
        if (cJSON_IsString(it)) {
            v->ps = arena_str(&g->ar, it->valuestring);
            if (!v->ps) rc = ERR_NOMEM;
        } else if (cJSON_IsObject(it)) {
            int nd = cJSON_GetArraySize(it);
            lexpair *d = arena_alloc(&g->ar, (size_t)(nd ? nd : 1) * sizeof *d);
            if (!d) {
                rc = ERR_NOMEM;
                break;
            }
            const cJSON *p;
            int k = 0;
            cJSON_ArrayForEach(p, it)
            {
                d[k].tag = arena_str(&g->ar, p->string ? p->string : "");
                d[k].ps = cJSON_IsString(p) ? arena_str(&g->ar, p->valuestring) : NULL;
                k++;
            }
            v->dict = d;
            v->nd = k;
        } else {
            continue;
        }
        if (rc) break;
        tab_put(t, key, v, 1);
    }
    cJSON_Delete(j);
    if (rc) return err_set(err, errlen, rc, "out of memory loading %s", path);
    /* grow_dictionary: lower-case keys also as Capitalised, Capitalised also lower-case;
     * the file's own entries win. Collect first (the table changes while we insert). */
    size_t nadd = 0;
    lexent *add = malloc(t->n * sizeof *add);
    if (!add) return err_set(err, errlen, ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < t->cap; i++) {
        const char *k = t->e[i].key;
        if (!k || strlen(k) < 2 || strlen(k) >= WMAX) continue;
        char a[WMAX], b[WMAX];
        s_lower(a, k);
        if (!strcmp(a, k)) {
            s_capitalize(b, k);
            if (strcmp(b, k)) {
                add[nadd].key = arena_str(&g->ar, b);
                add[nadd++].v = t->e[i].v;
            }
        } else {
            s_capitalize(b, a);
            if (!strcmp(b, k)) {
                add[nadd].key = arena_str(&g->ar, a);
                add[nadd++].v = t->e[i].v;
            }
        }
    }
    for (size_t i = 0; i < nadd; i++)
        if (add[i].key) tab_put(t, add[i].key, add[i].v, 0);
    free(add);
    return 0;
}

int kg2p_open(kg2p **out, const kg2p_options *o, char *err, size_t errlen)
{
    *out = NULL;
    if (!o || !o->gold_path) return err_set(err, errlen, ERR_INVAL, "no lexicon path");
    kg2p *g = calloc(1, sizeof *g);
    if (!g) return err_set(err, errlen, ERR_NOMEM, "out of memory");
    g->british = o->british;
    g->fallback = o->fallback;
    g->fallback_user = o->fallback_user;
    int rc = load_lex(g, &g->gold, o->gold_path, err, errlen);
    if (!rc && o->silver_path) rc = load_lex(g, &g->silver, o->silver_path, err, errlen);
    if (rc) {
        kg2p_free(g);
        return rc;
    }
    *out = g;
    return 0;
}

void kg2p_free(kg2p *g)
{
    if (!g) return;
    free(g->gold.e);
    free(g->silver.e);
    arena_free(&g->ar);
    free(g);
}

size_t kg2p_lexicon_size(const kg2p *g) { return g->gold.n + g->silver.n; }

/* ---- espeak fallback ----------------------------------------------------------------- */

int kg2p_map_espeak(const char *ipa, int british, char *out, size_t cap)
{
    char s[WMAX];
    if (!put(s, ipa) || cap < 1) return -1;
    /* E2M, longest first (stable for equal lengths, as misaki's sorted()) */
    static const char *const e2m[][2] = {
        {"ʔˌn\xcc\xa9", "ʔn"}, {"ʔn\xcc\xa9", "ʔn"}, {"a^ɪ", "I"}, {"a^ʊ", "W"}, {"d^ʒ", "ʤ"},
        {"e^ɪ", "A"},          {"t^ʃ", "ʧ"},         {"ɔ^ɪ", "Y"}, {"ə^l", "ᵊl"}, {"ʲo", "jo"},
        {"ʲə", "jə"},          {"e", "A"},           {"ʲ", ""},    {"ɚ", "əɹ"},   {"r", "ɹ"},
        {"x", "k"},            {"ç", "k"},           {"ɐ", "ə"},   {"ɬ", "l"},    {"\xcc\x83", ""},
    };
    int rc = 0;
    for (size_t i = 0; i < sizeof e2m / sizeof *e2m; i++) rc |= replace_all(s, sizeof s, e2m[i][0], e2m[i][1]);
    /* (\S)\u0329 -> ᵊ\1, then drop stray U+0329 */
    {
        char t[WMAX];
        size_t o = 0, n = strlen(s);
        for (size_t i = 0; i < n;) {
            uint32_t c;
            int k = cp_at(s + i, n - i, &c);
            uint32_t c2 = 0;
            int k2 = i + (size_t)k < n ? cp_at(s + i + k, n - i - (size_t)k, &c2) : 0;
            if (c != ' ' && c != 0x329 && k2 && c2 == 0x329) {
                if (o + 3 + (size_t)k + 1 > sizeof t) return -1;
                memcpy(t + o, "ᵊ", 3);
                o += 3;
                memcpy(t + o, s + i, (size_t)k);
                o += (size_t)k;
                i += (size_t)k + (size_t)k2;
                continue;
            }
            if (c == 0x329) {
                i += (size_t)k;
                continue;
            }
            if (o + (size_t)k + 1 > sizeof t) return -1;
            memcpy(t + o, s + i, (size_t)k);
            o += (size_t)k;
            i += (size_t)k;
        }
        t[o] = 0;
        memcpy(s, t, o + 1);
    }
    if (british) {
        rc |= replace_all(s, sizeof s, "e^ə", "ɛː");
        rc |= replace_all(s, sizeof s, "iə", "ɪə");
        rc |= replace_all(s, sizeof s, "ə^ʊ", "Q");
    } else {
        rc |= replace_all(s, sizeof s, "o^ʊ", "O");
        rc |= replace_all(s, sizeof s, "ɜːɹ", "ɜɹ");
        rc |= replace_all(s, sizeof s, "ɜː", "ɜɹ");
        rc |= replace_all(s, sizeof s, "ɪə", "iə");
        rc |= replace_all(s, sizeof s, "ː", "");
    }
    rc |= replace_all(s, sizeof s, "o", "ɔ");
    rc |= replace_all(s, sizeof s, "ɾ", "T");
    rc |= replace_all(s, sizeof s, "ʔ", "t");
    rc |= replace_all(s, sizeof s, "^", "");
    if (rc || strlen(s) + 1 > cap) return -1;
    memcpy(out, s, strlen(s) + 1);
    return 0;
}

static pthread_mutex_t esp_mu = PTHREAD_MUTEX_INITIALIZER;
static int esp_ready; /* guarded by esp_mu */

int kg2p_espeak_init(int already_initialised, const char *data_path, char *err, size_t errlen)
{
    pthread_mutex_lock(&esp_mu);
    int rc = 0;
    if (!esp_ready) {
        if (!already_initialised &&
            espeak_Initialize(AUDIO_OUTPUT_SYNCHRONOUS, 0, data_path, espeakINITIALIZE_DONT_EXIT) <= 0)
            rc = err_set(err, errlen, ERR_IO, "espeak-ng failed to initialise");
        else
            esp_ready = 1;
    }
    pthread_mutex_unlock(&esp_mu);
    return rc;
}

/* The voice identifier espeak chose for each language we asked for (guarded by esp_mu):
 * selecting a voice costs a file load and leaks ~1 KiB inside libespeak-ng 1.51, so it is
 * done only when the current voice is not already the one for `lang`. */
static struct {
    char lang[16];
    char ident[128];
} esp_sel[8];
static int esp_nsel;

/* espeak-ng IPA (tie '^') of text in language `lang` into ipa[cap], clauses joined by spaces.
 * Under the module mutex and the hooks' lock. Without a hooks lock (no coordination with the
 * espeak engine) the voice found selected is selected again afterwards, so the engine's own
 * cached voice stays right; with it, the engine re-selects its voice itself. */
static int esp_ipa(const kg2p_espeak_hooks *h, const char *lang, const char *text, char *ipa, size_t cap)
{
    int rc = -1;
    ipa[0] = 0;
    pthread_mutex_lock(&esp_mu);
    if (h && h->lock) h->lock(h->ud);
    if (esp_ready) {
        char prev[128] = "";
        espeak_VOICE *cur = espeak_GetCurrentVoice();
        if (cur && cur->identifier) snprintf(prev, sizeof prev, "%s", cur->identifier);
        int k = 0;
        while (k < esp_nsel && strcmp(esp_sel[k].lang, lang)) k++;
        int ok = k < esp_nsel && *prev && !strcmp(esp_sel[k].ident, prev);
        int restore = 0;
        if (!ok) {
            espeak_VOICE want;
            memset(&want, 0, sizeof want);
            want.languages = lang; /* by properties: SetVoiceByName("fr-fr") crashes espeak-ng 1.51 */
            ok = espeak_SetVoiceByProperties(&want) == EE_OK;
            cur = ok ? espeak_GetCurrentVoice() : NULL;
            if (cur && cur->identifier && strlen(lang) < sizeof esp_sel[0].lang) {
                if (k == esp_nsel && esp_nsel < 8) esp_nsel++;
                if (k < esp_nsel) {
                    snprintf(esp_sel[k].lang, sizeof esp_sel[k].lang, "%s", lang);
                    snprintf(esp_sel[k].ident, sizeof esp_sel[k].ident, "%s", cur->identifier);
                }
            }
            restore = ok && *prev && !(h && h->lock);
        }
        if (ok) {
            const void *p = text;
            rc = 0;
            while (p) {
                const char *ph = espeak_TextToPhonemes(&p, espeakCHARS_UTF8, 0x02 | 0x80 | ('^' << 8));
                if (!ph) break;
                if (*ipa && *ph && append(ipa, cap, " ")) rc = -1;
                if (append(ipa, cap, ph)) rc = -1;
            }
        }
        if (restore) espeak_SetVoiceByName(prev);
    }
    if (h && h->unlock) h->unlock(h->ud);
    pthread_mutex_unlock(&esp_mu);
    return rc;
}

static void strip_spaces(char *s)
{
    size_t a = 0, n = strlen(s);
    while (s[a] == ' ') a++;
    while (n > a && s[n - 1] == ' ') n--;
    memmove(s, s + a, n - a);
    s[n - a] = 0;
}

int kg2p_espeak_fallback(void *user, const char *word, int british, char *out, size_t cap)
{
    char ipa[WMAX];
    if (esp_ipa(user, british ? "en-gb" : "en-us", word, ipa, sizeof ipa)) return -1;
    strip_spaces(ipa);
    if (!*ipa) return -1;
    return kg2p_map_espeak(ipa, british, out, cap);
}

/* phonemizer's default punctuation marks (kept in the output, as preserve_punctuation) */
static const char PHZ_MARKS[] = ";:,.!?¡¿—…\"«»“”(){}[]";

int kg2p_espeak_g2p(const kg2p_espeak_hooks *h, const char *lang, const char *text, char *out, size_t cap)
{
    if (!cap) return -1;
    out[0] = 0;
    size_t L = strlen(text);
    if (L > KG2P_MAX_TEXT) return -1;
    /* misaki EspeakG2P: angle quotes -> curly, parentheses -> angles (restored at the end) */
    char *t = malloc(L * 2 + 1), *ps = malloc(cap), *piece = malloc(L + 1), *ipa = malloc(WMAX * 4);
    int rc = 0;
    if (!t || !ps || !piece || !ipa) {
        rc = -1;
        goto done;
    }
    strcpy(t, text);
    replace_all_big(t, L * 2 + 1, "«", "“");
    replace_all_big(t, L * 2 + 1, "»", "”");
    replace_all_big(t, L * 2 + 1, "(", "«");
    replace_all_big(t, L * 2 + 1, ")", "»");
    ps[0] = 0;
    size_t n = strlen(t);
    for (size_t i = 0; i < n && !rc;) {
        uint32_t c;
        int k = cp_at(t + i, n - i, &c);
        if (in_set(c, PHZ_MARKS)) {
            /* a mark: kept; a space before it only if the text had one and we are mid-line */
            size_t pl = strlen(ps);
            if (i > 0 && t[i - 1] == ' ' && pl && ps[pl - 1] != ' ' && append(ps, cap, " ")) rc = -1;
            pl = strlen(ps);
            if (!rc && (pl + (size_t)k + 1 > cap)) rc = -1;
            if (!rc) {
                memcpy(ps + pl, t + i, (size_t)k);
                ps[pl + (size_t)k] = 0;
            }
            i += (size_t)k;
            if (!rc && i < n && t[i] == ' ' && append(ps, cap, " ")) rc = -1;
            continue;
        }
        /* a run of text up to the next mark */
        size_t j = i;
        while (j < n) {
            int kj = cp_at(t + j, n - j, &c);
            if (in_set(c, PHZ_MARKS)) break;
            j += (size_t)kj;
        }
        memcpy(piece, t + i, j - i);
        piece[j - i] = 0;
        i = j;
        int speak = 0;
        for (const char *q = piece; *q; q++) speak |= *q != ' ';
        if (!speak) continue;
        if (esp_ipa(h, lang, piece, ipa, WMAX * 4)) {
            rc = -1;
            break;
        }
        strip_spaces(ipa);
        size_t pl = strlen(ps);
        if (pl && ps[pl - 1] != ' ' && piece[0] == ' ' && append(ps, cap, " ")) rc = -1;
        if (!rc && append(ps, cap, ipa)) rc = -1;
    }
    if (rc) goto done;
    /* phonemizer language_switch='remove-flags': "(en)" markers */
    {
        size_t w = 0;
        for (size_t r = 0; ps[r];) {
            if (ps[r] == '(') {
                size_t e = r + 1;
                while ((ps[e] >= 'a' && ps[e] <= 'z') || ps[e] == '-') e++;
                if (ps[e] == ')' && e > r + 1) {
                    r = e + 1;
                    continue;
                }
            }
            ps[w++] = ps[r++];
        }
        ps[w] = 0;
    }
    static const char *const e2m[][2] = {
        {"a^ɪ", "I"}, {"a^ʊ", "W"}, {"d^z", "ʣ"}, {"d^ʒ", "ʤ"}, {"e^ɪ", "A"}, {"o^ʊ", "O"},
        {"s^s", "S"}, {"t^s", "ʦ"}, {"t^ʃ", "ʧ"}, {"ɔ^ɪ", "Y"}, {"ə^ʊ", "Q"},
    };
    /* misaki applies them in sorted() key order: a^ɪ a^ʊ d^z d^ʒ e^ɪ o^ʊ s^s t^s t^ʃ ɔ^ɪ ə^ʊ */
    for (size_t i = 0; i < sizeof e2m / sizeof *e2m && !rc; i++) rc = replace_all_big(ps, cap, e2m[i][0], e2m[i][1]);
    if (!rc) rc = replace_all_big(ps, cap, "^", "");
    if (!rc) rc = replace_all_big(ps, cap, "-", "");
    if (!rc) rc = replace_all_big(ps, cap, "«", "(");
    if (!rc) rc = replace_all_big(ps, cap, "»", ")");
    strip_spaces(ps);
    if (!rc) memcpy(out, ps, strlen(ps) + 1);
done:
    free(t);
    free(ps);
    free(piece);
    free(ipa);
    return rc;
}
