/* mdgw.core._levels: the accept paths of mdgw.core.bybit.parse_levels (parse) and of its
   orderbook frame decode (scan_book, below), in C.

   parse(raw, max_len, max_digits) returns the list parse_levels returns when every level of
   raw is valid, and None on anything else, with no exception set: parse_levels then runs its
   Python loop, which finds the fault and raises its own ParseError with its own message. The
   rules therefore stay written once, in Python (core/bybit.py); this file may only ever
   accept less than they do, never more, and return the very same list. tests/core/
   test_levels.py holds it to that on generated input, against core/bybit.py run as pure
   Python.

   Why C here (docs/performance.md, round 2): in the mypyc build this loop was the largest
   single cost per frame (two str.strip(chars) and two float() per level); a byte loop over
   the ASCII data and one PyOS_string_to_double per number do the same in a fraction of it.

   Built by mdgw.compiled_build beside the mypyc modules and served by the same import hook
   (mdgw.compiled); with no build, or MDGW_PURE=1, this module is absent and parse_levels and
   _decode_book are pure Python (and msgspec). */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <float.h>

/* The fast path below needs each double operation rounded once, to double (so not x87's
   extended precision): FLT_EVAL_METHOD 0, as on x86-64 and arm64. */
#if defined(FLT_EVAL_METHOD) && FLT_EVAL_METHOD == 0
#define EXACT_DOUBLE_DIVISION 1
#else
#define EXACT_DOUBLE_DIVISION 0
#endif

/* 10**0 .. 10**22: every one a double exactly. */
static const double powers_of_ten[] = {
    1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,  1e8,  1e9,  1e10, 1e11,
    1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
};

/* A price or size as parse_levels accepts it: an exact str of 1..max_len ASCII characters,
   each a digit or '.', that PyOS_string_to_double (what float() calls) consumes whole.
   Stores its float() in *value and, when digits is not NULL, the number of significant
   digits of the digits without the dots (leading and trailing zeros stripped) in *digits.
   Returns 0 when the string is not such a decimal, with no exception set. */
static int
decimal_chars(const char *s, Py_ssize_t n, Py_ssize_t max_len, double *value, Py_ssize_t *digits);

static int
decimal(PyObject *text, Py_ssize_t max_len, double *value, Py_ssize_t *digits)
{
    if (!PyUnicode_CheckExact(text)) {
        return 0;
    }
#if PY_VERSION_HEX < 0x030C0000
    if (PyUnicode_READY(text) < 0) {
        PyErr_Clear();
        return 0;
    }
#endif
    if (!PyUnicode_IS_ASCII(text)) {
        return 0;
    }
    /* A compact ASCII str keeps its characters as bytes followed by a NUL. */
    return decimal_chars((const char *)PyUnicode_1BYTE_DATA(text), PyUnicode_GET_LENGTH(text),
                         max_len, value, digits);
}

/* decimal() on the n characters at s, which need not end in a NUL: PyOS_string_to_double
   stops at the first character that is not part of a number, and s[n] is never one where
   this is called (a NUL, or the '"' closing a JSON string). */
static int
decimal_chars(const char *s, Py_ssize_t n, Py_ssize_t max_len, double *value, Py_ssize_t *digits)
{
    if (n == 0 || n > max_len) { /* "": float() refuses it too */
        return 0;
    }
    Py_ssize_t first = -1, last = -1, k = 0; /* k: index among the digits, dots skipped */
    Py_ssize_t dot = -1;                     /* k at the last dot */
    int dots = 0;
    uint64_t mantissa = 0; /* the digits as an integer, while that has at most 15 */
    for (Py_ssize_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == '.') {
            dots++;
            dot = k;
            continue;
        }
        if (c < '0' || c > '9') {
            return 0;
        }
        if (c != '0') {
            if (first < 0) {
                first = k;
            }
            last = k;
        }
        if (first < 0 || k - first < 15) {
            mantissa = mantissa * 10 + (uint64_t)(c - '0');
        }
        k++;
    }
    if (dots > 1 || k == 0) { /* "1.2.3", ".": PyOS_string_to_double stops short of the end */
        return 0;
    }
    Py_ssize_t decimals = dots ? k - dot : 0;
    if (EXACT_DOUBLE_DIVISION && (first < 0 || k - first <= 15) && decimals <= 22) {
        /* Clinger's fast path: the digits as an integer below 10**15 < 2**53 and a power of
           ten up to 10**22 are both doubles exactly, and IEEE division rounds their exact
           quotient correctly, as PyOS_string_to_double does: the same double. */
        *value = (double)mantissa / powers_of_ten[decimals];
    }
    else {
        char *end = NULL;
        double x = PyOS_string_to_double(s, &end, NULL);
        if (end != s + n) { /* not expected after the checks above; or out of memory */
            PyErr_Clear();
            return 0;
        }
        *value = x;
    }
    if (digits != NULL) {
        *digits = first < 0 ? 0 : last - first + 1;
    }
    return 1;
}

/* parse_levels' test of a price of n characters, float key and digits significant digits:
   positive, and at most max_digits significant digits, which it counts only when the price
   is longer than max_digits characters (a shorter one cannot have more). */
static int
price_ok(double key, Py_ssize_t n, Py_ssize_t digits, Py_ssize_t max_digits)
{
    return key > 0.0 && !(n > max_digits && digits > max_digits);
}

static PyObject *
parse(PyObject *Py_UNUSED(module), PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "parse(raw, max_len, max_digits)");
        return NULL;
    }
    Py_ssize_t max_len = PyLong_AsSsize_t(args[1]);
    if (max_len == -1 && PyErr_Occurred()) {
        return NULL;
    }
    Py_ssize_t max_digits = PyLong_AsSsize_t(args[2]);
    if (max_digits == -1 && PyErr_Occurred()) {
        return NULL;
    }
    PyObject *raw = args[0];
    if (!PyList_CheckExact(raw)) {
        Py_RETURN_NONE;
    }
    Py_ssize_t n = PyList_GET_SIZE(raw);
    PyObject *out = PyList_New(n);
    if (out == NULL) {
        return NULL;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        /* Allocating a tuple may run the garbage collector, and with it arbitrary finalizers
           that could change raw: its length is read again, and nothing borrowed from it is
           used after an allocation. */
        if (PyList_GET_SIZE(raw) != n) {
            goto refuse;
        }
        PyObject *level = PyList_GET_ITEM(raw, i);
        if (!PyList_CheckExact(level) || PyList_GET_SIZE(level) != 2) {
            goto refuse;
        }
        PyObject *price = PyList_GET_ITEM(level, 0);
        PyObject *size = PyList_GET_ITEM(level, 1);
        double key, qty;
        Py_ssize_t digits;
        if (!decimal(price, max_len, &key, &digits) || !decimal(size, max_len, &qty, NULL)) {
            goto refuse;
        }
        if (!price_ok(key, PyUnicode_GET_LENGTH(price), digits, max_digits)) {
            goto refuse;
        }
        Py_INCREF(price);
        Py_INCREF(size);
        PyObject *pair = PyTuple_New(4);
        PyObject *key_obj = PyFloat_FromDouble(key);
        PyObject *qty_obj = PyFloat_FromDouble(qty);
        if (pair == NULL || key_obj == NULL || qty_obj == NULL) {
            Py_XDECREF(pair);
            Py_XDECREF(key_obj);
            Py_XDECREF(qty_obj);
            Py_DECREF(price);
            Py_DECREF(size);
            Py_DECREF(out);
            return NULL;
        }
        PyTuple_SET_ITEM(pair, 0, key_obj);
        PyTuple_SET_ITEM(pair, 1, price);
        PyTuple_SET_ITEM(pair, 2, size);
        PyTuple_SET_ITEM(pair, 3, qty_obj);
        PyList_SET_ITEM(out, i, pair);
    }
    if (PyList_GET_SIZE(raw) != n) {
        goto refuse;
    }
    return out;
refuse:
    Py_DECREF(out); /* list_dealloc skips the slots not filled yet (NULL) */
    Py_RETURN_NONE;
}

/* ------------------------------------------------------------------ scan_book
   scan_book(frame, max_len, max_digits) decodes an orderbook.* frame in one pass over its
   bytes, for the frames of one strict, canonical form only, and returns None, with no
   exception set, for everything else: mdgw.core.bybit._decode_book then decodes the frame
   with msgspec as it would without this code, and finds any fault. The form:

   - an object with the keys topic, type, ts, data and optionally cts, in any order, each
     once; data an object with the keys s, b, a, u and optionally seq, in any order, each once;
   - no whitespace anywhere, and nothing after the closing brace;
   - strings of printable ASCII (0x20..0x7e) without a backslash: their str is their bytes;
   - integers 0 or [1-9][0-9]* of at most 18 digits: they fit an int64 exactly;
   - b and a arrays of ["price","size"] levels that each pass parse()'s own test.

   In that form msgspec would give exactly these values (BookMsg / BookData of
   core/bybit_structs.py; seq and cts 0 when absent), and parse_levels exactly these lists:
   so the result, (topic, type, s, bids, asks, (u, seq, ts, cts)), is what _decode_book
   reads from msgspec's structs, with bids and asks already as parse_levels returns them. Every
   check _decode_book makes after that (the topic's shape, the type, the symbol, ranges)
   it makes on these values too. tests/core/test_scan_book.py holds this to msgspec and
   core/bybit.py run as pure Python, on generated frames and mutations of them. */

/* A new str of the n ASCII characters at s, or NULL with an exception. (A cache from bytes
   to the same str object, for the topic, type and symbol that repeat frame after frame,
   saved ~40 instructions a frame of ~41,500: not worth its state; docs/performance.md.) */
static PyObject *
new_ascii(const char *s, Py_ssize_t n)
{
    PyObject *text = PyUnicode_New(n, 127);
    if (text != NULL && n > 0) {
        memcpy(PyUnicode_1BYTE_DATA(text), s, (size_t)n);
    }
    return text;
}

/* The JSON string at p (p[0] == '"') of printable ASCII and no backslash: *start and *n
   are set to its characters; returns the pointer past the closing quote, or NULL. */
static const char *
scan_string(const char *p, const char *end, const char **start, Py_ssize_t *n)
{
    if (p >= end || *p != '"') {
        return NULL;
    }
    p++;
    const char *s = p;
    while (p < end) {
        unsigned char c = (unsigned char)*p;
        if (c == '"') {
            *start = s;
            *n = p - s;
            return p + 1;
        }
        if (c < 0x20 || c > 0x7e || c == '\\') {
            return NULL;
        }
        p++;
    }
    return NULL;
}

/* The integer at p, 0 or [1-9][0-9]* of at most 18 digits, in *value; returns the pointer
   past it, or NULL. The caller checks what follows is ',' or '}'. */
static const char *
scan_int(const char *p, const char *end, long long *value)
{
    if (p >= end || *p < '0' || *p > '9') {
        return NULL;
    }
    if (*p == '0') {
        *value = 0;
        p++;
        return (p < end && *p >= '0' && *p <= '9') ? NULL : p; /* a leading zero */
    }
    long long v = 0;
    int k = 0;
    while (p < end && *p >= '0' && *p <= '9') {
        if (++k > 18) {
            return NULL;
        }
        v = v * 10 + (*p - '0');
        p++;
    }
    *value = v;
    return p;
}

/* The levels array at p: appends each level to out as parse() would make it. Returns the
   pointer past the closing ']', or NULL (*failed set when an exception is set). */
static const char *
scan_levels(const char *p, const char *end, Py_ssize_t max_len, Py_ssize_t max_digits,
            PyObject *out, int *failed)
{
    if (p >= end || *p != '[') {
        return NULL;
    }
    p++;
    if (p < end && *p == ']') {
        return p + 1;
    }
    for (;;) {
        const char *price, *size;
        Py_ssize_t price_n, size_n, digits;
        double key, qty;
        if (p >= end || *p != '[') {
            return NULL;
        }
        p = scan_string(p + 1, end, &price, &price_n);
        if (p == NULL || p >= end || *p != ',') {
            return NULL;
        }
        p = scan_string(p + 1, end, &size, &size_n);
        if (p == NULL || p >= end || *p != ']') {
            return NULL;
        }
        p++;
        /* decimal_chars reads up to the closing quote, which stops PyOS_string_to_double. */
        if (!decimal_chars(price, price_n, max_len, &key, &digits)
            || !decimal_chars(size, size_n, max_len, &qty, NULL)) {
            return NULL;
        }
        if (!price_ok(key, price_n, digits, max_digits)) {
            return NULL;
        }
        PyObject *pair = PyTuple_New(4);
        if (pair == NULL) {
            *failed = 1;
            return NULL;
        }
        PyObject *items[4] = {
            PyFloat_FromDouble(key),
            new_ascii(price, price_n),
            new_ascii(size, size_n),
            PyFloat_FromDouble(qty),
        };
        for (int i = 0; i < 4; i++) {
            PyTuple_SET_ITEM(pair, i, items[i]); /* a NULL slot is skipped by tuple_dealloc */
        }
        if (items[0] == NULL || items[1] == NULL || items[2] == NULL || items[3] == NULL
            || PyList_Append(out, pair) < 0) {
            Py_DECREF(pair);
            *failed = 1;
            return NULL;
        }
        Py_DECREF(pair);
        if (p < end && *p == ',') {
            p++;
            continue;
        }
        if (p < end && *p == ']') {
            return p + 1;
        }
        return NULL;
    }
}

/* Key bits: each key once, the required ones all present. */
enum {
    K_TOPIC = 1,
    K_TYPE = 2,
    K_TS = 4,
    K_DATA = 8,
    K_CTS = 16,
    D_S = 1,
    D_B = 2,
    D_A = 4,
    D_U = 8,
    D_SEQ = 16,
};

#define KEY_IS(start, n, lit) ((n) == (Py_ssize_t)sizeof(lit) - 1 && memcmp(start, lit, (n)) == 0)

static PyObject *
scan_book(PyObject *Py_UNUSED(module), PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "scan_book(frame, max_len, max_digits)");
        return NULL;
    }
    Py_ssize_t max_len = PyLong_AsSsize_t(args[1]);
    if (max_len == -1 && PyErr_Occurred()) {
        return NULL;
    }
    Py_ssize_t max_digits = PyLong_AsSsize_t(args[2]);
    if (max_digits == -1 && PyErr_Occurred()) {
        return NULL;
    }
    if (!PyBytes_CheckExact(args[0])) {
        Py_RETURN_NONE;
    }
    const char *p = PyBytes_AS_STRING(args[0]);
    const char *end = p + PyBytes_GET_SIZE(args[0]);
    const char *topic = NULL, *kind = NULL, *symbol = NULL;
    Py_ssize_t topic_n = 0, kind_n = 0, symbol_n = 0;
    long long ts = 0, cts = 0, u = 0, seq = 0;
    int seen = 0, data_seen = 0, failed = 0;
    PyObject *bids = PyList_New(0);
    PyObject *asks = PyList_New(0);
    if (bids == NULL || asks == NULL) {
        goto error;
    }
    if (p >= end || *p != '{') {
        goto refuse;
    }
    p++;
    for (;;) {
        const char *key;
        Py_ssize_t key_n;
        int bit;
        p = scan_string(p, end, &key, &key_n);
        if (p == NULL || p >= end || *p != ':') {
            goto refuse;
        }
        p++;
        if (KEY_IS(key, key_n, "topic")) {
            bit = K_TOPIC;
            p = scan_string(p, end, &topic, &topic_n);
        }
        else if (KEY_IS(key, key_n, "type")) {
            bit = K_TYPE;
            p = scan_string(p, end, &kind, &kind_n);
        }
        else if (KEY_IS(key, key_n, "ts")) {
            bit = K_TS;
            p = scan_int(p, end, &ts);
        }
        else if (KEY_IS(key, key_n, "cts")) {
            bit = K_CTS;
            p = scan_int(p, end, &cts);
        }
        else if (KEY_IS(key, key_n, "data")) {
            bit = K_DATA;
            if (p >= end || *p != '{') {
                goto refuse;
            }
            p++;
            for (;;) {
                const char *dkey;
                Py_ssize_t dkey_n;
                int dbit;
                p = scan_string(p, end, &dkey, &dkey_n);
                if (p == NULL || p >= end || *p != ':') {
                    goto refuse;
                }
                p++;
                if (KEY_IS(dkey, dkey_n, "s")) {
                    dbit = D_S;
                    p = scan_string(p, end, &symbol, &symbol_n);
                }
                else if (KEY_IS(dkey, dkey_n, "b")) {
                    dbit = D_B;
                    p = scan_levels(p, end, max_len, max_digits, bids, &failed);
                }
                else if (KEY_IS(dkey, dkey_n, "a")) {
                    dbit = D_A;
                    p = scan_levels(p, end, max_len, max_digits, asks, &failed);
                }
                else if (KEY_IS(dkey, dkey_n, "u")) {
                    dbit = D_U;
                    p = scan_int(p, end, &u);
                }
                else if (KEY_IS(dkey, dkey_n, "seq")) {
                    dbit = D_SEQ;
                    p = scan_int(p, end, &seq);
                }
                else {
                    goto refuse;
                }
                if (failed) {
                    goto error;
                }
                if (p == NULL || p >= end || (data_seen & dbit)) {
                    goto refuse;
                }
                data_seen |= dbit;
                if (*p == ',') {
                    p++;
                    continue;
                }
                if (*p != '}') {
                    goto refuse;
                }
                p++;
                break;
            }
            if ((data_seen & (D_S | D_B | D_A | D_U)) != (D_S | D_B | D_A | D_U)) {
                goto refuse;
            }
        }
        else {
            goto refuse;
        }
        if (p == NULL || p >= end || (seen & bit)) {
            goto refuse;
        }
        seen |= bit;
        if (*p == ',') {
            p++;
            continue;
        }
        if (*p != '}') {
            goto refuse;
        }
        p++;
        break;
    }
    if (p != end || (seen & (K_TOPIC | K_TYPE | K_TS | K_DATA)) != (K_TOPIC | K_TYPE | K_TS | K_DATA)) {
        goto refuse;
    }
    PyObject *out = PyTuple_New(6);
    if (out == NULL) {
        goto error;
    }
    PyObject *ints = PyTuple_New(4);
    PyObject *items[6] = {
        new_ascii(topic, topic_n), new_ascii(kind, kind_n), new_ascii(symbol, symbol_n),
        bids, asks, ints,
    };
    int missing = 0;
    for (int i = 0; i < 6; i++) {
        PyTuple_SET_ITEM(out, i, items[i]); /* a NULL slot is skipped by tuple_dealloc */
        missing |= items[i] == NULL;
    }
    if (ints != NULL) {
        /* The frame's ints, in BookFrame's order: the frame keeps this tuple (BookFrame.ints)
           and the payload's C writer takes it as it is (_render.c book_bbo). */
        PyObject *values[4] = {
            PyLong_FromLongLong(u),
            PyLong_FromLongLong(seq),
            PyLong_FromLongLong(ts),
            PyLong_FromLongLong(cts),
        };
        for (int i = 0; i < 4; i++) {
            PyTuple_SET_ITEM(ints, i, values[i]);
            missing |= values[i] == NULL;
        }
    }
    if (missing) {
        Py_DECREF(out); /* and with it bids, asks and the ints */
        return NULL;
    }
    return out;
refuse:
    Py_DECREF(bids);
    Py_DECREF(asks);
    Py_RETURN_NONE;
error:
    Py_XDECREF(bids);
    Py_XDECREF(asks);
    return NULL;
}

static PyMethodDef methods[] = {
    {"parse", (PyCFunction)(void (*)(void))parse, METH_FASTCALL,
     "parse(raw, max_len, max_digits) -> list | None: parse_levels' list when every level is "
     "valid, else None (parse_levels then finds the fault)."},
    {"scan_book", (PyCFunction)(void (*)(void))scan_book, METH_FASTCALL,
     "scan_book(frame, max_len, max_digits) -> tuple | None: (topic, type, s, bids, asks, "
     "(u, seq, ts, cts)) of an orderbook frame in the strict form of _levels.c, else None."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "mdgw.core._levels",
    .m_doc = "The accept path of mdgw.core.bybit.parse_levels, in C (see _levels.c).",
    .m_size = 0,
    .m_methods = methods,
};

PyMODINIT_FUNC
PyInit__levels(void)
{
    return PyModuleDef_Init(&module);
}
