/* mdgw.core._render: the book and bbo payloads (core/wire/topics.py), in C.

   book(head, depth_text, seq, pub_ns, recv_ns, u, ts, cts, depth, bids, asks) returns the
   bytes BookTemplate.render makes from the same ints and the joined first `depth` texts of
   the two level-text lists; bbo(head, seq, pub_ns, recv_ns, u, ts, bid, ask, bybit_seq,
   depth) the bytes BboTemplate.render makes. Each returns None, with no exception set, for
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
   each payload is one bytes object, written once.

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

/* The four ints every payload carries after "pub_ns": (stamp() in topics.py). */
typedef struct {
    char pub_ns[INT_CHARS], recv_ns[INT_CHARS], u[INT_CHARS], ts[INT_CHARS];
    Py_ssize_t pub_ns_len, recv_ns_len, u_len, ts_len;
} stamp_t;

static const char RECV_NS[] = ",\"recv_ns\":";
static const char U[] = ",\"u\":";
static const char TS[] = ",\"ts\":";
#define STAMP_LITERALS (sizeof(RECV_NS) - 1 + sizeof(U) - 1 + sizeof(TS) - 1)

/* 0 when one of the four is not an int written here. */
static int
stamp(PyObject *const *ints, stamp_t *s)
{
    s->pub_ns_len = int_text(ints[0], s->pub_ns);
    s->recv_ns_len = int_text(ints[1], s->recv_ns);
    s->u_len = int_text(ints[2], s->u);
    s->ts_len = int_text(ints[3], s->ts);
    return s->pub_ns_len >= 0 && s->recv_ns_len >= 0 && s->u_len >= 0 && s->ts_len >= 0;
}

static Py_ssize_t
stamp_length(const stamp_t *s)
{
    return (Py_ssize_t)STAMP_LITERALS + s->pub_ns_len + s->recv_ns_len + s->u_len + s->ts_len;
}

static char *
put_stamp(char *out, const stamp_t *s)
{
    out = put(out, s->pub_ns, s->pub_ns_len);
    out = PUT_LITERAL(out, RECV_NS);
    out = put(out, s->recv_ns, s->recv_ns_len);
    out = PUT_LITERAL(out, U);
    out = put(out, s->u, s->u_len);
    out = PUT_LITERAL(out, TS);
    return put(out, s->ts, s->ts_len);
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

/* BookTemplate.render_stamped's f-string:
   {head}{seq},"pub_ns":{stamp},"cts":{cts|null},"depth":{depth_text|depth},
   "bids":[{bids}],"asks":[{asks}]} */
static PyObject *
book(PyObject *Py_UNUSED(module), PyObject *const *args, Py_ssize_t nargs)
{
    if (!check_nargs("book", nargs, 11)) {
        return NULL;
    }
    text_t head, depth_given;
    char seq[INT_CHARS], cts[INT_CHARS], depth[INT_CHARS];
    stamp_t st;
    if (!ascii_text(args[0], &head) || !ascii_text(args[1], &depth_given)
        || !stamp(args + 3, &st)) {
        Py_RETURN_NONE;
    }
    Py_ssize_t seq_len = int_text(args[2], seq);
    Py_ssize_t cts_len = int_text(args[7], cts);
    Py_ssize_t depth_len = int_text(args[8], depth);
    if (seq_len < 0 || cts_len < 0 || depth_len < 0) {
        Py_RETURN_NONE;
    }
    if (cts_len == 1 && cts[0] == '0') {
        memcpy(cts, "null", 4);
        cts_len = 4;
    }
    long long depth_value = PyLong_AsLongLong(args[8]); /* within int64: checked above */
    text_t depth_text = depth_given.len > 0 ? depth_given : (text_t){depth, depth_len};
    Py_ssize_t nbids, nasks;
    Py_ssize_t bids_len = joined_length(args[9], depth_value, &nbids);
    Py_ssize_t asks_len = joined_length(args[10], depth_value, &nasks);
    if (bids_len < 0 || asks_len < 0) {
        Py_RETURN_NONE;
    }
    static const char PUB_NS[] = ",\"pub_ns\":";
    static const char CTS[] = ",\"cts\":";
    static const char DEPTH[] = ",\"depth\":";
    static const char BIDS[] = ",\"bids\":[";
    static const char ASKS[] = "],\"asks\":[";
    static const char END[] = "]}";
    Py_ssize_t len = head.len + seq_len + (Py_ssize_t)(sizeof(PUB_NS) - 1) + stamp_length(&st)
                     + (Py_ssize_t)(sizeof(CTS) - 1) + cts_len + (Py_ssize_t)(sizeof(DEPTH) - 1)
                     + depth_text.len + (Py_ssize_t)(sizeof(BIDS) - 1) + bids_len
                     + (Py_ssize_t)(sizeof(ASKS) - 1) + asks_len + (Py_ssize_t)(sizeof(END) - 1);
    PyObject *payload = PyBytes_FromStringAndSize(NULL, len);
    if (payload == NULL) {
        return NULL;
    }
    char *out = PyBytes_AS_STRING(payload);
    out = put(out, head.data, head.len);
    out = put(out, seq, seq_len);
    out = PUT_LITERAL(out, PUB_NS);
    out = put_stamp(out, &st);
    out = PUT_LITERAL(out, CTS);
    out = put(out, cts, cts_len);
    out = PUT_LITERAL(out, DEPTH);
    out = put(out, depth_text.data, depth_text.len);
    out = PUT_LITERAL(out, BIDS);
    out = put_joined(out, args[9], nbids);
    out = PUT_LITERAL(out, ASKS);
    out = put_joined(out, args[10], nasks);
    out = PUT_LITERAL(out, END);
    assert(out == PyBytes_AS_STRING(payload) + len);
    return payload;
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

/* BboTemplate.render_stamped's f-string:
   {head}{seq},"pub_ns":{stamp},{bid},{ask},"bybit_seq":{bybit_seq},"depth":{depth|"depth"}} */
static PyObject *
bbo(PyObject *Py_UNUSED(module), PyObject *const *args, Py_ssize_t nargs)
{
    if (!check_nargs("bbo", nargs, 10)) {
        return NULL;
    }
    text_t head, bid_price, bid_size, ask_price, ask_size, depth_str;
    char seq[INT_CHARS], bybit_seq[INT_CHARS], depth[INT_CHARS];
    stamp_t st;
    if (!ascii_text(args[0], &head) || !stamp(args + 2, &st)
        || !best(args[6], &bid_price, &bid_size) || !best(args[7], &ask_price, &ask_size)) {
        Py_RETURN_NONE;
    }
    Py_ssize_t seq_len = int_text(args[1], seq);
    Py_ssize_t bybit_seq_len = int_text(args[8], bybit_seq);
    if (seq_len < 0 || bybit_seq_len < 0) {
        Py_RETURN_NONE;
    }
    Py_ssize_t depth_len;
    int quoted = 0;
    if (PyUnicode_Check(args[9])) {
        if (!ascii_text(args[9], &depth_str)) {
            Py_RETURN_NONE;
        }
        quoted = 1;
        depth_len = depth_str.len + 2;
    }
    else {
        depth_len = int_text(args[9], depth);
        if (depth_len < 0) {
            Py_RETURN_NONE;
        }
    }
    static const char PUB_NS[] = ",\"pub_ns\":";
    static const char BYBIT_SEQ[] = ",\"bybit_seq\":";
    static const char DEPTH[] = ",\"depth\":";
    Py_ssize_t bid_len = side_text(NULL, "bid", &bid_price, &bid_size);
    Py_ssize_t ask_len = side_text(NULL, "ask", &ask_price, &ask_size);
    Py_ssize_t len = head.len + seq_len + (Py_ssize_t)(sizeof(PUB_NS) - 1) + stamp_length(&st)
                     + 1 + bid_len + 1 + ask_len + (Py_ssize_t)(sizeof(BYBIT_SEQ) - 1)
                     + bybit_seq_len + (Py_ssize_t)(sizeof(DEPTH) - 1) + depth_len + 1;
    PyObject *payload = PyBytes_FromStringAndSize(NULL, len);
    if (payload == NULL) {
        return NULL;
    }
    char *out = PyBytes_AS_STRING(payload);
    out = put(out, head.data, head.len);
    out = put(out, seq, seq_len);
    out = PUT_LITERAL(out, PUB_NS);
    out = put_stamp(out, &st);
    *out++ = ',';
    out += side_text(out, "bid", &bid_price, &bid_size);
    *out++ = ',';
    out += side_text(out, "ask", &ask_price, &ask_size);
    out = PUT_LITERAL(out, BYBIT_SEQ);
    out = put(out, bybit_seq, bybit_seq_len);
    out = PUT_LITERAL(out, DEPTH);
    if (quoted) {
        *out++ = '"';
        out = put(out, depth_str.data, depth_str.len);
        *out++ = '"';
    }
    else {
        out = put(out, depth, depth_len);
    }
    *out++ = '}';
    assert(out == PyBytes_AS_STRING(payload) + len);
    return payload;
}

static PyMethodDef methods[] = {
    {"book", (PyCFunction)(void (*)(void))book, METH_FASTCALL,
     "book(head, depth_text, seq, pub_ns, recv_ns, u, ts, cts, depth, bids, asks) -> bytes | "
     "None: BookTemplate's payload, bids and asks the level-text lists cut to depth; None "
     "where the Python must render it."},
    {"bbo", (PyCFunction)(void (*)(void))bbo, METH_FASTCALL,
     "bbo(head, seq, pub_ns, recv_ns, u, ts, bid, ask, bybit_seq, depth) -> bytes | None: "
     "BboTemplate's payload; None where the Python must render it."},
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
