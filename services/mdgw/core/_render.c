/* mdgw.core._render: the book and bbo payloads (core/wire/topics.py), in C.

   book(head, depth_text, seq, pub_ns, recv_ns, frame_ints, depth, bids, asks) returns the
   bytes BookTemplate.render makes from the same ints (frame_ints: the frame's (u,
   bybit_seq, ts, cts), below) and the joined first `depth` texts of
   the two level-text lists; bbo(head, seq, pub_ns, recv_ns, u, ts, bid, ask, bybit_seq,
   depth) the bytes BboTemplate.render makes; book_bbo(...) both of one frame at once, as a
   tuple, its four shared ints (pub_ns, recv_ns, u, ts) written once for the two
   (BookTemplate.render_with_bbo). Both take the frame's four ints (u, bybit_seq, ts, cts)
   as the one tuple the decoder made (BookFrame.ints). Each returns None, with no exception set, for
   anything it does not write exactly as the Python does: an int that is not an exact int
   within int64 (a bool prints "True"; a larger int is left to Python), a text that is not
   an exact compact ASCII str (the Python encodes others to UTF-8, or formats a str
   subclass its own way), a level list that is not a list, a side that is not a tuple of
   two. The templates then render in Python. The payload's shape stays written in Python,
   in topics.py, and tests/core/test_render_payloads.py holds this file to it, byte for
   byte, on generated input against topics.py run as pure Python.

   Why C here (docs/performance.md, round 2): compiled by mypyc, a published frame turned
   four 19-digit ints into a str, joined the level texts into two more, built each payload
   as a str and encoded it to bytes: four copies of every byte and an allocation each. Here
   each payload is one bytes object, written once. And on orderbook.1, where nearly every
   frame publishes a book and a bbo, one call for both: mypyc boxes the shared ints once,
   not once per payload, and they are turned into text once. The frame's own four are not
   boxed at all: they arrive as the tuple of ints scan_book made (mypyc keeps a frame's int
   fields native, so passing each would box it again).

   Nothing here calls Python code (no format(), no __index__), so the lists cannot change
   between the pass that measures the payload and the pass that writes it.

   Built by mdgw.compiled_build beside the mypyc modules and served by the same import hook
   (mdgw.compiled); with no build, or MDGW_PURE=1, this module is absent and the templates
   render in Python alone. */

#define PY_SSIZE_T_CLEAN
#include <Python.h>

/* "-9223372036854775808" is 20 characters. */
#define INT_CHARS 20

typedef struct {
    const char *data;
    Py_ssize_t len;
} text_t;

/* "00" "01" ... "99": two digits per division. */
static const char DIGIT_PAIRS[] =
    "00010203040506070809101112131415161718192021222324252627282930313233343536373839404142434445464748495051525354555657585960616263646566676869707172737475767778798081828384858687888990919293949596979899";

/* str() of an exact int within int64, written to buf; its length, or -1 for anything else
   (no exception set). */
static Py_ssize_t
int_text(PyObject *obj, char *buf)
{
    if (!PyLong_CheckExact(obj)) {
        return -1;
    }
    int overflow;
    long long v = PyLong_AsLongLongAndOverflow(obj, &overflow);
    if (overflow != 0) {
        return -1;
    }
    if (v == -1 && PyErr_Occurred()) {
        PyErr_Clear();
        return -1;
    }
    unsigned long long m = v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v;
    char digits[INT_CHARS];
    char *p = digits + INT_CHARS; /* written from the end */
    while (m >= 100) {
        unsigned int two = (unsigned int)(m % 100);
        m /= 100;
        p -= 2;
        memcpy(p, DIGIT_PAIRS + 2 * two, 2);
    }
    if (m >= 10) {
        p -= 2;
        memcpy(p, DIGIT_PAIRS + 2 * m, 2);
    }
    else {
        *--p = (char)('0' + (int)m);
    }
    if (v < 0) {
        *--p = '-';
    }
    Py_ssize_t len = (Py_ssize_t)(digits + INT_CHARS - p);
    memcpy(buf, p, (size_t)len);
    return len;
}

/* The bytes of an exact compact ASCII str (the same bytes as its UTF-8 encoding); 0 with
   t unset for anything else. */
static int
ascii_text(PyObject *obj, text_t *t)
{
    if (!PyUnicode_CheckExact(obj) || !PyUnicode_IS_COMPACT_ASCII(obj)) {
        return 0;
    }
    t->data = (const char *)PyUnicode_1BYTE_DATA(obj);
    t->len = PyUnicode_GET_LENGTH(obj);
    return 1;
}

/* A list's first `depth` items as list[:depth] takes them: how many, and the length of
   their ",".join, each an exact compact ASCII str; -1 for anything else. */
static Py_ssize_t
joined_length(PyObject *list, long long depth, Py_ssize_t *count)
{
    if (!PyList_CheckExact(list)) {
        return -1;
    }
    Py_ssize_t n = PyList_GET_SIZE(list);
    Py_ssize_t k;
    if (depth < 0) {
        k = depth < -(long long)n ? 0 : n + (Py_ssize_t)depth;
    }
    else {
        k = depth < (long long)n ? (Py_ssize_t)depth : n;
    }
    Py_ssize_t total = k > 0 ? k - 1 : 0; /* the commas */
    for (Py_ssize_t i = 0; i < k; i++) {
        PyObject *item = PyList_GET_ITEM(list, i);
        if (!PyUnicode_CheckExact(item) || !PyUnicode_IS_COMPACT_ASCII(item)) {
            return -1;
        }
        total += PyUnicode_GET_LENGTH(item);
    }
    *count = k;
    return total;
}

static char *
put(char *out, const char *data, Py_ssize_t len)
{
    memcpy(out, data, (size_t)len);
    return out + len;
}

#define PUT_LITERAL(out, s) put((out), (s), (Py_ssize_t)(sizeof(s) - 1))

static char *
put_joined(char *out, PyObject *list, Py_ssize_t count)
{
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *item = PyList_GET_ITEM(list, i);
        if (i > 0) {
            *out++ = ',';
        }
        out = put(out, (const char *)PyUnicode_1BYTE_DATA(item), PyUnicode_GET_LENGTH(item));
    }
    return out;
}

/* The four ints every payload carries after "pub_ns": (stamp() in topics.py), as one text:
   written once per frame, copied into each payload with one memcpy. */
static const char RECV_NS[] = ",\"recv_ns\":";
static const char U[] = ",\"u\":";
static const char TS[] = ",\"ts\":";
#define STAMP_LITERALS (sizeof(RECV_NS) - 1 + sizeof(U) - 1 + sizeof(TS) - 1)

typedef struct {
    char text[4 * INT_CHARS + STAMP_LITERALS];
    Py_ssize_t len;
} stamp_t;

/* 0 when one of the four is not an int written here. */
static int
stamp(PyObject *pub_ns, PyObject *recv_ns, PyObject *u, PyObject *ts, stamp_t *s)
{
    char *out = s->text;
    Py_ssize_t n = int_text(pub_ns, out);
    if (n < 0) {
        return 0;
    }
    out = PUT_LITERAL(out + n, RECV_NS);
    if ((n = int_text(recv_ns, out)) < 0) {
        return 0;
    }
    out = PUT_LITERAL(out + n, U);
    if ((n = int_text(u, out)) < 0) {
        return 0;
    }
    out = PUT_LITERAL(out + n, TS);
    if ((n = int_text(ts, out)) < 0) {
        return 0;
    }
    s->len = (Py_ssize_t)(out + n - s->text);
    return 1;
}

static int
check_nargs(const char *name, Py_ssize_t nargs, Py_ssize_t want)
{
    if (nargs != want) {
        PyErr_Format(PyExc_TypeError, "%s() takes %zd arguments (%zd given)", name, want, nargs);
        return 0;
    }
    return 1;
}

/* A book payload measured: what book_write() writes, every input checked. */
typedef struct {
    text_t head, depth_text;
    char seq[INT_CHARS], cts[INT_CHARS], depth[INT_CHARS];
    Py_ssize_t seq_len, cts_len, nbids, nasks;
    PyObject *bids, *asks;
    Py_ssize_t len; /* with the stamp's */
} book_t;

static const char PUB_NS[] = ",\"pub_ns\":";
static const char BOOK_CTS[] = ",\"cts\":";
static const char DEPTH[] = ",\"depth\":";
static const char BIDS[] = ",\"bids\":[";
static const char ASKS[] = "],\"asks\":[";
static const char BOOK_END[] = "]}";
static const char BYBIT_SEQ[] = ",\"bybit_seq\":";

/* args: head, depth_text, seq, cts, depth, bids, asks; 0 for anything not written here. */
static int
book_measure(PyObject *head, PyObject *depth_given, PyObject *seq, PyObject *cts,
             PyObject *depth, PyObject *bids, PyObject *asks, const stamp_t *st, book_t *b)
{
    text_t given;
    if (!ascii_text(head, &b->head) || !ascii_text(depth_given, &given)) {
        return 0;
    }
    b->seq_len = int_text(seq, b->seq);
    b->cts_len = int_text(cts, b->cts);
    Py_ssize_t depth_len = int_text(depth, b->depth);
    if (b->seq_len < 0 || b->cts_len < 0 || depth_len < 0) {
        return 0;
    }
    if (b->cts_len == 1 && b->cts[0] == '0') {
        memcpy(b->cts, "null", 4);
        b->cts_len = 4;
    }
    long long depth_value = PyLong_AsLongLong(depth); /* within int64: checked above */
    b->depth_text = given.len > 0 ? given : (text_t){b->depth, depth_len};
    Py_ssize_t bids_len = joined_length(bids, depth_value, &b->nbids);
    Py_ssize_t asks_len = joined_length(asks, depth_value, &b->nasks);
    if (bids_len < 0 || asks_len < 0) {
        return 0;
    }
    b->bids = bids;
    b->asks = asks;
    b->len = b->head.len + b->seq_len + (Py_ssize_t)(sizeof(PUB_NS) - 1) + st->len
             + (Py_ssize_t)(sizeof(BOOK_CTS) - 1) + b->cts_len + (Py_ssize_t)(sizeof(DEPTH) - 1)
             + b->depth_text.len + (Py_ssize_t)(sizeof(BIDS) - 1) + bids_len
             + (Py_ssize_t)(sizeof(ASKS) - 1) + asks_len + (Py_ssize_t)(sizeof(BOOK_END) - 1);
    return 1;
}

/* BookTemplate.render_stamped's f-string:
   {head}{seq},"pub_ns":{stamp},"cts":{cts|null},"depth":{depth_text|depth},
   "bids":[{bids}],"asks":[{asks}]} */
static PyObject *
book_write(const book_t *b, const stamp_t *st)
{
    PyObject *payload = PyBytes_FromStringAndSize(NULL, b->len);
    if (payload == NULL) {
        return NULL;
    }
    char *out = PyBytes_AS_STRING(payload);
    out = put(out, b->head.data, b->head.len);
    out = put(out, b->seq, b->seq_len);
    out = PUT_LITERAL(out, PUB_NS);
    out = put(out, st->text, st->len);
    out = PUT_LITERAL(out, BOOK_CTS);
    out = put(out, b->cts, b->cts_len);
    out = PUT_LITERAL(out, DEPTH);
    out = put(out, b->depth_text.data, b->depth_text.len);
    out = PUT_LITERAL(out, BIDS);
    out = put_joined(out, b->bids, b->nbids);
    out = PUT_LITERAL(out, ASKS);
    out = put_joined(out, b->asks, b->nasks);
    out = PUT_LITERAL(out, BOOK_END);
    assert(out == PyBytes_AS_STRING(payload) + b->len);
    return payload;
}

/* The frame's (u, bybit_seq, ts, cts) (BookFrame.ints): 0 unless an exact tuple of four
   (its items are checked where they are written). */
static int
frame_ints(PyObject *ints, PyObject **u, PyObject **bybit_seq, PyObject **ts, PyObject **cts)
{
    if (!PyTuple_CheckExact(ints) || PyTuple_GET_SIZE(ints) != 4) {
        return 0;
    }
    *u = PyTuple_GET_ITEM(ints, 0);
    *bybit_seq = PyTuple_GET_ITEM(ints, 1);
    *ts = PyTuple_GET_ITEM(ints, 2);
    *cts = PyTuple_GET_ITEM(ints, 3);
    return 1;
}

static PyObject *
book(PyObject *Py_UNUSED(module), PyObject *const *args, Py_ssize_t nargs)
{
    if (!check_nargs("book", nargs, 9)) {
        return NULL;
    }
    /* head, depth_text, seq, pub_ns, recv_ns, frame_ints, depth, bids, asks */
    PyObject *u, *bybit_seq, *ts, *cts;
    stamp_t st;
    book_t b;
    if (!frame_ints(args[5], &u, &bybit_seq, &ts, &cts) || !stamp(args[3], args[4], u, ts, &st)
        || !book_measure(args[0], args[1], args[2], cts, args[6], args[7], args[8], &st, &b)) {
        Py_RETURN_NONE;
    }
    return book_write(&b, &st);
}

/* One side of a bbo: (price, size) as two texts, or None; 0 for anything else. */
static int
best(PyObject *side, text_t *price, text_t *size)
{
    if (side == Py_None) {
        price->data = NULL;
        return 1;
    }
    return PyTuple_CheckExact(side) && PyTuple_GET_SIZE(side) == 2
           && ascii_text(PyTuple_GET_ITEM(side, 0), price)
           && ascii_text(PyTuple_GET_ITEM(side, 1), size);
}

/* '"bid":"{price}","bid_size":"{size}"' or '"bid":null,"bid_size":null' (name "bid" or
   "ask"); NULL out: only the length. */
static Py_ssize_t
side_text(char *out, const char *name, const text_t *price, const text_t *size)
{
    if (price->data == NULL) {
        /* "bid":null,"bid_size":null */
        static const char NULL_TEXT[] = "\"bid\":null,\"bid_size\":null";
        if (out != NULL) {
            memcpy(out, NULL_TEXT, sizeof(NULL_TEXT) - 1);
            memcpy(out + 1, name, 3);
            memcpy(out + 12, name, 3);
        }
        return (Py_ssize_t)(sizeof(NULL_TEXT) - 1);
    }
    /* "bid":"P","bid_size":"S" */
    Py_ssize_t len = 7 + price->len + 14 + size->len + 1;
    if (out != NULL) {
        memcpy(out, "\"bid\":\"", 7);
        memcpy(out + 1, name, 3);
        out = put(out + 7, price->data, price->len);
        memcpy(out, "\",\"bid_size\":\"", 14);
        memcpy(out + 3, name, 3);
        out = put(out + 14, size->data, size->len);
        *out = '"';
    }
    return len;
}

/* A bbo payload measured: what bbo_write() writes, every input checked. */
typedef struct {
    text_t head, bid_price, bid_size, ask_price, ask_size, depth_str;
    char seq[INT_CHARS], bybit_seq[INT_CHARS], depth[INT_CHARS];
    Py_ssize_t seq_len, bybit_seq_len, depth_len, bid_len, ask_len;
    int quoted;
    Py_ssize_t len; /* with the stamp's */
} bbo_t;

/* args: head, seq, bid, ask, bybit_seq, depth; 0 for anything not written here. */
static int
bbo_measure(PyObject *head, PyObject *seq, PyObject *bid, PyObject *ask, PyObject *bybit_seq,
            PyObject *depth, const stamp_t *st, bbo_t *b)
{
    if (!ascii_text(head, &b->head) || !best(bid, &b->bid_price, &b->bid_size)
        || !best(ask, &b->ask_price, &b->ask_size)) {
        return 0;
    }
    b->seq_len = int_text(seq, b->seq);
    b->bybit_seq_len = int_text(bybit_seq, b->bybit_seq);
    if (b->seq_len < 0 || b->bybit_seq_len < 0) {
        return 0;
    }
    b->quoted = 0;
    if (PyUnicode_Check(depth)) {
        if (!ascii_text(depth, &b->depth_str)) {
            return 0;
        }
        b->quoted = 1;
        b->depth_len = b->depth_str.len + 2;
    }
    else {
        b->depth_len = int_text(depth, b->depth);
        if (b->depth_len < 0) {
            return 0;
        }
    }
    b->bid_len = side_text(NULL, "bid", &b->bid_price, &b->bid_size);
    b->ask_len = side_text(NULL, "ask", &b->ask_price, &b->ask_size);
    b->len = b->head.len + b->seq_len + (Py_ssize_t)(sizeof(PUB_NS) - 1) + st->len + 1
             + b->bid_len + 1 + b->ask_len + (Py_ssize_t)(sizeof(BYBIT_SEQ) - 1)
             + b->bybit_seq_len + (Py_ssize_t)(sizeof(DEPTH) - 1) + b->depth_len + 1;
    return 1;
}

/* BboTemplate.render_stamped's f-string:
   {head}{seq},"pub_ns":{stamp},{bid},{ask},"bybit_seq":{bybit_seq},"depth":{depth|"depth"}} */
static PyObject *
bbo_write(const bbo_t *b, const stamp_t *st)
{
    PyObject *payload = PyBytes_FromStringAndSize(NULL, b->len);
    if (payload == NULL) {
        return NULL;
    }
    char *out = PyBytes_AS_STRING(payload);
    out = put(out, b->head.data, b->head.len);
    out = put(out, b->seq, b->seq_len);
    out = PUT_LITERAL(out, PUB_NS);
    out = put(out, st->text, st->len);
    *out++ = ',';
    out += side_text(out, "bid", &b->bid_price, &b->bid_size);
    *out++ = ',';
    out += side_text(out, "ask", &b->ask_price, &b->ask_size);
    out = PUT_LITERAL(out, BYBIT_SEQ);
    out = put(out, b->bybit_seq, b->bybit_seq_len);
    out = PUT_LITERAL(out, DEPTH);
    if (b->quoted) {
        *out++ = '"';
        out = put(out, b->depth_str.data, b->depth_str.len);
        *out++ = '"';
    }
    else {
        out = put(out, b->depth, b->depth_len);
    }
    *out++ = '}';
    assert(out == PyBytes_AS_STRING(payload) + b->len);
    return payload;
}

static PyObject *
bbo(PyObject *Py_UNUSED(module), PyObject *const *args, Py_ssize_t nargs)
{
    if (!check_nargs("bbo", nargs, 10)) {
        return NULL;
    }
    stamp_t st;
    bbo_t b;
    if (!stamp(args[2], args[3], args[4], args[5], &st)
        || !bbo_measure(args[0], args[1], args[6], args[7], args[8], args[9], &st, &b)) {
        Py_RETURN_NONE;
    }
    return bbo_write(&b, &st);
}

/* book() and bbo() of one frame in one call, the stamp written once: (book, bbo), or None
   when either would be None (the templates then render both their own way). Every input
   is checked before anything is written, so None never follows a payload made. */
static PyObject *
book_bbo(PyObject *Py_UNUSED(module), PyObject *const *args, Py_ssize_t nargs)
{
    if (!check_nargs("book_bbo", nargs, 14)) {
        return NULL;
    }
    /* book_head, depth_text, bbo_head, seq, bbo_seq, pub_ns, recv_ns, frame_ints, depth,
       bids, asks, bid, ask, bbo_depth; frame_ints is the frame's (u, seq, ts, cts), the
       objects the decoder made (BookFrame.ints), so that mypyc need not box them again. */
    PyObject *u, *bybit_seq, *ts, *cts;
    stamp_t st;
    book_t bk;
    bbo_t bb;
    if (!frame_ints(args[7], &u, &bybit_seq, &ts, &cts) || !stamp(args[5], args[6], u, ts, &st)
        || !book_measure(args[0], args[1], args[3], cts, args[8], args[9], args[10], &st, &bk)
        || !bbo_measure(args[2], args[4], args[11], args[12], bybit_seq, args[13], &st, &bb)) {
        Py_RETURN_NONE;
    }
    PyObject *pair = PyTuple_New(2);
    if (pair == NULL) {
        return NULL;
    }
    PyObject *payload = book_write(&bk, &st);
    if (payload == NULL) {
        Py_DECREF(pair);
        return NULL;
    }
    PyTuple_SET_ITEM(pair, 0, payload);
    payload = bbo_write(&bb, &st);
    if (payload == NULL) {
        Py_DECREF(pair);
        return NULL;
    }
    PyTuple_SET_ITEM(pair, 1, payload);
    return pair;
}

static PyMethodDef methods[] = {
    {"book", (PyCFunction)(void (*)(void))book, METH_FASTCALL,
     "book(head, depth_text, seq, pub_ns, recv_ns, frame_ints, depth, bids, asks) -> bytes | "
     "None: BookTemplate's payload, frame_ints the frame's (u, bybit_seq, ts, cts), bids and "
     "asks the level-text lists cut to depth; None where the Python must render it."},
    {"bbo", (PyCFunction)(void (*)(void))bbo, METH_FASTCALL,
     "bbo(head, seq, pub_ns, recv_ns, u, ts, bid, ask, bybit_seq, depth) -> bytes | None: "
     "BboTemplate's payload; None where the Python must render it."},
    {"book_bbo", (PyCFunction)(void (*)(void))book_bbo, METH_FASTCALL,
     "book_bbo(book_head, depth_text, bbo_head, seq, bbo_seq, pub_ns, recv_ns, frame_ints, "
     "depth, bids, asks, bid, ask, bbo_depth) -> tuple[bytes, bytes] | None: book() and "
     "bbo() of one frame, frame_ints its (u, bybit_seq, ts, cts), the four shared ints "
     "written once; None where the Python must render them (frame_ints not an exact tuple "
     "of four included)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "mdgw.core._render",
    .m_doc = "The book and bbo payloads of mdgw.core.wire.topics, in C (see _render.c).",
    .m_size = 0,
    .m_methods = methods,
};

PyMODINIT_FUNC
PyInit__render(void)
{
    return PyModuleDef_Init(&module);
}
