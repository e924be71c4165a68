/* kkpth.c — see kkpth.h.
 *
 * Zip: the central directory (found through the end record, or its zip64 variant, which
 * torch always writes) gives each entry's local header; entries must be stored (method 0).
 * Pickle: a stack of tagged objects plus a memo; everything is freed in one place. The
 * tensor bytes are never loaded: they are copied storage -> output with pread/write in
 * 1 MiB pieces, so converting the 327 MB checkpoint needs little memory.
 */
#include "engine/kokoro/kkpth.h"

#include "core/err.h"

#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define PK_MAX_PICKLE (64u << 20)
#define PK_MAX_TENSORS 65536
#define PK_MAX_NAME 512
#define PK_MAX_DIMS 8

/* ---- zip --------------------------------------------------------------------------- */

typedef struct zent {
    char *name;
    uint64_t data; /* offset of the entry's bytes in the file */
    uint64_t size;
} zent;

typedef struct zipf {
    int fd;
    uint64_t fsize;
    zent *e;
    size_t n;
} zipf;

static uint16_t le16(const unsigned char *p) { return (uint16_t)(p[0] | p[1] << 8); }
static uint32_t le32(const unsigned char *p) { return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24; }
static uint64_t le64(const unsigned char *p) { return (uint64_t)le32(p) | (uint64_t)le32(p + 4) << 32; }

static int rd(int fd, void *b, size_t n, uint64_t off)
{
    size_t got = 0;
    while (got < n) {
        ssize_t k = pread(fd, (char *)b + got, n - got, (off_t)(off + got));
        if (k <= 0) return -1;
        got += (size_t)k;
    }
    return 0;
}

static void zip_close(zipf *z)
{
    for (size_t i = 0; i < z->n; i++) free(z->e[i].name);
    free(z->e);
    if (z->fd >= 0) close(z->fd);
}

static int zip_open(zipf *z, const char *path, char *err, size_t errlen)
{
    memset(z, 0, sizeof *z);
    z->fd = open(path, O_RDONLY | O_CLOEXEC);
    if (z->fd < 0) return err_set(err, errlen, ERR_NOTFOUND, "cannot open %s", path);
    struct stat st;
    if (fstat(z->fd, &st) || st.st_size < 22) return err_set(err, errlen, ERR_FORMAT, "%s: not a zip file", path);
    z->fsize = (uint64_t)st.st_size;
    size_t tail = z->fsize < 65536 + 22 ? (size_t)z->fsize : 65536 + 22;
    unsigned char *t = malloc(tail);
    if (!t) return err_set(err, errlen, ERR_NOMEM, "out of memory");
    if (rd(z->fd, t, tail, z->fsize - tail)) {
        free(t);
        return err_set(err, errlen, ERR_IO, "%s: read failed", path);
    }
    long eo = -1;
    for (long i = (long)tail - 22; i >= 0; i--)
        if (le32(t + i) == 0x06054b50) {
            eo = i;
            break;
        }
    if (eo < 0) {
        free(t);
        return err_set(err, errlen, ERR_FORMAT, "%s: not a zip file (no end record)", path);
    }
    uint64_t count = le16(t + eo + 10), cdoff = le32(t + eo + 16);
    /* zip64 locator just before the end record */
    if (eo >= 20 && le32(t + eo - 20) == 0x07064b50) {
        uint64_t z64 = le64(t + eo - 20 + 8);
        unsigned char r[56];
        if (!rd(z->fd, r, sizeof r, z64) && le32(r) == 0x06064b50) {
            count = le64(r + 32);
            cdoff = le64(r + 48);
        }
    }
    free(t);
    if (count > 1u << 20 || cdoff >= z->fsize) return err_set(err, errlen, ERR_FORMAT, "%s: bad zip directory", path);
    z->e = calloc(count ? count : 1, sizeof *z->e);
    if (!z->e) return err_set(err, errlen, ERR_NOMEM, "out of memory");
    uint64_t off = cdoff;
    for (uint64_t i = 0; i < count; i++) {
        unsigned char h[46];
        if (rd(z->fd, h, sizeof h, off) || le32(h) != 0x02014b50)
            return err_set(err, errlen, ERR_FORMAT, "%s: bad zip directory entry %llu", path, (unsigned long long)i);
        unsigned method = le16(h + 10), nl = le16(h + 28), el = le16(h + 30), cl = le16(h + 32);
        uint64_t csize = le32(h + 20), usize = le32(h + 24), loff = le32(h + 42);
        char *name = malloc((size_t)nl + 1);
        unsigned char *ex = malloc((size_t)el + 1);
        if (!name || !ex) {
            free(name);
            free(ex);
            return err_set(err, errlen, ERR_NOMEM, "out of memory");
        }
        if (rd(z->fd, name, nl, off + 46) || rd(z->fd, ex, el, off + 46 + nl)) {
            free(name);
            free(ex);
            return err_set(err, errlen, ERR_IO, "%s: read failed", path);
        }
        name[nl] = 0;
        for (unsigned p = 0; p + 4 <= el;) { /* zip64 extra: the 0xFFFFFFFF fields, in order */
            unsigned id = le16(ex + p), sz = le16(ex + p + 2);
            if (id == 1) {
                unsigned q = p + 4;
                if (usize == 0xFFFFFFFFu && q + 8 <= p + 4 + sz) { usize = le64(ex + q); q += 8; }
                if (csize == 0xFFFFFFFFu && q + 8 <= p + 4 + sz) { csize = le64(ex + q); q += 8; }
                if (loff == 0xFFFFFFFFu && q + 8 <= p + 4 + sz) { loff = le64(ex + q); q += 8; }
            }
            p += 4 + sz;
        }
        free(ex);
        z->e[z->n].name = name;
        z->n++;
        unsigned char lh[30];
        if (method != 0 || csize != usize) return err_set(err, errlen, ERR_FORMAT, "%s: entry %s is compressed", path, name);
        if (rd(z->fd, lh, sizeof lh, loff) || le32(lh) != 0x04034b50)
            return err_set(err, errlen, ERR_FORMAT, "%s: bad local header for %s", path, name);
        z->e[z->n - 1].data = loff + 30 + le16(lh + 26) + le16(lh + 28);
        z->e[z->n - 1].size = usize;
        if (z->e[z->n - 1].data + usize > z->fsize) return err_set(err, errlen, ERR_FORMAT, "%s: %s truncated", path, name);
        off += 46 + (uint64_t)nl + el + cl;
    }
    return 0;
}

/* Entry whose name ends with "/<suffix>" (the root folder name varies). */
static const zent *zip_find(const zipf *z, const char *suffix)
{
    size_t sl = strlen(suffix);
    for (size_t i = 0; i < z->n; i++) {
        size_t nl = strlen(z->e[i].name);
        if (nl > sl && z->e[i].name[nl - sl - 1] == '/' && !strcmp(z->e[i].name + nl - sl, suffix)) {
            /* exactly one folder level: "<root>/<suffix>" */
            const char *slash = strchr(z->e[i].name, '/');
            if (slash && slash == z->e[i].name + nl - sl - 1) return &z->e[i];
        }
    }
    return NULL;
}

/* ---- pickle ------------------------------------------------------------------------ */

typedef enum { O_MARK, O_NONE, O_INT, O_STR, O_TUPLE, O_LIST, O_DICT, O_GLOBAL, O_STORAGE, O_TENSOR, O_OPAQUE } otype;

typedef struct obj {
    otype t;
    int64_t i;          /* int; storage: element size */
    char *s;            /* str; global "module name"; storage: key */
    struct obj **it;    /* tuple/list items; dict: key, value, key, value ... */
    size_t n, cap;
    /* tensor */
    struct obj *storage;
    int64_t offset;
    int ndim;
    int64_t shape[PK_MAX_DIMS], stride[PK_MAX_DIMS];
    char dtype[8];      /* storage: safetensors dtype name */
    struct obj *next;   /* every object, for freeing */
} obj;

typedef struct vm {
    const unsigned char *p, *end;
    obj **st;
    size_t sn, scap;
    obj **memo;
    size_t mcap;
    obj *all;
    char *err;
    size_t errlen;
} vm;

static obj *mk(vm *v, otype t)
{
    obj *o = calloc(1, sizeof *o);
    if (!o) return NULL;
    o->t = t;
    o->next = v->all;
    v->all = o;
    return o;
}

static void vm_free(vm *v)
{
    while (v->all) {
        obj *n = v->all->next;
        free(v->all->s);
        free(v->all->it);
        free(v->all);
        v->all = n;
    }
    free(v->st);
    free(v->memo);
}

static int push(vm *v, obj *o)
{
    if (!o) return -1;
    if (v->sn == v->scap) {
        size_t nc = v->scap ? v->scap * 2 : 256;
        obj **ns = realloc(v->st, nc * sizeof *ns);
        if (!ns) return -1;
        v->st = ns;
        v->scap = nc;
    }
    v->st[v->sn++] = o;
    return 0;
}

static obj *pop(vm *v) { return v->sn ? v->st[--v->sn] : NULL; }
static obj *top(vm *v) { return v->sn ? v->st[v->sn - 1] : NULL; }

static int add_item(obj *c, obj *x)
{
    if (c->n == c->cap) {
        size_t nc = c->cap ? c->cap * 2 : 8;
        obj **ni = realloc(c->it, nc * sizeof *ni);
        if (!ni) return -1;
        c->it = ni;
        c->cap = nc;
    }
    c->it[c->n++] = x;
    return 0;
}

/* Index of the topmost MARK, or -1. */
static long find_mark(vm *v)
{
    for (long i = (long)v->sn - 1; i >= 0; i--)
        if (v->st[i]->t == O_MARK) return i;
    return -1;
}

static int need(vm *v, size_t n) { return (size_t)(v->end - v->p) >= n; }

static int memo_put(vm *v, size_t idx, obj *o)
{
    if (idx > (1u << 24) || !o) return -1;
    if (idx >= v->mcap) {
        size_t nc = v->mcap ? v->mcap : 256;
        while (nc <= idx) nc *= 2;
        obj **nm = realloc(v->memo, nc * sizeof *nm);
        if (!nm) return -1;
        memset(nm + v->mcap, 0, (nc - v->mcap) * sizeof *nm);
        v->memo = nm;
        v->mcap = nc;
    }
    v->memo[idx] = o;
    return 0;
}

static obj *mkstr(vm *v, const unsigned char *s, size_t n)
{
    obj *o = mk(v, O_STR);
    if (!o) return NULL;
    o->s = malloc(n + 1);
    if (!o->s) return NULL;
    memcpy(o->s, s, n);
    o->s[n] = 0;
    return o;
}

static const char *storage_dtype(const char *g, int64_t *es)
{
    static const struct { const char *name, *dt; int es; } m[] = {
        {"torch FloatStorage", "F32", 4}, {"torch HalfStorage", "F16", 2}, {"torch BFloat16Storage", "BF16", 2},
        {"torch DoubleStorage", "F64", 8}, {"torch LongStorage", "I64", 8}, {"torch IntStorage", "I32", 4},
    };
    for (size_t i = 0; i < sizeof m / sizeof *m; i++)
        if (!strcmp(g, m[i].name)) {
            *es = m[i].es;
            return m[i].dt;
        }
    return NULL;
}

static obj *reduce(vm *v, obj *fn, obj *args)
{
    if (fn->t == O_GLOBAL && !strcmp(fn->s, "collections OrderedDict")) return mk(v, O_DICT);
    if (fn->t == O_GLOBAL && !strcmp(fn->s, "torch._utils _rebuild_parameter") && args->t == O_TUPLE && args->n >= 1)
        return args->it[0];
    if (fn->t == O_GLOBAL && !strcmp(fn->s, "torch._utils _rebuild_tensor_v2") && args->t == O_TUPLE && args->n >= 4) {
        obj *s = args->it[0], *off = args->it[1], *sz = args->it[2], *sd = args->it[3];
        if (s->t != O_STORAGE || off->t != O_INT || sz->t != O_TUPLE || sd->t != O_TUPLE || sz->n != sd->n ||
            sz->n > PK_MAX_DIMS)
            return mk(v, O_OPAQUE);
        obj *t = mk(v, O_TENSOR);
        if (!t) return NULL;
        t->storage = s;
        t->offset = off->i;
        t->ndim = (int)sz->n;
        for (size_t i = 0; i < sz->n; i++) {
            if (sz->it[i]->t != O_INT || sd->it[i]->t != O_INT) return mk(v, O_OPAQUE);
            t->shape[i] = sz->it[i]->i;
            t->stride[i] = sd->it[i]->i;
        }
        return t;
    }
    return mk(v, O_OPAQUE);
}

static int run(vm *v)
{
#define FAIL(...) return err_set(v->err, v->errlen, ERR_FORMAT, __VA_ARGS__)
#define PUSH(o) do { if (push(v, (o))) return err_set(v->err, v->errlen, ERR_NOMEM, "out of memory"); } while (0)
    while (v->p < v->end) {
        unsigned op = *v->p++;
        obj *a, *b, *o;
        long m;
        switch (op) {
        case 0x80: if (!need(v, 1)) FAIL("pickle truncated"); v->p++; break;           /* PROTO */
        case 0x95: if (!need(v, 8)) FAIL("pickle truncated"); v->p += 8; break;        /* FRAME */
        case '}': PUSH(mk(v, O_DICT)); break;
        case ']': PUSH(mk(v, O_LIST)); break;
        case ')': PUSH(mk(v, O_TUPLE)); break;
        case '(': PUSH(mk(v, O_MARK)); break;
        case 'N': PUSH(mk(v, O_NONE)); break;
        case 0x88: case 0x89: o = mk(v, O_INT); if (o) o->i = op == 0x88; PUSH(o); break;
        case 'X': case 'T': case 'B': case 0x8c: case 'U': case 'C': {
            size_t n;
            if (op == 'X' || op == 'T' || op == 'B') {
                if (!need(v, 4)) FAIL("pickle truncated");
                n = le32(v->p);
                v->p += 4;
            } else {
                if (!need(v, 1)) FAIL("pickle truncated");
                n = *v->p++;
            }
            if (!need(v, n)) FAIL("pickle truncated");
            PUSH(mkstr(v, v->p, n));
            v->p += n;
            break;
        }
        case 'q': if (!need(v, 1) || memo_put(v, *v->p++, top(v))) FAIL("bad BINPUT"); break;
        case 'r': if (!need(v, 4) || memo_put(v, le32(v->p), top(v))) FAIL("bad LONG_BINPUT"); v->p += 4; break;
        case 0x94: { size_t k = 0; while (k < v->mcap && v->memo[k]) k++; if (memo_put(v, k, top(v))) FAIL("bad MEMOIZE"); break; }
        case 'h': case 'j': {
            size_t idx;
            if (op == 'h') { if (!need(v, 1)) FAIL("pickle truncated"); idx = *v->p++; }
            else { if (!need(v, 4)) FAIL("pickle truncated"); idx = le32(v->p); v->p += 4; }
            if (idx >= v->mcap || !v->memo[idx]) FAIL("pickle memo %zu unset", idx);
            PUSH(v->memo[idx]);
            break;
        }
        case 'c': {
            const unsigned char *nl1 = memchr(v->p, '\n', (size_t)(v->end - v->p));
            if (!nl1) FAIL("pickle truncated");
            const unsigned char *nl2 = memchr(nl1 + 1, '\n', (size_t)(v->end - nl1 - 1));
            if (!nl2) FAIL("pickle truncated");
            o = mkstr(v, v->p, (size_t)(nl2 - v->p));
            if (!o) return err_set(v->err, v->errlen, ERR_NOMEM, "out of memory");
            o->s[nl1 - v->p] = ' ';
            o->t = O_GLOBAL;
            v->p = nl2 + 1;
            PUSH(o);
            break;
        }
        case 0x93: {
            b = pop(v);
            a = pop(v);
            if (!a || !b || a->t != O_STR || b->t != O_STR) FAIL("bad STACK_GLOBAL");
            o = mk(v, O_GLOBAL);
            if (!o || !(o->s = malloc(strlen(a->s) + strlen(b->s) + 2))) return err_set(v->err, v->errlen, ERR_NOMEM, "out of memory");
            sprintf(o->s, "%s %s", a->s, b->s);
            PUSH(o);
            break;
        }
        case 'K': if (!need(v, 1)) FAIL("pickle truncated"); o = mk(v, O_INT); if (o) o->i = *v->p; v->p++; PUSH(o); break;
        case 'M': if (!need(v, 2)) FAIL("pickle truncated"); o = mk(v, O_INT); if (o) o->i = le16(v->p); v->p += 2; PUSH(o); break;
        case 'J': if (!need(v, 4)) FAIL("pickle truncated"); o = mk(v, O_INT); if (o) o->i = (int32_t)le32(v->p); v->p += 4; PUSH(o); break;
        case 0x8a: {
            if (!need(v, 1)) FAIL("pickle truncated");
            size_t n = *v->p++;
            if (!need(v, n) || n > 8) FAIL("bad LONG1");
            uint64_t x = 0;
            for (size_t k = 0; k < n; k++) x |= (uint64_t)v->p[k] << (8 * k);
            if (n && n < 8 && (v->p[n - 1] & 0x80)) x |= ~(uint64_t)0 << (8 * n);
            v->p += n;
            o = mk(v, O_INT);
            if (o) o->i = (int64_t)x;
            PUSH(o);
            break;
        }
        case 'G': if (!need(v, 8)) FAIL("pickle truncated"); v->p += 8; PUSH(mk(v, O_OPAQUE)); break;
        case 't':
            if ((m = find_mark(v)) < 0) FAIL("TUPLE without MARK");
            o = mk(v, O_TUPLE);
            if (!o) return err_set(v->err, v->errlen, ERR_NOMEM, "out of memory");
            for (size_t k = (size_t)m + 1; k < v->sn; k++)
                if (add_item(o, v->st[k])) return err_set(v->err, v->errlen, ERR_NOMEM, "out of memory");
            v->sn = (size_t)m;
            PUSH(o);
            break;
        case 0x85: case 0x86: case 0x87: {
            size_t n = op - 0x84;
            if (v->sn < n) FAIL("stack underflow");
            o = mk(v, O_TUPLE);
            if (!o) return err_set(v->err, v->errlen, ERR_NOMEM, "out of memory");
            for (size_t k = v->sn - n; k < v->sn; k++)
                if (add_item(o, v->st[k])) return err_set(v->err, v->errlen, ERR_NOMEM, "out of memory");
            v->sn -= n;
            PUSH(o);
            break;
        }
        case 'Q': {
            a = pop(v);
            if (!a || a->t != O_TUPLE || a->n < 5 || a->it[1]->t != O_GLOBAL || a->it[2]->t != O_STR)
                FAIL("unsupported persistent id");
            o = mk(v, O_STORAGE);
            if (!o) return err_set(v->err, v->errlen, ERR_NOMEM, "out of memory");
            const char *dt = storage_dtype(a->it[1]->s, &o->i);
            if (!dt) FAIL("unsupported storage type %s", a->it[1]->s);
            snprintf(o->dtype, sizeof o->dtype, "%s", dt);
            o->s = strdup(a->it[2]->s);
            if (!o->s) return err_set(v->err, v->errlen, ERR_NOMEM, "out of memory");
            PUSH(o);
            break;
        }
        case 'R':
            b = pop(v);
            a = pop(v);
            if (!a || !b) FAIL("stack underflow");
            PUSH(reduce(v, a, b));
            break;
        case 0x81: b = pop(v); a = pop(v); if (!a || !b) FAIL("stack underflow"); PUSH(mk(v, O_OPAQUE)); break;
        case 'b': if (!pop(v) || !top(v)) FAIL("stack underflow"); break; /* BUILD: state ignored */
        case 's':
            b = pop(v);
            a = pop(v);
            o = top(v);
            if (!a || !b || !o) FAIL("stack underflow");
            if (o->t == O_DICT && (add_item(o, a) || add_item(o, b))) return err_set(v->err, v->errlen, ERR_NOMEM, "out of memory");
            break;
        case 'u': case 'e': case 'a':
            if (op == 'a') {
                a = pop(v);
                o = top(v);
                if (!a || !o) FAIL("stack underflow");
                if (o->t == O_LIST && add_item(o, a)) return err_set(v->err, v->errlen, ERR_NOMEM, "out of memory");
                break;
            }
            if ((m = find_mark(v)) < 1) FAIL("SETITEMS/APPENDS without MARK");
            o = v->st[m - 1];
            if ((o->t == O_DICT && op == 'u') || (o->t == O_LIST && op == 'e'))
                for (size_t k = (size_t)m + 1; k < v->sn; k++)
                    if (add_item(o, v->st[k])) return err_set(v->err, v->errlen, ERR_NOMEM, "out of memory");
            v->sn = (size_t)m;
            break;
        case '.': return 0;
        default: FAIL("unsupported pickle opcode 0x%02x", op);
        }
    }
    FAIL("pickle has no STOP");
#undef FAIL
#undef PUSH
}

/* ---- output -------------------------------------------------------------------------- */

typedef struct outt {
    char name[PK_MAX_NAME];
    const obj *t;
    const zent *z;
    uint64_t nbytes, src;
} outt;

static int json_str(char *dst, size_t cap, size_t *o, const char *s)
{
    if (*o + 1 >= cap) return -1;
    dst[(*o)++] = '"';
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        int k = c == '"' || c == '\\' ? snprintf(dst + *o, cap - *o, "\\%c", c)
                : c < 0x20          ? snprintf(dst + *o, cap - *o, "\\u%04x", c)
                                    : snprintf(dst + *o, cap - *o, "%c", c);
        if (k < 0 || *o + (size_t)k >= cap) return -1;
        *o += (size_t)k;
    }
    if (*o + 1 >= cap) return -1;
    dst[(*o)++] = '"';
    return 0;
}

static int add_tensor(outt *ts, size_t *nt, const zipf *z, const char *name, const obj *t, char *err, size_t errlen)
{
    if (*nt >= PK_MAX_TENSORS) return err_set(err, errlen, ERR_TOOBIG, "more than %d tensors", PK_MAX_TENSORS);
    if (strlen(name) >= PK_MAX_NAME) return err_set(err, errlen, ERR_TOOBIG, "tensor name too long");
    const obj *s = t->storage;
    char key[600];
    snprintf(key, sizeof key, "data/%s", s->s);
    const zent *e = zip_find(z, key);
    if (!e) return err_set(err, errlen, ERR_FORMAT, "%s: storage %s missing", name, s->s);
    int64_t numel = 1, want = 1;
    for (int i = t->ndim - 1; i >= 0; i--) {
        if (t->shape[i] < 0) return err_set(err, errlen, ERR_FORMAT, "%s: negative size", name);
        if (t->shape[i] > 1 && t->stride[i] != want)
            return err_set(err, errlen, ERR_FORMAT, "%s: not contiguous (unsupported)", name);
        want *= t->shape[i];
        numel *= t->shape[i];
        if (numel > (int64_t)1 << 40) return err_set(err, errlen, ERR_FORMAT, "%s: too large", name);
    }
    uint64_t nb = (uint64_t)numel * (uint64_t)s->i, src = (uint64_t)t->offset * (uint64_t)s->i;
    if (t->offset < 0 || src + nb > e->size) return err_set(err, errlen, ERR_FORMAT, "%s: outside its storage", name);
    outt *o = &ts[(*nt)++];
    snprintf(o->name, sizeof o->name, "%s", name);
    o->t = t;
    o->z = e;
    o->nbytes = nb;
    o->src = e->data + src;
    return 0;
}

static int write_all(int fd, const void *b, size_t n)
{
    size_t done = 0;
    while (done < n) {
        ssize_t k = write(fd, (const char *)b + done, n - done);
        if (k <= 0) return -1;
        done += (size_t)k;
    }
    return 0;
}

int kk_pth_to_safetensors(const char *pth_path, const char *out_path, size_t *ntensors, char *err, size_t errlen)
{
    if (ntensors) *ntensors = 0;
    zipf z;
    vm v;
    memset(&v, 0, sizeof v);
    v.err = err;
    v.errlen = errlen;
    outt *ts = NULL;
    char *hdr = NULL, *buf = NULL;
    unsigned char *pk = NULL;
    int fd = -1, rc;
    char tmp[4200];
    tmp[0] = 0;
    if ((rc = zip_open(&z, pth_path, err, errlen))) goto out;
    const zent *pe = zip_find(&z, "data.pkl");
    if (!pe) {
        rc = err_set(err, errlen, ERR_FORMAT, "%s: no data.pkl (not a torch.save zip)", pth_path);
        goto out;
    }
    if (pe->size > PK_MAX_PICKLE) {
        rc = err_set(err, errlen, ERR_TOOBIG, "%s: pickle over %u bytes", pth_path, PK_MAX_PICKLE);
        goto out;
    }
    pk = malloc(pe->size ? pe->size : 1);
    if (!pk || rd(z.fd, pk, pe->size, pe->data)) {
        rc = err_set(err, errlen, pk ? ERR_IO : ERR_NOMEM, "%s: cannot read data.pkl", pth_path);
        goto out;
    }
    v.p = pk;
    v.end = pk + pe->size;
    if ((rc = run(&v))) goto out;
    const obj *root = top(&v);
    if (!root || root->t != O_DICT) {
        rc = err_set(err, errlen, ERR_FORMAT, "%s: checkpoint is not a dict", pth_path);
        goto out;
    }
    ts = calloc(PK_MAX_TENSORS, sizeof *ts);
    if (!ts) {
        rc = err_set(err, errlen, ERR_NOMEM, "out of memory");
        goto out;
    }
    size_t nt = 0;
    for (size_t i = 0; i + 1 < root->n; i += 2) {
        const obj *k = root->it[i], *val = root->it[i + 1];
        if (k->t != O_STR) continue;
        char name[PK_MAX_NAME * 2];
        if (val->t == O_TENSOR) {
            if ((rc = add_tensor(ts, &nt, &z, k->s, val, err, errlen))) goto out;
        } else if (val->t == O_DICT) {
            for (size_t j = 0; j + 1 < val->n; j += 2) {
                const obj *k2 = val->it[j], *t2 = val->it[j + 1];
                if (k2->t != O_STR || t2->t != O_TENSOR) continue;
                snprintf(name, sizeof name, "%s.%s", k->s, k2->s);
                if ((rc = add_tensor(ts, &nt, &z, name, t2, err, errlen))) goto out;
            }
        }
    }
    if (!nt) {
        rc = err_set(err, errlen, ERR_FORMAT, "%s: no tensors found", pth_path);
        goto out;
    }
    /* header */
    size_t hcap = nt * (PK_MAX_NAME + 200) + 64, o = 0;
    hdr = malloc(hcap);
    if (!hdr) {
        rc = err_set(err, errlen, ERR_NOMEM, "out of memory");
        goto out;
    }
    hdr[o++] = '{';
    uint64_t data_off = 0;
    for (size_t i = 0; i < nt; i++) {
        if (i) hdr[o++] = ',';
        if (json_str(hdr, hcap, &o, ts[i].name)) goto toolong;
        int k = snprintf(hdr + o, hcap - o, ":{\"dtype\":\"%s\",\"shape\":[", ts[i].t->storage->dtype);
        o += (size_t)k;
        for (int d = 0; d < ts[i].t->ndim; d++) {
            k = snprintf(hdr + o, hcap - o, "%s%lld", d ? "," : "", (long long)ts[i].t->shape[d]);
            o += (size_t)k;
        }
        k = snprintf(hdr + o, hcap - o, "],\"data_offsets\":[%llu,%llu]}", (unsigned long long)data_off,
                     (unsigned long long)(data_off + ts[i].nbytes));
        o += (size_t)k;
        if (o + 8 >= hcap) goto toolong;
        data_off += ts[i].nbytes;
    }
    hdr[o++] = '}';
    while (o % 8) hdr[o++] = ' ';
    if (snprintf(tmp, sizeof tmp, "%s.tmp", out_path) >= (int)sizeof tmp) goto toolong;
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        rc = err_set(err, errlen, ERR_IO, "cannot create %s", tmp);
        goto out;
    }
    unsigned char len8[8];
    for (int i = 0; i < 8; i++) len8[i] = (unsigned char)((uint64_t)o >> (8 * i));
    buf = malloc(1u << 20);
    if (!buf) {
        rc = err_set(err, errlen, ERR_NOMEM, "out of memory");
        goto out;
    }
    if (write_all(fd, len8, 8) || write_all(fd, hdr, o)) goto ioerr;
    for (size_t i = 0; i < nt; i++) {
        for (uint64_t done = 0; done < ts[i].nbytes;) {
            size_t n = ts[i].nbytes - done < (1u << 20) ? (size_t)(ts[i].nbytes - done) : (1u << 20);
            if (rd(z.fd, buf, n, ts[i].src + done) || write_all(fd, buf, n)) goto ioerr;
            done += n;
        }
    }
    if (fsync(fd)) goto ioerr;
    close(fd);
    fd = -1;
    if (rename(tmp, out_path)) goto ioerr;
    tmp[0] = 0;
    if (ntensors) *ntensors = nt;
    rc = 0;
    goto out;
toolong:
    rc = err_set(err, errlen, ERR_TOOBIG, "safetensors header too long");
    goto out;
ioerr:
    rc = err_set(err, errlen, ERR_IO, "cannot write %s", tmp);
out:
    if (fd >= 0) close(fd);
    if (rc && tmp[0]) unlink(tmp);
    free(buf);
    free(hdr);
    free(ts);
    free(pk);
    vm_free(&v);
    zip_close(&z);
    return rc;
}
