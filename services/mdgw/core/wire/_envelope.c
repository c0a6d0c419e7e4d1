/* mdgw.core.wire._envelope: the accept path of mdgw.core.wire.envelope.decode_raw, in C.

   decode(msg, ids, categories) returns the very tuple decode_raw returns,
   (kind, ingestor, category, conn_id, seq, recv_ns, frame), for a raw envelope of the one
   form it knows, and None for anything else, with no exception set: decode_raw then runs its
   Python code, which finds the fault and raises its own WireError with its own message (or
   decodes a new ingestor id and caches it). The rules therefore stay written once, in Python
   (core/wire/envelope.py); this file may only ever accept less than they do, never more, and
   return the very same values. tests/core/test_envelope_c.py holds it to that on generated
   envelopes, against envelope.py run as pure Python.

   The form it knows: exact bytes; the version-1 header (24 bytes, little-endian: version u8,
   kind u8, category u8, id_len u8, conn_id u32, seq u64, recv_ns u64); kind 0..3; a category
   code that indexes `categories` (decode_raw's tuple of names, whose str objects it returns);
   a non-empty ingestor id that is a key of `ids` (decode_raw's cache of the ids it has
   decoded, whose str it returns), so a new or non-UTF-8 id is always Python's to judge.

   Why C here (docs/performance.md, "Follow-up: the envelope decode in C"): decode_raw runs
   once per envelope, and compiled by mypyc it still goes through struct.unpack_from (a
   7-tuple of new ints), a bytes slice for the id and its dict lookup; here the header is
   read in place and the id compared in place with the cache's few keys.

   Built by mdgw.compiled_build beside the mypyc modules and served by the same import hook
   (mdgw.compiled); with no build, or MDGW_PURE=1, this module is absent and decode_raw is
   pure Python. */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#define HEADER_SIZE 24
#define VERSION 1
#define MAX_KIND 3 /* EnvelopeKind.HEARTBEAT */
/* With more cached ids than this, the id is looked up by hash (a bytes key made for it)
   rather than compared with each key in turn. A builder hears a handful of ingestors. */
#define MAX_SCAN 8

static uint32_t
le32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t
le64(const unsigned char *p)
{
    return (uint64_t)le32(p) | (uint64_t)le32(p + 4) << 32;
}

/* The str that `ids` maps the n bytes at s to (borrowed), or NULL when it has none (or it is
   not a str), with no exception set. Only exact bytes keys and exact str values count. */
static PyObject *
cached_id(PyObject *ids, const char *s, Py_ssize_t n)
{
    PyObject *found = NULL;
    if (PyDict_GET_SIZE(ids) <= MAX_SCAN) {
        Py_ssize_t pos = 0;
        PyObject *key, *value;
        while (PyDict_Next(ids, &pos, &key, &value)) {
            if (PyBytes_CheckExact(key) && PyBytes_GET_SIZE(key) == n &&
                memcmp(PyBytes_AS_STRING(key), s, (size_t)n) == 0) {
                found = value;
                break;
            }
        }
    }
    else {
        PyObject *key = PyBytes_FromStringAndSize(s, n);
        if (key == NULL) {
            PyErr_Clear();
            return NULL;
        }
        found = PyDict_GetItemWithError(ids, key);
        Py_DECREF(key);
        if (found == NULL) {
            PyErr_Clear(); /* a key's __eq__ cannot raise (bytes), but be safe */
            return NULL;
        }
    }
    if (found == NULL || !PyUnicode_CheckExact(found)) {
        return NULL;
    }
    return found;
}

static PyObject *
decode(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    (void)self;
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "decode(msg, ids, categories) takes 3 arguments");
        return NULL;
    }
    PyObject *msg = args[0], *ids = args[1], *categories = args[2];
    if (!PyDict_CheckExact(ids) || !PyTuple_CheckExact(categories)) {
        PyErr_SetString(PyExc_TypeError, "decode(msg, ids, categories): a dict and a tuple");
        return NULL;
    }
    if (!PyBytes_CheckExact(msg)) {
        Py_RETURN_NONE;
    }
    Py_ssize_t size = PyBytes_GET_SIZE(msg);
    const unsigned char *p = (const unsigned char *)PyBytes_AS_STRING(msg);
    if (size < HEADER_SIZE || p[0] != VERSION || p[1] > MAX_KIND) {
        Py_RETURN_NONE;
    }
    Py_ssize_t id_len = p[3];
    Py_ssize_t end = HEADER_SIZE + id_len;
    if (p[2] >= PyTuple_GET_SIZE(categories) || id_len == 0 || size < end) {
        Py_RETURN_NONE;
    }
    PyObject *category = PyTuple_GET_ITEM(categories, p[2]);
    PyObject *ingestor = cached_id(ids, (const char *)p + HEADER_SIZE, id_len);
    if (ingestor == NULL || !PyUnicode_CheckExact(category)) {
        Py_RETURN_NONE;
    }
    PyObject *out = PyTuple_New(7);
    if (out == NULL) {
        return NULL;
    }
    Py_INCREF(ingestor);
    Py_INCREF(category);
    PyObject *items[7] = {
        PyLong_FromLong(p[1]),
        ingestor,
        category,
        PyLong_FromUnsignedLong(le32(p + 4)),
        PyLong_FromUnsignedLongLong(le64(p + 8)),
        PyLong_FromUnsignedLongLong(le64(p + 16)),
        PyBytes_FromStringAndSize((const char *)p + end, size - end),
    };
    int missing = 0;
    for (int i = 0; i < 7; i++) {
        PyTuple_SET_ITEM(out, i, items[i]); /* a NULL slot is skipped by tuple_dealloc */
        missing |= items[i] == NULL;
    }
    if (missing) {
        Py_DECREF(out);
        return NULL;
    }
    return out;
}

static PyMethodDef methods[] = {
    {"decode", (PyCFunction)(void (*)(void))decode, METH_FASTCALL,
     "decode(msg, ids, categories) -> tuple | None: decode_raw's tuple for a version-1 envelope "
     "whose ingestor id is a key of ids, else None (decode_raw then decides)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "mdgw.core.wire._envelope",
    .m_doc = "The accept path of mdgw.core.wire.envelope.decode_raw, in C (see _envelope.c).",
    .m_size = 0,
    .m_methods = methods,
};

PyMODINIT_FUNC
PyInit__envelope(void)
{
    return PyModuleDef_Init(&module);
}
