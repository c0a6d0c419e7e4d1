/* mdgw.core._levels: the accept path of mdgw.core.bybit.parse_levels, in C.

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
   (mdgw.compiled); with no build, or MDGW_PURE=1, this module is absent and parse_levels is
   pure Python. */

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
    Py_ssize_t n = PyUnicode_GET_LENGTH(text);
    if (n == 0 || n > max_len) { /* "": float() refuses it too */
        return 0;
    }
    /* A compact ASCII str keeps its characters as bytes followed by a NUL. */
    const char *s = (const char *)PyUnicode_1BYTE_DATA(text);
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
        /* The same test as parse_levels', which counts the digits only of a price longer
           than max_digits characters (a shorter one cannot have more). */
        if (!(key > 0.0)
            || (PyUnicode_GET_LENGTH(price) > max_digits && digits > max_digits)) {
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

static PyMethodDef methods[] = {
    {"parse", (PyCFunction)(void (*)(void))parse, METH_FASTCALL,
     "parse(raw, max_len, max_digits) -> list | None: parse_levels' list when every level is "
     "valid, else None (parse_levels then finds the fault)."},
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
