/* io/pickle: restricted interpreter for torch state-dict pickles (see pickle.h). Values live in one
 * list owned by the interpreter and are all freed at the end; nothing is ever called or imported. */
#include "io/pickle.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { V_NONE, V_BOOL, V_INT, V_STR, V_TUPLE, V_LIST, V_DICT, V_GLOBAL, V_STORAGE, V_TENSOR };
/* which GLOBAL */
enum { G_REBUILD_TENSOR = 1, G_REBUILD_PARAM, G_ODICT, G_STORAGE_TYPE };

typedef struct pv {
    int kind;
    struct pv *next_alloc;
    int64_t i;              /* INT, BOOL; GLOBAL: which; STORAGE: numel */
    char *s;                /* STR (len in slen); STORAGE: key */
    size_t slen;
    struct pv **items;      /* TUPLE, LIST; DICT as key, value pairs */
    int n, cap;
    hb_dtype dt;            /* GLOBAL storage type, STORAGE, TENSOR */
    struct pv *storage;     /* TENSOR */
    int64_t offset;
    int ndim;
    int64_t shape[HB_MAX_DIMS], stride[HB_MAX_DIMS];
} pv;

typedef struct {
    const char *where;
    const uint8_t *p, *end, *start;
    pv *all;
    pv **stack;
    int sp, scap;
    int *marks;
    int nmarks, mcap;
    pv **memo;
    size_t nmemo, memo_len; /* capacity, number of slots set (MEMOIZE's next index) */
    pv *none;
} pk;

static int perr(pk *k, const char *fmt, const char *a, size_t pos) {
    char msg[512];
    snprintf(msg, sizeof msg, fmt, a);
    return hb_error("%s: data.pkl: %s (at byte %zu)", k->where, msg, pos);
}

static pv *newv(pk *k, int kind) {
    pv *v = calloc(1, sizeof *v);
    if (!v) return NULL;
    v->kind = kind;
    v->next_alloc = k->all;
    k->all = v;
    return v;
}

static int push(pk *k, pv *v) {
    if (!v) return hb_error("%s: data.pkl: out of memory", k->where);
    if (k->sp == k->scap) {
        int nc = k->scap ? k->scap * 2 : 64;
        pv **s = realloc(k->stack, (size_t)nc * sizeof *s);
        if (!s) return hb_error("%s: data.pkl: out of memory", k->where);
        k->stack = s;
        k->scap = nc;
    }
    k->stack[k->sp++] = v;
    return 0;
}

static int add_item(pk *k, pv *c, pv *x) {
    if (c->n == c->cap) {
        int nc = c->cap ? c->cap * 2 : 8;
        pv **s = realloc(c->items, (size_t)nc * sizeof *s);
        if (!s) return hb_error("%s: data.pkl: out of memory", k->where);
        c->items = s;
        c->cap = nc;
    }
    c->items[c->n++] = x;
    return 0;
}

static void free_all(pk *k) {
    for (pv *v = k->all, *nx; v; v = nx) {
        nx = v->next_alloc;
        free(v->s);
        free(v->items);
        free(v);
    }
    free(k->stack);
    free(k->marks);
    free(k->memo);
}

static const struct { const char *name; hb_dtype dt; } k_storages[] = {
    {"FloatStorage", HB_F32}, {"DoubleStorage", HB_F64}, {"HalfStorage", HB_F16}, {"BFloat16Storage", HB_BF16},
    {"LongStorage", HB_I64},  {"IntStorage", HB_I32},    {"ShortStorage", HB_I16}, {"CharStorage", HB_I8},
    {"ByteStorage", HB_U8},   {"BoolStorage", HB_BOOL},
};

static pv *make_global(pk *k, const char *mod, const char *name, size_t pos) {
    int which = 0;
    hb_dtype dt = HB_F32;
    if (!strcmp(mod, "torch._utils") && !strcmp(name, "_rebuild_tensor_v2")) which = G_REBUILD_TENSOR;
    else if (!strcmp(mod, "torch._utils") && !strcmp(name, "_rebuild_parameter")) which = G_REBUILD_PARAM;
    else if (!strcmp(mod, "collections") && !strcmp(name, "OrderedDict")) which = G_ODICT;
    else if (!strcmp(mod, "torch"))
        for (size_t i = 0; i < sizeof k_storages / sizeof k_storages[0]; i++)
            if (!strcmp(name, k_storages[i].name)) { which = G_STORAGE_TYPE; dt = k_storages[i].dt; }
    if (!which) {
        char full[300];
        snprintf(full, sizeof full, "%.140s.%.140s", mod, name);
        perr(k, "forbidden global '%s' (only torch tensor/storage rebuilds and collections.OrderedDict are allowed)",
             full, pos);
        return NULL;
    }
    pv *v = newv(k, V_GLOBAL);
    if (!v) { hb_error("%s: data.pkl: out of memory", k->where); return NULL; }
    v->i = which;
    v->dt = dt;
    return v;
}

static bool need(pk *k, size_t n) { return (size_t)(k->end - k->p) >= n; }

static uint64_t rd_le(const uint8_t *p, int n) {
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}

static pv *pop(pk *k) { return k->sp > 0 ? k->stack[--k->sp] : NULL; }

/* Pops everything above the last MARK into a new container of `kind`. */
static pv *pop_to_mark(pk *k, int kind, size_t pos) {
    if (k->nmarks == 0) { perr(k, "%s without MARK", "collection", pos); return NULL; }
    int m = k->marks[--k->nmarks];
    if (m > k->sp) { perr(k, "%s: MARK above stack", "collection", pos); return NULL; }
    pv *c = newv(k, kind);
    if (!c) { hb_error("%s: data.pkl: out of memory", k->where); return NULL; }
    for (int i = m; i < k->sp; i++) if (add_item(k, c, k->stack[i]) != 0) return NULL;
    k->sp = m;
    return c;
}

static int as_int(const pv *v, int64_t *out) {
    if (!v || (v->kind != V_INT && v->kind != V_BOOL)) return -1;
    *out = v->i;
    return 0;
}

static int rebuild_tensor(pk *k, pv *args, size_t pos, pv **out) {
    if (args->kind != V_TUPLE || args->n < 4) return perr(k, "%s: expects (storage, offset, size, stride, ...)", "_rebuild_tensor_v2", pos);
    pv *st = args->items[0], *sz = args->items[2], *sd = args->items[3];
    int64_t off;
    if (st->kind != V_STORAGE) return perr(k, "%s: first argument is not a storage", "_rebuild_tensor_v2", pos);
    if (as_int(args->items[1], &off) != 0 || off < 0) return perr(k, "%s: bad storage offset", "_rebuild_tensor_v2", pos);
    if (sz->kind != V_TUPLE || sd->kind != V_TUPLE || sz->n != sd->n)
        return perr(k, "%s: size and stride must be tuples of equal length", "_rebuild_tensor_v2", pos);
    if (sz->n > HB_MAX_DIMS) return perr(k, "%s: too many dimensions", "_rebuild_tensor_v2", pos);
    pv *t = newv(k, V_TENSOR);
    if (!t) return hb_error("%s: data.pkl: out of memory", k->where);
    t->storage = st;
    t->dt = st->dt;
    t->offset = off;
    t->ndim = sz->n;
    for (int i = 0; i < sz->n; i++) {
        if (as_int(sz->items[i], &t->shape[i]) != 0 || t->shape[i] < 0 || as_int(sd->items[i], &t->stride[i]) != 0)
            return perr(k, "%s: size/stride entries must be integers, sizes non-negative", "_rebuild_tensor_v2", pos);
    }
    *out = t;
    return 0;
}

static int op_reduce(pk *k, size_t pos) {
    pv *args = pop(k), *f = pop(k);
    if (!args || !f) return perr(k, "%s on a short stack", "REDUCE", pos);
    if (f->kind != V_GLOBAL) return perr(k, "%s of something that is not an allowed global", "REDUCE", pos);
    pv *r = NULL;
    switch (f->i) {
    case G_ODICT:
        if (args->kind != V_TUPLE || args->n != 0) return perr(k, "%s with arguments", "OrderedDict()", pos);
        r = newv(k, V_DICT);
        break;
    case G_REBUILD_TENSOR:
        if (rebuild_tensor(k, args, pos, &r) != 0) return -1;
        break;
    case G_REBUILD_PARAM:
        if (args->kind != V_TUPLE || args->n < 1 || args->items[0]->kind != V_TENSOR)
            return perr(k, "%s: first argument is not a tensor", "_rebuild_parameter", pos);
        r = args->items[0];
        break;
    default:
        return perr(k, "%s: a storage type cannot be called", "REDUCE", pos);
    }
    return push(k, r);
}

static int op_persid(pk *k, size_t pos) {
    pv *t = pop(k);
    if (!t) return perr(k, "%s on an empty stack", "BINPERSID", pos);
    if (t->kind != V_TUPLE || t->n != 5 || t->items[0]->kind != V_STR || strcmp(t->items[0]->s, "storage") ||
        t->items[1]->kind != V_GLOBAL || t->items[1]->i != G_STORAGE_TYPE || t->items[2]->kind != V_STR ||
        t->items[4]->kind != V_INT || t->items[4]->i < 0)
        return perr(k, "%s: persistent id is not ('storage', torch.<T>Storage, key, location, numel)", "BINPERSID", pos);
    pv *s = newv(k, V_STORAGE);
    if (!s) return hb_error("%s: data.pkl: out of memory", k->where);
    s->dt = t->items[1]->dt;
    s->i = t->items[4]->i;
    s->s = strdup(t->items[2]->s);
    if (!s->s) return hb_error("%s: data.pkl: out of memory", k->where);
    return push(k, s);
}

static int memo_put(pk *k, uint64_t idx, size_t pos) {
    if (k->sp == 0) return perr(k, "%s on an empty stack", "PUT", pos);
    if (idx > (uint64_t)(k->end - k->start)) return perr(k, "%s index out of range", "PUT", pos);
    if (idx >= k->nmemo) {
        size_t nn = (size_t)idx + 1 > k->nmemo * 2 ? (size_t)idx + 1 : k->nmemo * 2;
        pv **m = realloc(k->memo, nn * sizeof *m);
        if (!m) return hb_error("%s: data.pkl: out of memory", k->where);
        memset(m + k->nmemo, 0, (nn - k->nmemo) * sizeof *m);
        k->memo = m;
        k->nmemo = nn;
    }
    if (!k->memo[idx]) k->memo_len++;
    k->memo[idx] = k->stack[k->sp - 1];
    return 0;
}

static int memo_get(pk *k, uint64_t idx, size_t pos) {
    if (idx >= k->nmemo || !k->memo[idx]) return perr(k, "%s of an unset memo slot", "GET", pos);
    return push(k, k->memo[idx]);
}

static int push_str(pk *k, size_t len, size_t pos) {
    if (!need(k, len)) return perr(k, "%s runs past the end (truncated)", "string", pos);
    pv *v = newv(k, V_STR);
    if (!v || !(v->s = malloc(len + 1))) return hb_error("%s: data.pkl: out of memory", k->where);
    memcpy(v->s, k->p, len);
    v->s[len] = 0;
    v->slen = len;
    k->p += len;
    return push(k, v);
}

static int read_line(pk *k, char *buf, size_t cap, size_t pos) {
    const uint8_t *nl = memchr(k->p, '\n', (size_t)(k->end - k->p));
    if (!nl) return perr(k, "%s: no newline (truncated)", "GLOBAL", pos);
    size_t n = (size_t)(nl - k->p);
    if (n >= cap) return perr(k, "%s: name too long", "GLOBAL", pos);
    memcpy(buf, k->p, n);
    buf[n] = 0;
    k->p = nl + 1;
    return 0;
}

static const char *op_name(uint8_t op) {
    switch (op) {
    case 'c': return "GLOBAL"; case 'i': return "INST"; case 'o': return "OBJ"; case 0x81: return "NEWOBJ";
    case 0x92: return "NEWOBJ_EX"; case 'R': return "REDUCE"; case 'P': return "PERSID"; case 'G': return "BINFLOAT";
    case 'F': return "FLOAT"; case 'I': return "INT"; case 'L': return "LONG"; case 'S': return "STRING";
    case 'V': return "UNICODE"; case 'B': return "BINBYTES"; case 'C': return "SHORT_BINBYTES";
    case 0x8b: return "LONG4"; case 0x8e: return "BINBYTES8"; case 0x8f: return "EMPTY_SET"; case 0x90: return "ADDITEMS";
    case 0x91: return "FROZENSET"; case 0x95: return "FRAME"; case 0x96: return "BYTEARRAY8";
    case 0x97: return "NEXT_BUFFER"; case 0x98: return "READONLY_BUFFER"; case 'T': return "BINSTRING";
    case 'U': return "SHORT_BINSTRING"; case 'd': return "DICT"; case 'l': return "LIST"; case 'p': return "PUT";
    case 'g': return "GET"; case '0': return "POP"; case '1': return "POP_MARK"; case '2': return "DUP";
    case 0x82: return "EXT1"; case 0x83: return "EXT2"; case 0x84: return "EXT4"; default: return "unknown";
    }
}

/* The opcode groups of run(): each returns 0, -1 with an error, or NOT_MINE for an opcode of another group. */
enum { NOT_MINE = 1 };

/* PROTO, FRAME: stream framing, nothing to build. */
static int op_framing(pk *k, uint8_t op, size_t pos) {
    if (op == 0x80) { /* PROTO */
        if (!need(k, 1)) return perr(k, "%s truncated", "PROTO", pos);
        if (*k->p > 5) return perr(k, "%s: unsupported protocol", "PROTO", pos);
        k->p++;
        return 0;
    }
    if (op == 0x95) { /* FRAME (protocol 4): an 8-byte length hint, nothing to do */
        if (!need(k, 8)) return perr(k, "%s truncated", "FRAME", pos);
        k->p += 8;
        return 0;
    }
    return NOT_MINE;
}

static int push_mark(pk *k) {
    if (k->nmarks == k->mcap) {
        int nc = k->mcap ? k->mcap * 2 : 16;
        int *m = realloc(k->marks, (size_t)nc * sizeof *m);
        if (!m) return hb_error("%s: data.pkl: out of memory", k->where);
        k->marks = m;
        k->mcap = nc;
    }
    k->marks[k->nmarks++] = k->sp;
    return 0;
}

/* BININT, BININT1, BININT2, LONG1: the integer operand. */
static int read_int(pk *k, uint8_t op, size_t pos, int64_t *val) {
    static const struct { uint8_t op; int bytes; const char *name; } fixed[] = {
        {'J', 4, "BININT"}, {'K', 1, "BININT1"}, {'M', 2, "BININT2"}};
    for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++) {
        if (op != fixed[i].op) continue;
        if (!need(k, (size_t)fixed[i].bytes)) return perr(k, "%s truncated", fixed[i].name, pos);
        uint64_t u = rd_le(k->p, fixed[i].bytes);
        *val = op == 'J' ? (int32_t)(uint32_t)u : (int64_t)u;
        k->p += fixed[i].bytes;
        return 0;
    }
    if (!need(k, 1)) return perr(k, "%s truncated", "LONG1", pos);
    int n = *k->p++;
    if (n > 8) return perr(k, "%s: integer wider than 64 bits", "LONG1", pos);
    if (!need(k, (size_t)n)) return perr(k, "%s truncated", "LONG1", pos);
    uint64_t u = n ? rd_le(k->p, n) : 0;
    if (n > 0 && n < 8 && (k->p[n - 1] & 0x80)) u |= ~(uint64_t)0 << (8 * n); /* sign-extend */
    *val = (int64_t)u;
    k->p += n;
    return 0;
}

/* Empty containers, None, booleans, MARK, strings and integers: one value pushed (MARK: a mark). */
static int op_value(pk *k, uint8_t op, size_t pos) {
    switch (op) {
    case '}': return push(k, newv(k, V_DICT));
    case ')': return push(k, newv(k, V_TUPLE));
    case ']': return push(k, newv(k, V_LIST));
    case 'N': return push(k, k->none);
    case 0x88: case 0x89: { /* NEWTRUE, NEWFALSE */
        pv *v = newv(k, V_BOOL);
        if (v) v->i = op == 0x88;
        return push(k, v);
    }
    case '(': return push_mark(k); /* MARK */
    case 'X': { /* BINUNICODE */
        if (!need(k, 4)) return perr(k, "%s truncated", "BINUNICODE", pos);
        size_t len = (size_t)rd_le(k->p, 4);
        k->p += 4;
        return push_str(k, len, pos);
    }
    case 0x8c: /* SHORT_BINUNICODE */
        if (!need(k, 1)) return perr(k, "%s truncated", "SHORT_BINUNICODE", pos);
        return push_str(k, *k->p++, pos);
    case 'J': case 'K': case 'M': case 0x8a: { /* BININT, BININT1, BININT2, LONG1 */
        int64_t val = 0;
        if (read_int(k, op, pos, &val)) return -1;
        pv *v = newv(k, V_INT);
        if (v) v->i = val;
        return push(k, v);
    }
    default: return NOT_MINE;
    }
}

/* TUPLE, TUPLE1..3: a tuple from the stack. */
static int op_tuple(pk *k, uint8_t op, size_t pos) {
    if (op == 't') {
        pv *t = pop_to_mark(k, V_TUPLE, pos);
        return t ? push(k, t) : -1;
    }
    if (op < 0x85 || op > 0x87) return NOT_MINE;
    int n = op - 0x84;
    if (k->sp < n) return perr(k, "%s on a short stack", "TUPLEn", pos);
    pv *t = newv(k, V_TUPLE);
    if (!t) return hb_error("%s: data.pkl: out of memory", k->where);
    for (int i = k->sp - n; i < k->sp; i++)
        if (add_item(k, t, k->stack[i]) != 0) return -1;
    k->sp -= n;
    return push(k, t);
}

/* BUILD, SETITEM(S), APPEND(S): fill the dict or list on top of the stack. */
static int op_fill(pk *k, uint8_t op, size_t pos) {
    pv *top = k->sp > 0 ? k->stack[k->sp - 1] : NULL, *v, *key, *items;
    switch (op) {
    case 'b': /* BUILD: state for a dict (torch's _metadata) or a tensor is ignored */
        if (!pop(k) || k->sp < 1) return perr(k, "%s on a short stack", "BUILD", pos);
        top = k->stack[k->sp - 1];
        if (top->kind != V_DICT && top->kind != V_TENSOR)
            return perr(k, "%s on an object that is not a dict or tensor", "BUILD", pos);
        return 0;
    case 's': /* SETITEM */
        v = pop(k), key = pop(k);
        if (!v || !key || k->sp < 1 || k->stack[k->sp - 1]->kind != V_DICT)
            return perr(k, "%s without a dict", "SETITEM", pos);
        top = k->stack[k->sp - 1];
        return add_item(k, top, key) != 0 || add_item(k, top, v) != 0 ? -1 : 0;
    case 'u': /* SETITEMS */
        if (!(items = pop_to_mark(k, V_LIST, pos))) return -1;
        if (k->sp < 1 || k->stack[k->sp - 1]->kind != V_DICT || items->n % 2)
            return perr(k, "%s without a dict or with an odd item count", "SETITEMS", pos);
        break;
    case 'a': /* APPEND */
        v = pop(k);
        if (!v || k->sp < 1 || k->stack[k->sp - 1]->kind != V_LIST) return perr(k, "%s without a list", "APPEND", pos);
        return add_item(k, k->stack[k->sp - 1], v);
    case 'e': /* APPENDS */
        if (!(items = pop_to_mark(k, V_LIST, pos))) return -1;
        if (k->sp < 1 || k->stack[k->sp - 1]->kind != V_LIST) return perr(k, "%s without a list", "APPENDS", pos);
        break;
    default: return NOT_MINE;
    }
    top = k->stack[k->sp - 1]; /* SETITEMS, APPENDS: every marked item into it */
    for (int i = 0; i < items->n; i++)
        if (add_item(k, top, items->items[i]) != 0) return -1;
    return 0;
}

/* GLOBAL, STACK_GLOBAL, BINPERSID, REDUCE: the classes, storages and tensors of a state dict. */
static int op_object(pk *k, uint8_t op, size_t pos) {
    switch (op) {
    case 'c': { /* GLOBAL module\nname\n */
        char mod[160], name[160];
        if (read_line(k, mod, sizeof mod, pos) != 0 || read_line(k, name, sizeof name, pos) != 0) return -1;
        pv *g = make_global(k, mod, name, pos);
        return g ? push(k, g) : -1;
    }
    case 0x93: { /* STACK_GLOBAL */
        pv *name = pop(k), *mod = pop(k);
        if (!name || !mod || name->kind != V_STR || mod->kind != V_STR || strlen(name->s) != name->slen ||
            strlen(mod->s) != mod->slen)
            return perr(k, "%s needs two strings", "STACK_GLOBAL", pos);
        pv *g = make_global(k, mod->s, name->s, pos);
        return g ? push(k, g) : -1;
    }
    case 'Q': return op_persid(k, pos);
    case 'R': return op_reduce(k, pos);
    default: return NOT_MINE;
    }
}

/* BINPUT, LONG_BINPUT, MEMOIZE, BINGET, LONG_BINGET. */
static int op_memo(pk *k, uint8_t op, size_t pos) {
    const bool put = op == 'q' || op == 'r' || op == 0x94, get = op == 'h' || op == 'j';
    if (!put && !get) return NOT_MINE;
    if (op == 0x94) return memo_put(k, k->memo_len, pos);
    const int bytes = op == 'q' || op == 'h' ? 1 : 4;
    const char *name = op == 'q' ? "BINPUT" : op == 'r' ? "LONG_BINPUT" : op == 'h' ? "BINGET" : "LONG_BINGET";
    if (!need(k, (size_t)bytes)) return perr(k, "%s truncated", name, pos);
    const uint64_t idx = rd_le(k->p, bytes);
    k->p += bytes;
    return put ? memo_put(k, idx, pos) : memo_get(k, idx, pos);
}

static int run(pk *k, pv **result) {
    static int (*const groups[])(pk *, uint8_t, size_t) = {op_framing, op_value, op_tuple, op_fill, op_object, op_memo};
    for (;;) {
        if (k->p >= k->end) return hb_error("%s: data.pkl: truncated pickle (no STOP opcode)", k->where);
        size_t pos = (size_t)(k->p - k->start);
        uint8_t op = *k->p++;
        if (op == '.') { /* STOP */
            if (k->sp < 1) return perr(k, "%s on an empty stack", "STOP", pos);
            *result = k->stack[k->sp - 1];
            return 0;
        }
        int rc = NOT_MINE;
        for (size_t g = 0; rc == NOT_MINE && g < sizeof groups / sizeof groups[0]; g++) rc = groups[g](k, op, pos);
        if (rc == NOT_MINE) {
            char what[64];
            snprintf(what, sizeof what, "0x%02x (%s)", op, op_name(op));
            return perr(k, "unsupported pickle opcode %s; only a plain state dict of tensors can be read", what, pos);
        }
        if (rc != 0) return -1;
    }
}

/* FSDP-wrapped training checkpoints name weights "model._fsdp_wrapped_module.blocks.0..."; the wrapper
 * segments are deleted everywhere in the name, as the release's loaders do. */
static void drop_fsdp_segments(char *name) {
    static const char seg[] = "_fsdp_wrapped_module.";
    const size_t n = sizeof seg - 1;
    char *p;
    while ((p = strstr(name, seg))) memmove(p, p + n, strlen(p + n) + 1);
}

/* Collect the tensors of dict d (string keys only). */
static int count_tensors(const pv *d) {
    int n = 0;
    for (int i = 0; i + 1 < d->n; i += 2) n += d->items[i + 1]->kind == V_TENSOR;
    return n;
}

int hb__pkl_read_state_dict(const char *where, const uint8_t *buf, size_t len, pkl_tensor **out, int *nout) {
    *out = NULL;
    *nout = 0;
    pk k;
    memset(&k, 0, sizeof k);
    k.where = where;
    k.p = k.start = buf;
    k.end = buf + len;
    k.none = newv(&k, V_NONE);
    pv *root = NULL;
    int rc = k.none ? run(&k, &root) : hb_error("%s: out of memory", where);
    if (rc == 0 && root->kind != V_DICT) rc = hb_error("%s: data.pkl: the pickle is not a dict of tensors", where);
    if (rc == 0 && count_tensors(root) == 0) {
        /* training dicts: the EMA generator before the raw one (Self-Forcing / Hummingbird-XTX --use_ema) */
        static const char *const nested[] = {"state_dict", "model", "module", "generator_ema", "generator", "ema"};
        for (size_t j = 0; j < sizeof nested / sizeof nested[0] && rc == 0; j++) {
            for (int i = 0; i + 1 < root->n; i += 2) {
                pv *key = root->items[i], *v = root->items[i + 1];
                if (key->kind == V_STR && !strcmp(key->s, nested[j]) && v->kind == V_DICT && count_tensors(v) > 0) {
                    hb_log(HB_LOG_DEBUG, "%s: using the state dict under '%s'", where, nested[j]);
                    root = v;
                    goto found;
                }
            }
        }
    found:
        if (count_tensors(root) == 0) rc = hb_error("%s: data.pkl: the dict holds no tensors", where);
    }
    int nt = rc == 0 ? count_tensors(root) : 0;
    pkl_tensor *ts = NULL;
    if (rc == 0 && !(ts = calloc((size_t)nt, sizeof *ts))) rc = hb_error("%s: out of memory", where);
    int n = 0;
    for (int i = 0; rc == 0 && i + 1 < root->n; i += 2) {
        pv *key = root->items[i], *v = root->items[i + 1];
        if (v->kind != V_TENSOR) {
            hb_log(HB_LOG_DEBUG, "%s: skipping non-tensor entry %d of the state dict", where, i / 2);
            continue;
        }
        if (key->kind != V_STR || strlen(key->s) != key->slen || key->slen == 0) {
            rc = hb_error("%s: data.pkl: state dict key %d is not a non-empty string", where, i / 2);
            break;
        }
        pkl_tensor *t = &ts[n++];
        t->name = strdup(key->s);
        if (t->name) drop_fsdp_segments(t->name);
        t->storage_key = strdup(v->storage->s);
        if (!t->name || !t->storage_key) { rc = hb_error("%s: out of memory", where); break; }
        t->dtype = v->dt;
        t->storage_numel = v->storage->i;
        t->offset = v->offset;
        t->ndim = v->ndim;
        memcpy(t->shape, v->shape, sizeof t->shape);
        memcpy(t->stride, v->stride, sizeof t->stride);
    }
    free_all(&k);
    if (rc != 0) { hb__pkl_free(ts, n); return -1; }
    *out = ts;
    *nout = n;
    return 0;
}

void hb__pkl_free(pkl_tensor *t, int n) {
    if (!t) return;
    for (int i = 0; i < n; i++) { free(t[i].name); free(t[i].storage_key); }
    free(t);
}
