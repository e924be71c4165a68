/* spm.c — SentencePiece unigram model: protobuf reader, normaliser, Viterbi, decoder.
 *
 * Written from the behaviour of google/sentencepiece (normalizer.cc, unigram_model.cc
 * EncodeOptimized, model_interface.cc, sentencepiece_processor.cc) so that ids match the
 * Python library bit for bit, including its float/double mix in the Viterbi scores.
 *
 * Layout of a loaded model:
 *   - pieces[]: string (offset into `strs`), score, type, for every vocabulary entry;
 *   - one byte trie over all piece strings: nodes are numbers, edges live in an
 *     open-addressing hash table keyed by (node << 8 | byte); each node carries the id of
 *     the "normal" piece (NORMAL / USER_DEFINED / UNUSED, what upstream puts in its
 *     Darts trie) and of the "reserved" piece (CONTROL / UNKNOWN / BYTE) ending there;
 *   - the normaliser: flags and the precompiled charsmap (double-array units copied into
 *     an aligned array + the NUL-separated replacement strings).
 * Everything is read-only after load; no global state.
 *
 * Hostile files: every protobuf read is bounds-checked, wire types are checked, unknown
 * fields are skipped without recursion, embedded messages nest at most two levels by
 * construction; total size, piece count and piece length are capped; double-array walks
 * check every index and stop after SPM_DA_MAX_KEY bytes so a cyclic array cannot loop.
 * Where upstream would read out of bounds on a broken file we refuse instead: a charsmap
 * whose trie size overruns the blob fails the load, a replacement offset outside the
 * string block fails the encode (ERR_FORMAT), protobuf groups are refused. Upstream's
 * load-time self test is available as spm_self_test() rather than run on every load.
 */
#include "engine/pocket/spm.h"

#include "core/buf.h"
#include "core/err.h"

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SPM_DA_MAX_KEY 256 /* longest charsmap key looked at (real keys: a few chars) */

static const char k_ws[] = "\xe2\x96\x81"; /* U+2581, the escaped space */
static const char k_fffd[] = "\xef\xbf\xbd";

typedef struct spm_piece {
    uint32_t off; /* into strs */
    uint32_t len;
    float score;
    int type; /* SPM_* */
} spm_piece;

typedef struct spm_norm {
    int present;           /* spec seen / charsmap usable */
    int add_dummy_prefix;  /* proto default true */
    int remove_extra_ws;   /* proto default true */
    int escape_ws;         /* proto default true */
    uint32_t *da;          /* double-array units (host order) or NULL */
    size_t da_n;
    char *repl;            /* replacement strings block, NUL-separated */
    size_t repl_n;
    const uint8_t *cmap;   /* raw charsmap bytes while parsing (borrowed from the file) */
    size_t cmap_n;
} spm_norm;

struct spm_model {
    spm_piece *pieces;
    int n;
    char *strs; /* all piece strings, each NUL-terminated */
    size_t strs_n;

    /* trie */
    uint32_t n_nodes;
    int32_t *node_normal;   /* [n_nodes] piece id or -1 */
    int32_t *node_reserved; /* [n_nodes] piece id or -1 */
    uint64_t *ht_key;       /* [ht_cap] (parent << 8 | byte) + 1, 0 = empty */
    uint32_t *ht_val;       /* [ht_cap] child node */
    size_t ht_cap;          /* power of two */
    int has_uds;            /* any USER_DEFINED piece */

    int unk_id;
    int byte_fallback;
    int treat_ws_as_suffix;
    int model_type;
    float min_score, max_score;
    int32_t byte_id[256];
    char *unk_surface;
    size_t unk_surface_n;

    spm_norm norm, denorm;

    char **selftest;      /* [2 * n_selftest]: input, expected (NUL-terminated copies) */
    size_t *selftest_len; /* [2 * n_selftest] */
    size_t n_selftest;
};

/* ---- protobuf reading ---------------------------------------------------------------- */

typedef struct pb_rd {
    const uint8_t *p, *end;
} pb_rd;

static int pb_varint(pb_rd *r, uint64_t *v)
{
    uint64_t x = 0;
    for (int i = 0; i < 10; i++) {
        if (r->p >= r->end) return ERR_FORMAT;
        uint8_t b = *r->p++;
        x |= (uint64_t)(b & 0x7f) << (7 * i);
        if (!(b & 0x80)) {
            *v = x;
            return 0;
        }
    }
    return ERR_FORMAT;
}

/* Reads a tag; field numbers must be >= 1. */
static int pb_tag(pb_rd *r, uint32_t *field, int *wt)
{
    uint64_t t;
    if (pb_varint(r, &t)) return ERR_FORMAT;
    if ((t >> 3) == 0 || (t >> 3) > 0x1fffffff) return ERR_FORMAT;
    *field = (uint32_t)(t >> 3);
    *wt = (int)(t & 7);
    return 0;
}

static int pb_bytes(pb_rd *r, const uint8_t **p, size_t *n)
{
    uint64_t l;
    if (pb_varint(r, &l)) return ERR_FORMAT;
    if (l > (uint64_t)(r->end - r->p)) return ERR_FORMAT;
    *p = r->p;
    *n = (size_t)l;
    r->p += l;
    return 0;
}

static int pb_fixed32(pb_rd *r, uint32_t *v)
{
    if (r->end - r->p < 4) return ERR_FORMAT;
    *v = (uint32_t)r->p[0] | (uint32_t)r->p[1] << 8 | (uint32_t)r->p[2] << 16 |
         (uint32_t)r->p[3] << 24;
    r->p += 4;
    return 0;
}

/* Skips a field of wire type wt. Groups (3, 4) are refused: no schema here uses them. */
static int pb_skip(pb_rd *r, int wt)
{
    uint64_t v;
    const uint8_t *p;
    size_t n;
    switch (wt) {
    case 0: return pb_varint(r, &v);
    case 1:
        if (r->end - r->p < 8) return ERR_FORMAT;
        r->p += 8;
        return 0;
    case 2: return pb_bytes(r, &p, &n);
    case 5:
        if (r->end - r->p < 4) return ERR_FORMAT;
        r->p += 4;
        return 0;
    default: return ERR_FORMAT;
    }
}

/* ---- loading --------------------------------------------------------------------------- */

typedef struct raw_piece {
    const uint8_t *s;
    size_t n;
    float score;
    int type;
} raw_piece;

typedef struct loader {
    raw_piece *rp;
    size_t n, cap;
    size_t str_bytes;
    int model_type;
    int byte_fallback;
    int treat_ws_as_suffix;
    const uint8_t *unk_surface;
    size_t unk_surface_n;
    int has_unk_surface;
    int has_denorm;
    const uint8_t **st;   /* self-test samples: [2*i] input, [2*i+1] expected */
    size_t *st_len;
    size_t st_n, st_cap;
} loader;

static int parse_piece(loader *L, const uint8_t *p, size_t n, char *err, size_t errlen)
{
    pb_rd r = {p, p + n};
    raw_piece pc = {(const uint8_t *)"", 0, 0.0f, SPM_NORMAL};
    while (r.p < r.end) {
        uint32_t f;
        int wt;
        if (pb_tag(&r, &f, &wt)) return err_set(err, errlen, ERR_FORMAT, "spm: bad piece tag");
        if (f == 1 && wt == 2) {
            if (pb_bytes(&r, &pc.s, &pc.n)) return err_set(err, errlen, ERR_FORMAT, "spm: bad piece string");
        } else if (f == 2 && wt == 5) {
            uint32_t u;
            if (pb_fixed32(&r, &u)) return err_set(err, errlen, ERR_FORMAT, "spm: bad piece score");
            memcpy(&pc.score, &u, 4);
        } else if (f == 3 && wt == 0) {
            uint64_t v;
            if (pb_varint(&r, &v)) return err_set(err, errlen, ERR_FORMAT, "spm: bad piece type");
            int32_t t = (int32_t)(uint32_t)v;
            if (t >= SPM_NORMAL && t <= SPM_BYTE) pc.type = t; /* unknown enum: ignored */
        } else if (pb_skip(&r, wt)) {
            return err_set(err, errlen, ERR_FORMAT, "spm: bad field in piece");
        }
    }
    if (L->str_bytes + pc.n + 1 > SPM_MAX_PIECE_BYTES)
        return err_set(err, errlen, ERR_TOOBIG, "spm: piece strings exceed %u bytes", SPM_MAX_PIECE_BYTES);
    if (L->n >= SPM_MAX_PIECES) return err_set(err, errlen, ERR_TOOBIG, "spm: more than %u pieces", SPM_MAX_PIECES);
    if (pc.n > SPM_MAX_PIECE_LEN)
        return err_set(err, errlen, ERR_TOOBIG, "spm: piece %zu is %zu bytes (cap %u)", L->n, pc.n, SPM_MAX_PIECE_LEN);
    if (L->n == L->cap) {
        size_t nc = L->cap ? L->cap * 2 : 1024;
        raw_piece *np = realloc(L->rp, nc * sizeof *np);
        if (!np) return err_set(err, errlen, ERR_NOMEM, "spm: out of memory");
        L->rp = np;
        L->cap = nc;
    }
    L->rp[L->n++] = pc;
    L->str_bytes += pc.n + 1;
    return 0;
}

static int parse_trainer(loader *L, const uint8_t *p, size_t n, char *err, size_t errlen)
{
    pb_rd r = {p, p + n};
    while (r.p < r.end) {
        uint32_t f;
        int wt;
        uint64_t v;
        if (pb_tag(&r, &f, &wt)) return err_set(err, errlen, ERR_FORMAT, "spm: bad trainer_spec tag");
        if (wt == 0 && (f == 3 || f == 24 || f == 35)) {
            if (pb_varint(&r, &v)) return err_set(err, errlen, ERR_FORMAT, "spm: bad trainer_spec varint");
            if (f == 3) {
                int32_t t = (int32_t)(uint32_t)v;
                if (t >= 1 && t <= 4) L->model_type = t;
            } else if (f == 24) {
                L->treat_ws_as_suffix = v != 0;
            } else {
                L->byte_fallback = v != 0;
            }
        } else if (wt == 2 && f == 44) {
            if (pb_bytes(&r, &L->unk_surface, &L->unk_surface_n))
                return err_set(err, errlen, ERR_FORMAT, "spm: bad unk_surface");
            L->has_unk_surface = 1;
        } else if (pb_skip(&r, wt)) {
            return err_set(err, errlen, ERR_FORMAT, "spm: bad field in trainer_spec");
        }
    }
    return 0;
}

/* SelfTestData { repeated Sample samples = 1; } Sample { input = 1; expected = 2; } */
static int parse_selftest(loader *L, const uint8_t *p, size_t n, char *err, size_t errlen)
{
    pb_rd r = {p, p + n};
    while (r.p < r.end) {
        uint32_t f;
        int wt;
        if (pb_tag(&r, &f, &wt)) return err_set(err, errlen, ERR_FORMAT, "spm: bad self_test_data tag");
        if (f != 1 || wt != 2) {
            if (pb_skip(&r, wt)) return err_set(err, errlen, ERR_FORMAT, "spm: bad field in self_test_data");
            continue;
        }
        const uint8_t *sp;
        size_t sn;
        if (pb_bytes(&r, &sp, &sn)) return err_set(err, errlen, ERR_FORMAT, "spm: bad self-test sample");
        pb_rd q = {sp, sp + sn};
        const uint8_t *in = (const uint8_t *)"", *ex = (const uint8_t *)"";
        size_t inl = 0, exl = 0;
        while (q.p < q.end) {
            if (pb_tag(&q, &f, &wt)) return err_set(err, errlen, ERR_FORMAT, "spm: bad self-test sample tag");
            if (wt == 2 && f == 1) {
                if (pb_bytes(&q, &in, &inl)) return err_set(err, errlen, ERR_FORMAT, "spm: bad self-test input");
            } else if (wt == 2 && f == 2) {
                if (pb_bytes(&q, &ex, &exl)) return err_set(err, errlen, ERR_FORMAT, "spm: bad self-test expected");
            } else if (pb_skip(&q, wt)) {
                return err_set(err, errlen, ERR_FORMAT, "spm: bad field in self-test sample");
            }
        }
        if (L->st_n >= SPM_MAX_PIECES) return err_set(err, errlen, ERR_TOOBIG, "spm: too many self-test samples");
        if (L->st_n == L->st_cap) {
            size_t nc = L->st_cap ? 2 * L->st_cap : 16;
            const uint8_t **ns = realloc(L->st, 2 * nc * sizeof *ns);
            if (!ns) return err_set(err, errlen, ERR_NOMEM, "spm: out of memory");
            L->st = ns;
            size_t *nl = realloc(L->st_len, 2 * nc * sizeof *nl);
            if (!nl) return err_set(err, errlen, ERR_NOMEM, "spm: out of memory");
            L->st_len = nl;
            L->st_cap = nc;
        }
        L->st[2 * L->st_n] = in;
        L->st_len[2 * L->st_n] = inl;
        L->st[2 * L->st_n + 1] = ex;
        L->st_len[2 * L->st_n + 1] = exl;
        L->st_n++;
    }
    return 0;
}

static int parse_norm(spm_norm *ns, const uint8_t *p, size_t n, char *err, size_t errlen)
{
    pb_rd r = {p, p + n};
    ns->present = 1;
    while (r.p < r.end) {
        uint32_t f;
        int wt;
        uint64_t v;
        if (pb_tag(&r, &f, &wt)) return err_set(err, errlen, ERR_FORMAT, "spm: bad normalizer_spec tag");
        if (wt == 0 && f >= 3 && f <= 5) {
            if (pb_varint(&r, &v)) return err_set(err, errlen, ERR_FORMAT, "spm: bad normalizer_spec varint");
            if (f == 3) ns->add_dummy_prefix = v != 0;
            else if (f == 4) ns->remove_extra_ws = v != 0;
            else ns->escape_ws = v != 0;
        } else if (wt == 2 && f == 2) {
            if (pb_bytes(&r, &ns->cmap, &ns->cmap_n))
                return err_set(err, errlen, ERR_FORMAT, "spm: bad precompiled_charsmap");
        } else if (pb_skip(&r, wt)) {
            return err_set(err, errlen, ERR_FORMAT, "spm: bad field in normalizer_spec");
        }
    }
    return 0;
}

/* Splits <u32 LE trie size><double array><replacements> into owned copies. */
static int norm_compile(spm_norm *ns, const char *what, char *err, size_t errlen)
{
    if (!ns->cmap_n) return 0;
    const uint8_t *b = ns->cmap;
    if (ns->cmap_n <= 4) return err_set(err, errlen, ERR_FORMAT, "spm: %s charsmap is broken", what);
    uint32_t tsz = (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
    if ((size_t)tsz > ns->cmap_n - 4)
        return err_set(err, errlen, ERR_FORMAT, "spm: %s charsmap trie size %u exceeds the blob", what, tsz);
    ns->da_n = tsz / 4;
    ns->da = malloc((ns->da_n ? ns->da_n : 1) * sizeof *ns->da);
    ns->repl_n = ns->cmap_n - 4 - tsz;
    ns->repl = malloc(ns->repl_n + 1);
    if (!ns->da || !ns->repl) return err_set(err, errlen, ERR_NOMEM, "spm: out of memory");
    for (size_t i = 0; i < ns->da_n; i++) {
        const uint8_t *u = b + 4 + 4 * i;
        ns->da[i] = (uint32_t)u[0] | (uint32_t)u[1] << 8 | (uint32_t)u[2] << 16 | (uint32_t)u[3] << 24;
    }
    if (ns->repl_n) memcpy(ns->repl, b + 4 + tsz, ns->repl_n);
    ns->repl[ns->repl_n] = 0;
    return 0;
}

static void norm_defaults(spm_norm *ns)
{
    memset(ns, 0, sizeof *ns);
    ns->add_dummy_prefix = ns->remove_extra_ws = ns->escape_ws = 1;
}

/* -- the piece trie -- */

static size_t ht_slot(const spm_model *m, uint64_t key)
{
    return (size_t)((key * 0x9E3779B97F4A7C15ull) >> 17) & (m->ht_cap - 1);
}

static int64_t trie_child(const spm_model *m, uint32_t node, uint8_t byte)
{
    uint64_t key = (((uint64_t)node << 8) | byte) + 1;
    for (size_t i = ht_slot(m, key);; i = (i + 1) & (m->ht_cap - 1)) {
        if (m->ht_key[i] == key) return m->ht_val[i];
        if (m->ht_key[i] == 0) return -1;
    }
}

/* Inserts piece i; returns its end node. The table is sized for all nodes up front. */
static uint32_t trie_insert(spm_model *m, const uint8_t *s, size_t n)
{
    uint32_t node = 0;
    for (size_t k = 0; k < n; k++) {
        uint64_t key = (((uint64_t)node << 8) | s[k]) + 1;
        size_t i = ht_slot(m, key);
        while (m->ht_key[i] && m->ht_key[i] != key) i = (i + 1) & (m->ht_cap - 1);
        if (!m->ht_key[i]) {
            m->ht_key[i] = key;
            m->ht_val[i] = m->n_nodes;
            m->node_normal[m->n_nodes] = -1;
            m->node_reserved[m->n_nodes] = -1;
            m->n_nodes++;
        }
        node = m->ht_val[i];
    }
    return node;
}

/* Exact lookup: node id or -1. */
static int64_t trie_find(const spm_model *m, const char *s, size_t n)
{
    int64_t node = 0;
    for (size_t k = 0; k < n && node >= 0; k++) node = trie_child(m, (uint32_t)node, (uint8_t)s[k]);
    return node;
}

static int is_normal_type(int t)
{
    return t == SPM_NORMAL || t == SPM_USER_DEFINED || t == SPM_UNUSED;
}

/* "<0xXX>" with upper-case hex, as ByteToPiece writes it; -1 otherwise. */
static int piece_to_byte(const char *s, size_t n)
{
    static const char hex[] = "0123456789ABCDEF";
    if (n != 6 || memcmp(s, "<0x", 3) || s[5] != '>') return -1;
    const char *h = strchr(hex, s[3]), *l = strchr(hex, s[4]);
    if (!s[3] || !s[4] || !h || !l) return -1;
    return (int)((h - hex) * 16 + (l - hex));
}

static int build(spm_model *m, loader *L, char *err, size_t errlen)
{
    if (L->model_type != 1)
        return err_set(err, errlen, ERR_FORMAT, "spm: model_type %d is not unigram (only unigram is supported)", L->model_type);
    if (L->n == 0) return err_set(err, errlen, ERR_FORMAT, "spm: no pieces");
    m->n = (int)L->n;
    m->model_type = L->model_type;
    m->byte_fallback = L->byte_fallback;
    m->treat_ws_as_suffix = L->treat_ws_as_suffix;
    m->pieces = calloc(L->n, sizeof *m->pieces);
    m->strs = malloc(L->str_bytes);
    size_t max_nodes = L->str_bytes + 1; /* >= total piece bytes + root */
    size_t cap = 16;
    while (cap < 2 * max_nodes) cap *= 2;
    m->ht_cap = cap;
    m->ht_key = calloc(cap, sizeof *m->ht_key);
    m->ht_val = malloc(cap * sizeof *m->ht_val);
    m->node_normal = malloc(max_nodes * sizeof *m->node_normal);
    m->node_reserved = malloc(max_nodes * sizeof *m->node_reserved);
    if (!m->pieces || !m->strs || !m->ht_key || !m->ht_val || !m->node_normal || !m->node_reserved)
        return err_set(err, errlen, ERR_NOMEM, "spm: out of memory");
    m->node_normal[0] = m->node_reserved[0] = -1;
    m->n_nodes = 1;
    m->unk_id = -1;
    int byte_found[256] = {0};
    size_t off = 0;
    for (size_t i = 0; i < L->n; i++) {
        const raw_piece *rp = &L->rp[i];
        if (rp->n == 0) return err_set(err, errlen, ERR_FORMAT, "spm: piece %zu is empty", i);
        memcpy(m->strs + off, rp->s, rp->n);
        m->strs[off + rp->n] = 0;
        m->pieces[i] = (spm_piece){(uint32_t)off, (uint32_t)rp->n, rp->score, rp->type};
        off += rp->n + 1;
        uint32_t node = trie_insert(m, rp->s, rp->n);
        int32_t *slot = is_normal_type(rp->type) ? &m->node_normal[node] : &m->node_reserved[node];
        if (*slot >= 0) return err_set(err, errlen, ERR_FORMAT, "spm: piece %zu is already defined (id %d)", i, *slot);
        *slot = (int32_t)i;
        if (rp->type == SPM_USER_DEFINED) m->has_uds = 1;
        if (rp->type == SPM_UNKNOWN) {
            if (m->unk_id >= 0) return err_set(err, errlen, ERR_FORMAT, "spm: unk is already defined");
            m->unk_id = (int)i;
        }
        if (rp->type == SPM_BYTE) {
            if (!m->byte_fallback)
                return err_set(err, errlen, ERR_FORMAT, "spm: byte piece %zu found although byte_fallback is false", i);
            int b = piece_to_byte((const char *)rp->s, rp->n);
            if (b < 0) return err_set(err, errlen, ERR_FORMAT, "spm: byte piece %zu is invalid", i);
            byte_found[b] = 1;
        }
    }
    m->strs_n = off;
    if (m->unk_id < 0) return err_set(err, errlen, ERR_FORMAT, "spm: unk is not defined");
    if (m->byte_fallback) {
        for (int b = 0; b < 256; b++) {
            if (!byte_found[b])
                return err_set(err, errlen, ERR_FORMAT, "spm: byte_fallback set but byte piece <0x%02X> is missing", b);
            char ps[8];
            snprintf(ps, sizeof ps, "<0x%02X>", b);
            m->byte_id[b] = spm_piece_to_id(m, ps, 6);
        }
    }
    int any_normal = 0;
    m->min_score = FLT_MAX;
    m->max_score = FLT_MIN; /* sic: upstream starts from FLT_MIN, the smallest positive float */
    for (int i = 0; i < m->n; i++) {
        if (is_normal_type(m->pieces[i].type)) any_normal = 1;
        if (m->pieces[i].type == SPM_NORMAL) {
            if (m->pieces[i].score < m->min_score) m->min_score = m->pieces[i].score;
            if (m->pieces[i].score > m->max_score) m->max_score = m->pieces[i].score;
        }
    }
    if (!any_normal) return err_set(err, errlen, ERR_FORMAT, "spm: no pieces are loaded");
    static const char def_unk[] = " \xe2\x81\x87 ";
    const uint8_t *us = L->has_unk_surface ? L->unk_surface : (const uint8_t *)def_unk;
    size_t un = L->has_unk_surface ? L->unk_surface_n : sizeof def_unk - 1;
    m->unk_surface = malloc(un + 1);
    if (!m->unk_surface) return err_set(err, errlen, ERR_NOMEM, "spm: out of memory");
    if (un) memcpy(m->unk_surface, us, un);
    m->unk_surface[un] = 0;
    m->unk_surface_n = un;
    int rc = norm_compile(&m->norm, "normalizer", err, errlen);
    if (rc) return rc;
    if (L->has_denorm && m->denorm.cmap_n) {
        rc = norm_compile(&m->denorm, "denormalizer", err, errlen);
        if (rc) return rc;
    } else {
        m->denorm.present = 0;
    }
    m->norm.cmap = m->denorm.cmap = NULL; /* borrowed from the file: gone after load */
    if (L->st_n) {
        m->selftest = calloc(2 * L->st_n, sizeof *m->selftest);
        m->selftest_len = calloc(2 * L->st_n, sizeof *m->selftest_len);
        if (!m->selftest || !m->selftest_len) return err_set(err, errlen, ERR_NOMEM, "spm: out of memory");
        m->n_selftest = L->st_n;
        for (size_t i = 0; i < 2 * L->st_n; i++) {
            m->selftest[i] = malloc(L->st_len[i] + 1);
            if (!m->selftest[i]) return err_set(err, errlen, ERR_NOMEM, "spm: out of memory");
            if (L->st_len[i]) memcpy(m->selftest[i], L->st[i], L->st_len[i]);
            m->selftest[i][L->st_len[i]] = 0;
            m->selftest_len[i] = L->st_len[i];
        }
    }
    return 0;
}

int spm_load_mem(spm_model **out, const void *data, size_t n, char *err, size_t errlen)
{
    *out = NULL;
    if (n > SPM_MAX_MODEL_BYTES)
        return err_set(err, errlen, ERR_TOOBIG, "spm: model is %zu bytes (cap %u)", n, SPM_MAX_MODEL_BYTES);
    if (!data) data = "";
    spm_model *m = calloc(1, sizeof *m);
    if (!m) return err_set(err, errlen, ERR_NOMEM, "spm: out of memory");
    norm_defaults(&m->norm);
    norm_defaults(&m->denorm);
    loader L = {0};
    L.model_type = 1;
    pb_rd r = {data, (const uint8_t *)data + n};
    int rc = 0;
    while (r.p < r.end && !rc) {
        uint32_t f;
        int wt;
        const uint8_t *p;
        size_t len;
        if (pb_tag(&r, &f, &wt)) {
            rc = err_set(err, errlen, ERR_FORMAT, "spm: bad tag at byte %zu", (size_t)(r.p - (const uint8_t *)data));
            break;
        }
        if (wt == 2 && f >= 1 && f <= 5) {
            if (pb_bytes(&r, &p, &len)) {
                rc = err_set(err, errlen, ERR_FORMAT, "spm: truncated field %u", f);
                break;
            }
            if (f == 1) rc = parse_piece(&L, p, len, err, errlen);
            else if (f == 2) rc = parse_trainer(&L, p, len, err, errlen);
            else if (f == 3) rc = parse_norm(&m->norm, p, len, err, errlen);
            else if (f == 4) rc = parse_selftest(&L, p, len, err, errlen);
            else {
                L.has_denorm = 1;
                rc = parse_norm(&m->denorm, p, len, err, errlen);
            }
        } else if (pb_skip(&r, wt)) {
            rc = err_set(err, errlen, ERR_FORMAT, "spm: bad field %u", f);
        }
    }
    if (!rc) rc = build(m, &L, err, errlen);
    free(L.rp);
    free(L.st);
    free(L.st_len);
    if (rc) {
        spm_free(m);
        return rc;
    }
    *out = m;
    return 0;
}

int spm_load_file(spm_model **out, const char *path, char *err, size_t errlen)
{
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) return err_set(err, errlen, ERR_NOTFOUND, "spm: cannot open %s", path);
    buf b;
    buf_init(&b, SPM_MAX_MODEL_BYTES);
    char tmp[65536];
    size_t got;
    int rc = 0;
    while ((got = fread(tmp, 1, sizeof tmp, f)) > 0) {
        rc = buf_append(&b, tmp, got);
        if (rc) break;
    }
    if (!rc && ferror(f)) rc = ERR_IO;
    fclose(f);
    if (rc) {
        buf_free(&b);
        if (rc == ERR_TOOBIG) return err_set(err, errlen, rc, "spm: %s is larger than %u bytes", path, SPM_MAX_MODEL_BYTES);
        return err_set(err, errlen, rc, "spm: cannot read %s", path);
    }
    rc = spm_load_mem(out, b.data ? b.data : "", b.len, err, errlen);
    buf_free(&b);
    return rc;
}

static void norm_free(spm_norm *ns)
{
    free(ns->da);
    free(ns->repl);
}

void spm_free(spm_model *m)
{
    if (!m) return;
    free(m->pieces);
    free(m->strs);
    free(m->ht_key);
    free(m->ht_val);
    free(m->node_normal);
    free(m->node_reserved);
    free(m->unk_surface);
    norm_free(&m->norm);
    norm_free(&m->denorm);
    if (m->selftest)
        for (size_t i = 0; i < 2 * m->n_selftest; i++) free(m->selftest[i]);
    free(m->selftest);
    free(m->selftest_len);
    free(m);
}

int spm_vocab_size(const spm_model *m) { return m->n; }
int spm_unk_id(const spm_model *m) { return m->unk_id; }

const char *spm_id_to_piece(const spm_model *m, int id, size_t *len)
{
    if (id < 0 || id >= m->n) return NULL;
    if (len) *len = m->pieces[id].len;
    return m->strs + m->pieces[id].off;
}

int spm_piece_type(const spm_model *m, int id)
{
    return (id < 0 || id >= m->n) ? 0 : m->pieces[id].type;
}

int spm_piece_to_id(const spm_model *m, const char *piece, size_t len)
{
    int64_t node = trie_find(m, piece, len);
    if (node < 0) return m->unk_id;
    if (m->node_reserved[node] >= 0) return m->node_reserved[node];
    if (m->node_normal[node] >= 0) return m->node_normal[node];
    return m->unk_id;
}

/* ---- UTF-8 exactly as sentencepiece's string_util ------------------------------------ */

static size_t one_char_len(uint8_t c)
{
    static const uint8_t t[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
    return t[c >> 4];
}

static int valid_cp(uint32_t c) { return c < 0xD800 || (c >= 0xE000 && c <= 0x10FFFF); }
static int trail(uint8_t c) { return (c & 0xC0) == 0x80; }

/* DecodeUTF8 + IsValidDecodeUTF8: returns 1 if s[0..n) starts with a valid character
 * (a literal U+FFFD counts as valid), its length in *mblen; else 0 and *mblen = 1. */
static int valid_decode(const uint8_t *s, size_t n, size_t *mblen)
{
    uint32_t cp;
    *mblen = 1;
    if (s[0] < 0x80) return 1;
    if (n >= 2 && (s[0] & 0xE0) == 0xC0) {
        cp = (uint32_t)(s[0] & 0x1F) << 6 | (s[1] & 0x3F);
        if (trail(s[1]) && cp >= 0x80 && valid_cp(cp)) { *mblen = 2; return 1; }
    } else if (n >= 3 && (s[0] & 0xF0) == 0xE0) {
        cp = (uint32_t)(s[0] & 0x0F) << 12 | (uint32_t)(s[1] & 0x3F) << 6 | (s[2] & 0x3F);
        if (trail(s[1]) && trail(s[2]) && cp >= 0x800 && valid_cp(cp)) { *mblen = 3; return 1; }
    } else if (n >= 4 && (s[0] & 0xF8) == 0xF0) {
        cp = (uint32_t)(s[0] & 0x07) << 18 | (uint32_t)(s[1] & 0x3F) << 12 |
             (uint32_t)(s[2] & 0x3F) << 6 | (s[3] & 0x3F);
        if (trail(s[1]) && trail(s[2]) && trail(s[3]) && cp >= 0x10000 && valid_cp(cp)) { *mblen = 4; return 1; }
    }
    return 0;
}

/* ---- normaliser ------------------------------------------------------------------------ */

/* Darts-clone unit accessors. */
static inline int da_has_leaf(uint32_t u) { return (u >> 8) & 1; }
static inline uint32_t da_value(uint32_t u) { return u & 0x7FFFFFFFu; }
static inline uint32_t da_label(uint32_t u) { return u & (0x80000000u | 0xFFu); }
static inline uint32_t da_offset(uint32_t u) { return (u >> 10) << ((u & (1u << 9)) >> 6); }

/* Longest charsmap key that prefixes s[0..n): its length (0 = none) and value. */
static size_t da_longest(const spm_norm *ns, const uint8_t *s, size_t n, uint32_t *value)
{
    size_t best = 0;
    if (!ns->da || ns->da_n == 0) return 0;
    uint32_t id = da_offset(ns->da[0]);
    if (n > SPM_DA_MAX_KEY) n = SPM_DA_MAX_KEY;
    for (size_t i = 0; i < n; i++) {
        id ^= s[i];
        if (id >= ns->da_n) break;
        uint32_t u = ns->da[id];
        if (da_label(u) != s[i]) break;
        id ^= da_offset(u);
        if (da_has_leaf(u)) {
            if (id >= ns->da_n) break;
            best = i + 1;
            *value = da_value(ns->da[id]);
        }
    }
    return best;
}

/* Longest user-defined symbol that prefixes s[0..n), 0 if none. */
static size_t uds_longest(const spm_model *m, const uint8_t *s, size_t n)
{
    size_t best = 0;
    int64_t node = 0;
    for (size_t i = 0; i < n && i < SPM_MAX_PIECE_LEN; i++) {
        node = trie_child(m, (uint32_t)node, s[i]);
        if (node < 0) break;
        int32_t id = m->node_normal[node];
        if (id >= 0 && m->pieces[id].type == SPM_USER_DEFINED) best = i + 1;
    }
    return best;
}

/* NormalizePrefix: the replacement for the head of s[0..n) and how many bytes it eats. */
static int norm_prefix(const spm_model *m, const spm_norm *ns, int use_uds, const uint8_t *s,
                       size_t n, const char **rep, size_t *rep_n, size_t *eat)
{
    if (use_uds && m->has_uds) {
        size_t l = uds_longest(m, s, n);
        if (l) {
            *rep = (const char *)s;
            *rep_n = *eat = l;
            return 0;
        }
    }
    uint32_t v = 0;
    size_t l = da_longest(ns, s, n, &v);
    if (l) {
        if (v > ns->repl_n) return ERR_FORMAT;
        *rep = ns->repl + v; /* repl is NUL-terminated at repl_n, so strlen stays inside */
        *rep_n = strlen(*rep);
        *eat = l;
        return 0;
    }
    size_t mb;
    if (valid_decode(s, n, &mb)) {
        *rep = (const char *)s;
        *rep_n = *eat = mb;
    } else {
        *rep = k_fffd;
        *rep_n = 3;
        *eat = 1;
    }
    return 0;
}

static int ends_with(const buf *b, const char *s, size_t n)
{
    return b->len >= n && memcmp(b->data + b->len - n, s, n) == 0;
}

/* Normalizer::Normalize into out (already initialised with its cap). */
static int normalize(const spm_model *m, const spm_norm *ns, int use_uds, int ws_suffix,
                     const uint8_t *in, size_t n, buf *out)
{
    const char *rep;
    size_t rn, eat;
    int rc;
    if (n == 0) return 0;
    if (ns->remove_extra_ws) {
        while (n) {
            if ((rc = norm_prefix(m, ns, use_uds, in, n, &rep, &rn, &eat))) return rc;
            if (!(rn == 1 && rep[0] == ' ')) break;
            in += eat;
            n -= eat;
        }
    }
    if (n == 0) return 0;
    const char *ws = ns->escape_ws ? k_ws : " ";
    size_t wsn = ns->escape_ws ? 3 : 1;
    if (!ws_suffix && ns->add_dummy_prefix && (rc = buf_append(out, ws, wsn))) return rc;
    int prev_space = ns->remove_extra_ws;
    while (n) {
        if ((rc = norm_prefix(m, ns, use_uds, in, n, &rep, &rn, &eat))) return rc;
        while (prev_space && rn && rep[0] == ' ') {
            rep++;
            rn--;
        }
        if (rn) {
            size_t i = 0;
            while (i < rn) {
                size_t j = i;
                while (j < rn && !(ns->escape_ws && rep[j] == ' ')) j++;
                if (j > i && (rc = buf_append(out, rep + i, j - i))) return rc;
                if (j < rn) {
                    if ((rc = buf_append(out, k_ws, 3))) return rc;
                    j++;
                }
                i = j;
            }
            prev_space = rep[rn - 1] == ' ';
        }
        in += eat;
        n -= eat;
        if (!ns->remove_extra_ws) prev_space = 0;
    }
    if (ns->remove_extra_ws)
        while (ends_with(out, ws, wsn)) out->len -= wsn;
    if (ws_suffix && ns->add_dummy_prefix && (rc = buf_append(out, ws, wsn))) return rc;
    return 0;
}

static int normalize_input(const spm_model *m, const char *text, size_t len, buf *out,
                           char *err, size_t errlen)
{
    buf_init(out, SPM_MAX_NORM_BYTES);
    if (len > SPM_MAX_TEXT_BYTES)
        return err_set(err, errlen, ERR_TOOBIG, "spm: text is %zu bytes (cap %u)", len, SPM_MAX_TEXT_BYTES);
    int rc = normalize(m, &m->norm, 1, m->treat_ws_as_suffix, (const uint8_t *)text, len, out);
    if (rc == ERR_TOOBIG) return err_set(err, errlen, rc, "spm: normalised text exceeds %u bytes", SPM_MAX_NORM_BYTES);
    if (rc == ERR_NOMEM) return err_set(err, errlen, rc, "spm: out of memory");
    if (rc) return err_set(err, errlen, rc, "spm: charsmap points outside its strings");
    return 0;
}

int spm_normalize(const spm_model *m, const char *text, size_t len, char **out, size_t *outlen,
                  char *err, size_t errlen)
{
    buf b;
    *out = NULL;
    int rc = normalize_input(m, text, len, &b, err, errlen);
    if (rc) {
        buf_free(&b);
        return rc;
    }
    if (!b.data && buf_append(&b, "", 0)) return err_set(err, errlen, ERR_NOMEM, "spm: out of memory");
    buf_cstr(&b);
    *out = buf_steal(&b, outlen);
    return 0;
}

/* ---- unigram Viterbi (EncodeOptimized) -------------------------------------------------- */

typedef struct best_node {
    int id;
    float score;   /* best path score ending here (float, as upstream) */
    int starts_at; /* -1 = unset */
} best_node;

typedef struct seg {
    uint32_t begin, len; /* in the normalised text */
    int32_t id;
} seg;

/* Fills *segs (malloc'd, *ns entries) with the best segmentation of s[0..n). */
static int viterbi(const spm_model *m, const uint8_t *s, size_t n, seg **segs, size_t *nseg)
{
    *segs = NULL;
    *nseg = 0;
    if (n == 0) return 0;
    best_node *bp = malloc((n + 1) * sizeof *bp);
    if (!bp) return ERR_NOMEM;
    for (size_t i = 0; i <= n; i++) bp[i] = (best_node){-1, 0.0f, -1};
    const float unk_score = m->min_score - 10.0f;
    size_t st = 0;
    while (st < n) {
        const float till_here = bp[st].score;
        int has_single = 0;
        size_t mblen = one_char_len(s[st]);
        if (mblen > n - st) mblen = n - st;
        int64_t node = 0;
        for (size_t k = st; k < n; k++) {
            node = trie_child(m, (uint32_t)node, s[k]);
            if (node < 0) break;
            int32_t id = m->node_normal[node];
            if (id < 0) continue;
            const spm_piece *pc = &m->pieces[id];
            if (pc->type == SPM_UNUSED) continue;
            best_node *t = &bp[k + 1];
            size_t length = k + 1 - st;
            /* upstream: size_t * float - 0.1 (double) vs float score, summed in double */
            double score = pc->type == SPM_USER_DEFINED ? (double)((float)length * m->max_score) - 0.1
                                                        : (double)pc->score;
            double cand = score + (double)till_here;
            if (t->starts_at == -1 || cand > (double)t->score) {
                t->score = (float)cand;
                t->starts_at = (int)st;
                t->id = id;
            }
            if (!has_single && length == mblen) has_single = 1;
        }
        if (!has_single) {
            best_node *t = &bp[st + mblen];
            float cand = unk_score + till_here;
            if (t->starts_at == -1 || cand > t->score) {
                t->score = cand;
                t->starts_at = (int)st;
                t->id = m->unk_id;
            }
        }
        st += mblen;
    }
    size_t cnt = 0;
    for (long e = (long)n; e > 0; e = bp[e].starts_at) {
        if (bp[e].starts_at < 0 || bp[e].starts_at >= e) {
            free(bp);
            return ERR_INTERNAL;
        }
        cnt++;
    }
    seg *out = malloc(cnt * sizeof *out);
    if (!out) {
        free(bp);
        return ERR_NOMEM;
    }
    size_t i = cnt;
    for (long e = (long)n; e > 0; e = bp[e].starts_at) {
        i--;
        out[i] = (seg){(uint32_t)bp[e].starts_at, (uint32_t)(e - bp[e].starts_at), bp[e].id};
    }
    free(bp);
    *segs = out;
    *nseg = cnt;
    return 0;
}

/* Encode + PopulateSentencePieceText: unknown runs merged, or split into byte pieces. */
static int encode_impl(const spm_model *m, const char *text, size_t len, spm_tokens *out,
                       int want_pieces, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    buf nb;
    int rc = normalize_input(m, text, len, &nb, err, errlen);
    if (rc) {
        buf_free(&nb);
        return rc;
    }
    seg *sg = NULL;
    size_t ns = 0;
    rc = viterbi(m, (const uint8_t *)nb.data, nb.len, &sg, &ns);
    if (rc) {
        buf_free(&nb);
        return err_set(err, errlen, rc, rc == ERR_NOMEM ? "spm: out of memory" : "spm: broken lattice");
    }
    /* Upper bound on output: byte fallback can make one id per byte. */
    size_t cap = m->byte_fallback ? nb.len : ns;
    int32_t *ids = malloc((cap ? cap : 1) * sizeof *ids);
    uint32_t *pb = want_pieces ? malloc((cap ? cap : 1) * 2 * sizeof *pb) : NULL; /* begin, len */
    uint8_t *isbyte = want_pieces ? calloc(cap ? cap : 1, 1) : NULL;
    if (!ids || (want_pieces && (!pb || !isbyte))) {
        free(ids), free(pb), free(isbyte), free(sg), buf_free(&nb);
        return err_set(err, errlen, ERR_NOMEM, "spm: out of memory");
    }
    size_t k = 0;
    int prev_unk = 0;
    for (size_t i = 0; i < ns; i++) {
        int is_unk = m->pieces[sg[i].id].type == SPM_UNKNOWN;
        if (is_unk && m->byte_fallback) {
            for (uint32_t j = 0; j < sg[i].len; j++) {
                uint8_t b = (uint8_t)nb.data[sg[i].begin + j];
                ids[k] = m->byte_id[b];
                if (pb) {
                    pb[2 * k] = b;
                    pb[2 * k + 1] = 0;
                    isbyte[k] = 1;
                }
                k++;
            }
        } else if (is_unk && prev_unk) {
            if (pb) pb[2 * (k - 1) + 1] += sg[i].len;
        } else {
            ids[k] = sg[i].id;
            if (pb) {
                pb[2 * k] = sg[i].begin;
                pb[2 * k + 1] = sg[i].len;
            }
            k++;
        }
        prev_unk = is_unk;
    }
    free(sg);
    out->ids = ids;
    out->n = k;
    if (want_pieces) {
        size_t total = 0;
        for (size_t i = 0; i < k; i++) total += (isbyte[i] ? 6 : pb[2 * i + 1]) + 1;
        char **pp = malloc((k ? k : 1) * sizeof *pp + total);
        if (!pp) {
            free(pb), free(isbyte), buf_free(&nb), spm_tokens_free(out);
            return err_set(err, errlen, ERR_NOMEM, "spm: out of memory");
        }
        char *w = (char *)(pp + (k ? k : 1));
        for (size_t i = 0; i < k; i++) {
            pp[i] = w;
            if (isbyte[i]) {
                snprintf(w, 7, "<0x%02X>", pb[2 * i]);
                w += 6;
            } else {
                memcpy(w, nb.data + pb[2 * i], pb[2 * i + 1]);
                w += pb[2 * i + 1];
            }
            *w++ = 0;
        }
        out->pieces = pp;
    }
    free(pb);
    free(isbyte);
    buf_free(&nb);
    if (k == 0) {
        free(out->ids);
        free(out->pieces);
        out->ids = NULL;
        out->pieces = NULL;
    }
    return 0;
}

int spm_encode(const spm_model *m, const char *text, size_t len, int32_t **ids, size_t *n,
               char *err, size_t errlen)
{
    spm_tokens t;
    int rc = encode_impl(m, text, len, &t, 0, err, errlen);
    *ids = t.ids;
    *n = t.n;
    return rc;
}

int spm_encode_pieces(const spm_model *m, const char *text, size_t len, spm_tokens *out,
                      char *err, size_t errlen)
{
    return encode_impl(m, text, len, out, 1, err, errlen);
}

void spm_tokens_free(spm_tokens *t)
{
    if (!t) return;
    free(t->ids);
    free(t->pieces);
    memset(t, 0, sizeof *t);
}

/* ---- decoding ---------------------------------------------------------------------------- */

/* Appends the surfaces of byte pieces bytes[0..n): valid UTF-8 as is, else U+FFFD per byte. */
static int flush_bytes(buf *text, const uint8_t *bytes, size_t n)
{
    size_t off = 0;
    int rc;
    while (off < n) {
        size_t mb;
        if (valid_decode(bytes + off, n - off, &mb)) rc = buf_append(text, bytes + off, mb);
        else rc = buf_append(text, k_fffd, 3);
        if (rc) return rc;
        off += mb;
    }
    return 0;
}

/* Appends piece p[0..n) with every U+2581 replaced by a space. */
static int append_unescaped(buf *text, const char *p, size_t n)
{
    size_t i = 0;
    while (i < n) {
        const char *hit = n - i >= 3 ? memmem(p + i, n - i, k_ws, 3) : NULL;
        size_t upto = hit ? (size_t)(hit - p) : n;
        int rc = buf_append(text, p + i, upto - i);
        if (rc) return rc;
        if (!hit) break;
        if ((rc = buf_append(text, " ", 1))) return rc;
        i = upto + 3;
    }
    return 0;
}

int spm_decode(const spm_model *m, const int32_t *ids, size_t n, char **out, size_t *outlen,
               char *err, size_t errlen)
{
    *out = NULL;
    for (size_t i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= m->n)
            return err_set(err, errlen, ERR_INVAL, "spm: invalid id %d at %zu", (int)ids[i], i);
    size_t cap = (size_t)SPM_MAX_NORM_BYTES;
    buf text;
    buf_init(&text, cap);
    uint8_t *bytes = malloc(n ? n : 1);
    if (!bytes) return err_set(err, errlen, ERR_NOMEM, "spm: out of memory");
    size_t nbytes = 0;
    int is_bos_ws = 1, bos_ws_seen = 0, rc = 0;
    const spm_norm *ns = &m->norm;
    for (size_t i = 0; i < n && !rc; i++) {
        size_t plen = 0;
        const char *p = spm_id_to_piece(m, ids[i], &plen);
        int id = spm_piece_to_id(m, p, plen);
        int type = m->pieces[id].type;
        if (type == SPM_BYTE) {
            bytes[nbytes++] = (uint8_t)piece_to_byte(p, plen);
            continue;
        }
        if ((rc = flush_bytes(&text, bytes, nbytes))) break;
        nbytes = 0;
        if (bos_ws_seen || text.len) is_bos_ws = 0;
        bos_ws_seen = 0;
        if (type == SPM_CONTROL) continue;
        if (type == SPM_UNKNOWN) {
            size_t ul = 0;
            const char *up = spm_id_to_piece(m, id, &ul);
            if (ul == plen && !memcmp(up, p, plen)) rc = buf_append(&text, m->unk_surface, m->unk_surface_n);
            else rc = buf_append(&text, p, plen);
            continue;
        }
        if (is_bos_ws && (ns->add_dummy_prefix || ns->remove_extra_ws)) {
            if (plen >= 3 && !memcmp(p, k_ws, 3)) {
                p += 3;
                plen -= 3;
                bos_ws_seen = 1;
            }
            if (ns->remove_extra_ws) bos_ws_seen = 0;
        }
        rc = append_unescaped(&text, p, plen);
    }
    if (!rc) rc = flush_bytes(&text, bytes, nbytes);
    free(bytes);
    if (!rc && m->denorm.present && m->denorm.da) {
        buf dn;
        buf_init(&dn, SPM_MAX_NORM_BYTES);
        rc = normalize(m, &m->denorm, 0, 0, (const uint8_t *)text.data, text.len, &dn);
        buf_free(&text);
        text = dn;
    }
    if (!rc && !text.data) rc = buf_append(&text, "", 0);
    if (rc) {
        buf_free(&text);
        return err_set(err, errlen, rc, "spm: decode failed (%s)", err_name(rc));
    }
    buf_cstr(&text);
    *out = buf_steal(&text, outlen);
    return 0;
}

/* ---- self test (SentencePieceProcessor::Load runs it; here it is a diagnostic) -------- */

/* Unigram Model::VerifyOutputsEquivalent's score of space-separated pieces s[0..n). */
static float pieces_score(const spm_model *m, const char *s, size_t n)
{
    float total = 0.0f;
    const float unk_score = m->min_score - 10.0f;
    size_t a = 0;
    for (;;) {
        const char *sp = memchr(s + a, ' ', n - a);
        size_t b = sp ? (size_t)(sp - s) : n;
        int id = spm_piece_to_id(m, s + a, b - a);
        if (id == m->unk_id) total += unk_score;
        else if (m->pieces[id].type == SPM_USER_DEFINED)
            total = (float)((double)total + ((double)((float)(int)(b - a) * m->max_score) - 0.1));
        else total += m->pieces[id].score;
        if (!sp) break;
        a = b + 1;
    }
    return total;
}

int spm_self_test(const spm_model *m, int *n_samples, int *n_failed, char *err, size_t errlen)
{
    *n_samples = (int)m->n_selftest;
    *n_failed = 0;
    for (size_t i = 0; i < m->n_selftest; i++) {
        spm_tokens tk;
        int rc = spm_encode_pieces(m, m->selftest[2 * i], m->selftest_len[2 * i], &tk, err, errlen);
        if (rc) return rc;
        buf b;
        buf_init(&b, SPM_MAX_NORM_BYTES * 2);
        for (size_t k = 0; k < tk.n && !rc; k++) {
            if (k) rc = buf_append(&b, " ", 1);
            if (!rc) rc = buf_append(&b, tk.pieces[k], strlen(tk.pieces[k]));
        }
        spm_tokens_free(&tk);
        if (!rc && !b.data) rc = buf_append(&b, "", 0);
        if (rc) {
            buf_free(&b);
            return err_set(err, errlen, rc, "spm: self test: %s", err_name(rc));
        }
        const char *ex = m->selftest[2 * i + 1];
        size_t exl = m->selftest_len[2 * i + 1];
        int same = exl == b.len && !memcmp(ex, b.data, exl);
        if (!same) {
            float d = pieces_score(m, ex, exl) - pieces_score(m, b.data, b.len);
            if (fabsf(d) > 1e-7f) {
                if (!*n_failed) err_set(err, errlen, ERR_FORMAT, "spm: self-test sample %zu: expected \"%s\", got \"%s\"", i, ex, b.data);
                (*n_failed)++;
            }
        }
        buf_free(&b);
    }
    return 0;
}
