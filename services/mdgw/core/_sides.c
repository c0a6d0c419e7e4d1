/* mdgw.core._sides: a book side's update and fast build (core/book.py), in C.

   update_side(keys, pairs, texts, levels, sign, depth) does to the three lists of one side
   exactly what book.py's Python _update_side does; build_side(levels, sign, depth) returns
   what the fast path of book.py's _build_side returns, or None where that path falls back
   (book.py then calls _build_side_any); refill_side(keys, pairs, texts, levels, sign,
   depth) writes what build_side would return into a side's own three lists, for a snapshot
   of at most REFILL_MAX levels (Bybit's orderbook.1 sends a one-level snapshot a side every
   frame: no lists made or freed then, and a level the side holds unchanged is kept), or
   returns None with the lists unchanged (book.py then builds the side). The rules stay
   written in Python, in book.py;
   tests/core/test_sides.py holds this file to them on generated deltas and snapshots,
   against book.py run as pure Python.

   Why C here (docs/performance.md, round 2): compiled by mypyc the Python update bisects a
   list of Python floats with generic rich compares and builds each level's text with an
   f-string; here the bisect compares doubles and the text is one allocation and two
   memcpy.

   The lists are the book's own: keys exact floats (a key of another type is a bug, and a
   TypeError), the three of one length (else a ValueError, before anything changes). A
   failed allocation raises MemoryError with the three lists still of one length: every
   object a level needs is made before the lists are touched, and an insert that fails
   half-way is undone. Levels are what mdgw.core.bybit.parse_levels makes, (key, price,
   size, qty) with key and qty floats (or ints); another key or qty is a TypeError.

   Built by mdgw.compiled_build beside the mypyc modules and served by the same import hook
   (mdgw.compiled); with no build, or MDGW_PURE=1, this module is absent and book.py runs its
   Python. */

#define PY_SSIZE_T_CLEAN
#include <Python.h>

/* One level of a delta or snapshot, its objects borrowed from the level tuple (which the
   caller holds). */
typedef struct {
    double key;
    double qty;
    PyObject *price;
    PyObject *size;
} level_t;

/* A number as float() of it: exact floats directly, else floats and ints (what the
   Python's `key * sign` and `qty == 0.0` treat as numbers alike). */
static int
number(PyObject *obj, double *out)
{
    if (PyFloat_CheckExact(obj)) {
        *out = PyFloat_AS_DOUBLE(obj);
        return 0;
    }
    if (!PyFloat_Check(obj) && !PyLong_Check(obj)) {
        PyErr_Format(PyExc_TypeError, "a level's key and qty must be floats, not %.100s",
                     Py_TYPE(obj)->tp_name);
        return -1;
    }
    double x = PyFloat_AsDouble(obj);
    if (x == -1.0 && PyErr_Occurred()) {
        return -1;
    }
    *out = x;
    return 0;
}

/* The level as a tuple of 4, in *held (a new reference), its parts in *lv. */
static int
unpack(PyObject *level, PyObject **held, level_t *lv)
{
    PyObject *t;
    if (PyTuple_CheckExact(level)) {
        Py_INCREF(level);
        t = level;
    }
    else {
        t = PySequence_Tuple(level);
        if (t == NULL) {
            return -1;
        }
    }
    if (PyTuple_GET_SIZE(t) != 4) {
        PyErr_Format(PyExc_ValueError, "a level has 4 values (key, price, size, qty), not %zd",
                     PyTuple_GET_SIZE(t));
        Py_DECREF(t);
        return -1;
    }
    if (number(PyTuple_GET_ITEM(t, 0), &lv->key) < 0
        || number(PyTuple_GET_ITEM(t, 3), &lv->qty) < 0) {
        Py_DECREF(t);
        return -1;
    }
    lv->price = PyTuple_GET_ITEM(t, 1);
    lv->size = PyTuple_GET_ITEM(t, 2);
    *held = t;
    return 0;
}

/* f'["{price}","{size}"]': one allocation and two memcpy when both are ASCII exact str
   (what the decoder makes), else the f-string's way (format() of each). */
static PyObject *
level_text(PyObject *price, PyObject *size)
{
    if (PyUnicode_CheckExact(price) && PyUnicode_CheckExact(size)
#if PY_VERSION_HEX < 0x030C0000
        && PyUnicode_IS_READY(price) && PyUnicode_IS_READY(size)
#endif
        && PyUnicode_IS_ASCII(price) && PyUnicode_IS_ASCII(size)) {
        Py_ssize_t np = PyUnicode_GET_LENGTH(price), ns = PyUnicode_GET_LENGTH(size);
        PyObject *text = PyUnicode_New(np + ns + 7, 127);
        if (text == NULL) {
            return NULL;
        }
        char *out = (char *)PyUnicode_1BYTE_DATA(text);
        out[0] = '[';
        out[1] = '"';
        memcpy(out + 2, PyUnicode_1BYTE_DATA(price), (size_t)np);
        memcpy(out + 2 + np, "\",\"", 3);
        memcpy(out + 5 + np, PyUnicode_1BYTE_DATA(size), (size_t)ns);
        out[5 + np + ns] = '"';
        out[6 + np + ns] = ']';
        return text;
    }
    PyObject *p = PyObject_Format(price, NULL);
    if (p == NULL) {
        return NULL;
    }
    PyObject *s = PyObject_Format(size, NULL);
    if (s == NULL) {
        Py_DECREF(p);
        return NULL;
    }
    PyObject *text = PyUnicode_FromFormat("[\"%U\",\"%U\"]", p, s);
    Py_DECREF(p);
    Py_DECREF(s);
    return text;
}

/* The pair tuple and the text of a level, both new references, or -1. */
static int
pair_and_text(const level_t *lv, PyObject **pair, PyObject **text)
{
    *pair = PyTuple_Pack(2, lv->price, lv->size);
    if (*pair == NULL) {
        return -1;
    }
    *text = level_text(lv->price, lv->size);
    if (*text == NULL) {
        Py_CLEAR(*pair);
        return -1;
    }
    return 0;
}

/* del list[i], which cannot fail: the items after i move down and the list keeps its
   allocation. The removed item is released last, once the list is whole again. */
static void
delete_at(PyObject *list, Py_ssize_t i)
{
    PyListObject *l = (PyListObject *)list;
    Py_ssize_t n = PyList_GET_SIZE(list);
    PyObject *gone = l->ob_item[i];
    memmove(&l->ob_item[i], &l->ob_item[i + 1], (size_t)(n - i - 1) * sizeof(PyObject *));
    Py_SET_SIZE(l, n - 1);
    Py_DECREF(gone);
}

/* del list[depth:], one item at a time from the end, so the list is whole whenever an
   item's release runs code. */
static void
cut(PyObject *list, Py_ssize_t depth)
{
    while (PyList_GET_SIZE(list) > depth) {
        Py_ssize_t last = PyList_GET_SIZE(list) - 1;
        PyObject *gone = PyList_GET_ITEM(list, last);
        Py_SET_SIZE((PyListObject *)list, last);
        Py_DECREF(gone);
    }
}

static int
same_lengths(PyObject *keys, PyObject *pairs, PyObject *texts)
{
    Py_ssize_t n = PyList_GET_SIZE(keys);
    if (PyList_GET_SIZE(pairs) != n || PyList_GET_SIZE(texts) != n) {
        PyErr_SetString(PyExc_ValueError, "keys, pairs and texts have different lengths");
        return 0;
    }
    return 1;
}

static int
not_a_float(PyObject *key)
{
    PyErr_Format(PyExc_TypeError, "a side's keys must be floats, not %.100s",
                 Py_TYPE(key)->tp_name);
    return -1;
}

/* bisect_left(keys, k) on the doubles; -1 with TypeError on a key that is not an exact
   float. *found is set when keys[i] == k. */
static Py_ssize_t
bisect(PyObject *keys, double k, int *found)
{
    Py_ssize_t lo = 0, hi = PyList_GET_SIZE(keys);
    PyObject **items = ((PyListObject *)keys)->ob_item;
    while (lo < hi) {
        Py_ssize_t mid = lo + (hi - lo) / 2;
        PyObject *key = items[mid];
        if (!PyFloat_CheckExact(key)) {
            return not_a_float(key);
        }
        if (PyFloat_AS_DOUBLE(key) < k) {
            lo = mid + 1;
        }
        else {
            hi = mid;
        }
    }
    *found = 0;
    if (lo < PyList_GET_SIZE(keys)) {
        PyObject *key = items[lo];
        if (!PyFloat_CheckExact(key)) {
            return not_a_float(key);
        }
        *found = PyFloat_AS_DOUBLE(key) == k;
    }
    return lo;
}

/* One level of a delta on the side; the caller holds the level. What an insert or a
   replace needs is made first: making it may run the garbage collector, and so any code,
   which must not find the lists half-changed nor change them between the bisect and the
   change. */
static int
update_one(PyObject *keys, PyObject *pairs, PyObject *texts, const level_t *lv, double sign)
{
    double k = lv->key * sign;
    PyObject *key = NULL, *pair = NULL, *text = NULL;
    if (lv->qty != 0.0) {
        key = PyFloat_FromDouble(k);
        if (key == NULL) {
            return -1;
        }
        if (pair_and_text(lv, &pair, &text) < 0) {
            Py_DECREF(key);
            return -1;
        }
    }
    int err = 0, found = 0;
    Py_ssize_t i = 0;
    if (!same_lengths(keys, pairs, texts) || (i = bisect(keys, k, &found)) < 0) {
        err = -1;
    }
    else if (found && key == NULL) { /* size 0: delete */
        delete_at(keys, i);
        delete_at(pairs, i);
        delete_at(texts, i);
    }
    else if (found) { /* replace, with this delta's strings */
        PyObject *old_pair = PyList_GET_ITEM(pairs, i);
        PyObject *old_text = PyList_GET_ITEM(texts, i);
        PyList_SET_ITEM(pairs, i, pair);
        PyList_SET_ITEM(texts, i, text);
        pair = old_pair; /* released below, the lists whole again */
        text = old_text;
    }
    else if (key != NULL) { /* insert; undone if a list cannot grow */
        err = PyList_Insert(keys, i, key);
        if (err == 0) {
            err = PyList_Insert(pairs, i, pair);
            if (err < 0) {
                delete_at(keys, i);
            }
            else {
                err = PyList_Insert(texts, i, text);
                if (err < 0) {
                    delete_at(keys, i);
                    delete_at(pairs, i);
                }
            }
        }
    }
    /* else: deleting an absent price is a no-op (it may be a level truncated away). */
    Py_XDECREF(key); /* the lists hold their own references */
    Py_XDECREF(pair);
    Py_XDECREF(text);
    return err;
}

static int
side_lists(PyObject *const *args)
{
    for (int j = 0; j < 3; j++) {
        if (!PyList_CheckExact(args[j])) {
            PyErr_Format(PyExc_TypeError, "keys, pairs and texts must be lists, not %.100s",
                         Py_TYPE(args[j])->tp_name);
            return 0;
        }
    }
    return 1;
}

/* A side's sign (a float) and depth (an int >= 0), as update_side, build_side and
   refill_side take them: 1, or 0 with an exception set. */
static int
sign_and_depth(PyObject *sign_obj, PyObject *depth_obj, double *sign, Py_ssize_t *depth)
{
    *sign = PyFloat_AsDouble(sign_obj);
    if (*sign == -1.0 && PyErr_Occurred()) {
        return 0;
    }
    *depth = PyLong_AsSsize_t(depth_obj);
    if (*depth == -1 && PyErr_Occurred()) {
        return 0;
    }
    if (*depth < 0) {
        PyErr_SetString(PyExc_ValueError, "depth must be >= 0");
        return 0;
    }
    return 1;
}

static PyObject *
update_side(PyObject *Py_UNUSED(module), PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 6) {
        PyErr_SetString(PyExc_TypeError, "update_side(keys, pairs, texts, levels, sign, depth)");
        return NULL;
    }
    PyObject *keys = args[0], *pairs = args[1], *texts = args[2];
    if (!side_lists(args) || !same_lengths(keys, pairs, texts)) {
        return NULL;
    }
    double sign;
    Py_ssize_t depth;
    if (!sign_and_depth(args[4], args[5], &sign, &depth)) {
        return NULL;
    }
    PyObject *levels = PySequence_Fast(args[3], "levels must be a sequence");
    if (levels == NULL) {
        return NULL;
    }
    /* The length is read at each step, as Python's for over a list does. */
    for (Py_ssize_t j = 0; j < PySequence_Fast_GET_SIZE(levels); j++) {
        PyObject *held;
        level_t lv;
        if (unpack(PySequence_Fast_GET_ITEM(levels, j), &held, &lv) < 0) {
            Py_DECREF(levels);
            return NULL;
        }
        int err = update_one(keys, pairs, texts, &lv, sign);
        Py_DECREF(held);
        if (err < 0) {
            Py_DECREF(levels);
            return NULL;
        }
    }
    Py_DECREF(levels);
    /* Bybit sends a size-0 delete for every level that leaves the depth window, so this
       only fires on a misbehaving feed (see book.py). */
    if (!same_lengths(keys, pairs, texts)) {
        return NULL;
    }
    if (PyList_GET_SIZE(keys) > depth) {
        cut(keys, depth);
        cut(pairs, depth);
        cut(texts, depth);
    }
    Py_RETURN_NONE;
}

static PyObject *
build_side(PyObject *Py_UNUSED(module), PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "build_side(levels, sign, depth)");
        return NULL;
    }
    double sign;
    Py_ssize_t depth;
    if (!sign_and_depth(args[1], args[2], &sign, &depth)) {
        return NULL;
    }
    PyObject *levels = PySequence_Fast(args[0], "levels must be a sequence");
    if (levels == NULL) {
        return NULL;
    }
    /* One pass, as the Python loop: the test of the fast path (strictly improving keys, no
       size 0) over every level, the lists made for the first depth of them. Making them
       may run the garbage collector, and with it code that could change a levels list:
       its length is read at each step, and a length that changed on the way means None
       (the Python then builds the side from the list as it is). */
    Py_ssize_t n = PySequence_Fast_GET_SIZE(levels);
    Py_ssize_t m = n < depth ? n : depth;
    PyObject *keys = PyList_New(m);
    PyObject *pairs = PyList_New(m);
    PyObject *texts = PyList_New(m);
    PyObject *out = NULL;
    if (keys == NULL || pairs == NULL || texts == NULL) {
        goto done;
    }
    double last = -Py_HUGE_VAL;
    for (Py_ssize_t j = 0; j < n; j++) {
        if (PySequence_Fast_GET_SIZE(levels) != n) {
            goto fall_back;
        }
        PyObject *held;
        level_t lv;
        if (unpack(PySequence_Fast_GET_ITEM(levels, j), &held, &lv) < 0) {
            goto done;
        }
        double k = lv.key * sign;
        if (k <= last || lv.qty == 0.0) {
            Py_DECREF(held);
            goto fall_back;
        }
        last = k;
        if (j < m) {
            PyObject *key = PyFloat_FromDouble(k), *pair, *text;
            if (key == NULL || pair_and_text(&lv, &pair, &text) < 0) {
                Py_XDECREF(key);
                Py_DECREF(held);
                goto done;
            }
            PyList_SET_ITEM(keys, j, key);
            PyList_SET_ITEM(pairs, j, pair);
            PyList_SET_ITEM(texts, j, text);
        }
        Py_DECREF(held);
    }
    if (PySequence_Fast_GET_SIZE(levels) != n) {
        goto fall_back;
    }
    out = PyTuple_Pack(3, keys, pairs, texts);
    goto done;
fall_back:
    out = Py_NewRef(Py_None);
done: /* list_dealloc skips the slots not filled (NULL) */
    Py_DECREF(levels);
    Py_XDECREF(keys);
    Py_XDECREF(pairs);
    Py_XDECREF(texts);
    return out;
}

/* At most this many levels are refilled in place; a longer snapshot is built anew. */
#define REFILL_MAX 8

/* Whether an exact str is an exact compact ASCII str of the same characters as another. */
static int
same_text(PyObject *a, PyObject *b)
{
    if (a == b) {
        return 1;
    }
    if (!PyUnicode_CheckExact(a) || !PyUnicode_IS_COMPACT_ASCII(a)) {
        return 0;
    }
    Py_ssize_t n = PyUnicode_GET_LENGTH(a);
    return PyUnicode_GET_LENGTH(b) == n
           && memcmp(PyUnicode_1BYTE_DATA(a), PyUnicode_1BYTE_DATA(b), (size_t)n) == 0;
}

/* refill_side(keys, pairs, texts, levels, sign, depth): what build_side would return,
   written into the book's own three lists (a snapshot of a few levels, as Bybit's
   orderbook.1 sends every frame, makes no new lists), a level the side already holds at
   that place with the same price and size strings kept as it is. True, or None, with the
   lists unchanged, where build_side would not take the levels or for anything this does
   not handle (more than REFILL_MAX levels, a price or size that is not an exact ASCII
   str): the caller then builds the side. Every level is read and checked before a list
   changes; an error (a level that is not (key, price, size, qty), lists of different
   lengths) leaves them unchanged, and a failed allocation leaves them of one length. */
static PyObject *
refill_side(PyObject *Py_UNUSED(module), PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 6) {
        PyErr_SetString(PyExc_TypeError, "refill_side(keys, pairs, texts, levels, sign, depth)");
        return NULL;
    }
    PyObject *keys = args[0], *pairs = args[1], *texts = args[2];
    if (!side_lists(args)) {
        return NULL;
    }
    if (!PyList_CheckExact(args[3]) || PyList_GET_SIZE(args[3]) > REFILL_MAX) {
        Py_RETURN_NONE;
    }
    double sign;
    Py_ssize_t depth;
    if (!sign_and_depth(args[4], args[5], &sign, &depth)) {
        return NULL;
    }
    if (!same_lengths(keys, pairs, texts)) {
        return NULL;
    }
    /* The levels held (a new reference each) before anything is made: making objects may
       run the garbage collector, and with it code that could change the levels list. */
    PyObject *levels = args[3];
    Py_ssize_t n = PyList_GET_SIZE(levels);
    PyObject *held[REFILL_MAX];
    level_t lv[REFILL_MAX];
    PyObject *out = NULL;
    Py_ssize_t got = 0;
    double last = -Py_HUGE_VAL;
    for (; got < n; got++) {
        if (unpack(PyList_GET_ITEM(levels, got), &held[got], &lv[got]) < 0) {
            goto done;
        }
        double k = lv[got].key * sign;
        if (k <= last || lv[got].qty == 0.0 || !PyUnicode_CheckExact(lv[got].price)
            || !PyUnicode_IS_COMPACT_ASCII(lv[got].price) || !PyUnicode_CheckExact(lv[got].size)
            || !PyUnicode_IS_COMPACT_ASCII(lv[got].size)) {
            got++;
            out = Py_NewRef(Py_None);
            goto done;
        }
        last = lv[got].key = k;
    }
    Py_ssize_t m = n < depth ? n : depth;
    for (Py_ssize_t j = 0; j < m; j++) {
        Py_ssize_t had = PyList_GET_SIZE(keys);
        if (j < had) {
            PyObject *old_key = PyList_GET_ITEM(keys, j), *old = PyList_GET_ITEM(pairs, j);
            if (PyFloat_CheckExact(old_key) && PyFloat_AS_DOUBLE(old_key) == lv[j].key
                && PyTuple_CheckExact(old) && PyTuple_GET_SIZE(old) == 2
                && same_text(PyTuple_GET_ITEM(old, 0), lv[j].price)
                && same_text(PyTuple_GET_ITEM(old, 1), lv[j].size)) {
                continue; /* this level as the side holds it already */
            }
        }
        PyObject *key = PyFloat_FromDouble(lv[j].key), *pair, *text;
        if (key == NULL || pair_and_text(&lv[j], &pair, &text) < 0) {
            Py_XDECREF(key);
            goto done;
        }
        /* The lists may have changed while those were made (the collector): of one length
           again, or the three are cut to the shortest. */
        had = PyList_GET_SIZE(keys);
        if (PyList_GET_SIZE(pairs) < had) {
            had = PyList_GET_SIZE(pairs);
        }
        if (PyList_GET_SIZE(texts) < had) {
            had = PyList_GET_SIZE(texts);
        }
        cut(keys, had);
        cut(pairs, had);
        cut(texts, had);
        if (j < had) {
            PyList_SetItem(keys, j, key); /* steal; the old items are released */
            PyList_SetItem(pairs, j, pair);
            PyList_SetItem(texts, j, text);
            continue;
        }
        Py_ssize_t at = had;
        int failed = PyList_Append(keys, key) < 0 || PyList_Append(pairs, pair) < 0
                     || PyList_Append(texts, text) < 0;
        Py_DECREF(key);
        Py_DECREF(pair);
        Py_DECREF(text);
        if (failed) {
            cut(keys, at);
            cut(pairs, at);
            cut(texts, at);
            goto done;
        }
        if (at < j) { /* cut by the collector: no longer the side; build it anew */
            out = Py_NewRef(Py_None);
            goto done;
        }
    }
    cut(keys, m);
    cut(pairs, m);
    cut(texts, m);
    out = Py_NewRef(Py_True);
done:
    for (Py_ssize_t j = 0; j < got; j++) {
        Py_DECREF(held[j]);
    }
    return out;
}

static PyMethodDef methods[] = {
    {"update_side", (PyCFunction)(void (*)(void))update_side, METH_FASTCALL,
     "update_side(keys, pairs, texts, levels, sign, depth) -> None: apply one side of a delta "
     "in place, as core/book.py's _update_side."},
    {"build_side", (PyCFunction)(void (*)(void))build_side, METH_FASTCALL,
     "build_side(levels, sign, depth) -> (keys, pairs, texts) | None: core/book.py "
     "_build_side's fast path, None where it falls back."},
    {"refill_side", (PyCFunction)(void (*)(void))refill_side, METH_FASTCALL,
     "refill_side(keys, pairs, texts, levels, sign, depth) -> True | None: build_side's "
     "result written into the side's own lists; None, nothing changed, where the caller "
     "must build the side."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "mdgw.core._sides",
    .m_doc = "A book side's update and fast build (core/book.py), in C (see _sides.c).",
    .m_size = 0,
    .m_methods = methods,
};

PyMODINIT_FUNC
PyInit__sides(void)
{
    return PyModuleDef_Init(&module);
}
