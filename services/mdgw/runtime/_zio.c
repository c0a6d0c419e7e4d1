/* mdgw.runtime._zio: book_builder's non-blocking receives and sends, straight into libzmq.

   recv_batch(handle, limit) receives up to limit messages (frames) with ZMQ_DONTWAIT from a
   pyzmq socket's handle (Socket.underlying) and returns (list of bytes, drained): drained
   is True when the batch ended on EAGAIN, i.e. the socket is empty and its edge-triggered
   FD re-armed; False when the limit or EINTR ended it. Any other error with messages in
   hand ends the batch the same way (the next call, with none in hand, raises it), so no
   received message is lost; with none in hand it raises zmq.ZMQError(errno).
   send_pairs(handle, pairs) sends each (topic, payload) as a two-frame message, topic with
   ZMQ_SNDMORE | ZMQ_DONTWAIT then payload with ZMQ_DONTWAIT, and returns how many pairs met
   EAGAIN at either frame (book_builder's _flush has always counted a pair so, and gone on);
   other errors raise zmq.ZMQError(errno), pairs after it unsent.

   Why C (docs/performance.md, "Follow-up: the builder's ZeroMQ I/O in C"): pyzmq's Cython
   recv and send cost about a microsecond a call, and the recv that ends every drain with
   zmq.Again several (pyzmq builds the exception in Python); a loop here costs a fraction.

   The libzmq is the one pyzmq loaded (its wheel bundles one, loaded RTLD_LOCAL, so its
   symbols are not global): load(path, ZMQError) opens pyzmq's own extension module at path
   with RTLD_NOLOAD (so only if it is already loaded) and finds the zmq_* functions with
   dlsym, which searches that object's dependencies too, wherever its libzmq lives. No zmq.h
   at build time: the few prototypes and zmq_msg_t (64 bytes, pointer-aligned, since libzmq
   4.1) are declared here, so load refuses a libzmq before 4.1.

   The handle must be a live socket used from the thread that owns it: mdgw.runtime.zio
   checks Socket.closed before each call (libzmq itself answers ENOTSOCK for 0 and for a
   closed socket whose memory is still its own; freed memory it cannot check).

   Built by mdgw.compiled_build with the compiled hot path; absent without it (MDGW_PURE=1),
   and then mdgw.runtime.zio runs the same loops with pyzmq. */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <dlfcn.h>
#include <errno.h>

#define ZIO_DONTWAIT 1 /* ZMQ_DONTWAIT */
#define ZIO_SNDMORE 2  /* ZMQ_SNDMORE */

typedef struct {
    _Alignas(void *) unsigned char bytes[64];
} zio_msg_t; /* zmq_msg_t as libzmq >= 4.1 declares it: opaque, 64 bytes */

static int (*zio_msg_init)(zio_msg_t *);
static int (*zio_msg_recv)(zio_msg_t *, void *, int);
static void *(*zio_msg_data)(zio_msg_t *);
static size_t (*zio_msg_size)(const zio_msg_t *);
static int (*zio_msg_close)(zio_msg_t *);
static int (*zio_send)(void *, const void *, size_t, int);
static int (*zio_errno)(void);
static void (*zio_version)(int *, int *, int *);
static PyObject *zmq_error; /* zmq.ZMQError: NULL until load() succeeded */

static PyObject *
raise_errno(int err)
{
    PyObject *exc = PyObject_CallFunction(zmq_error, "i", err);
    if (exc != NULL) {
        PyErr_SetObject((PyObject *)Py_TYPE(exc), exc);
        Py_DECREF(exc);
    }
    return NULL;
}

static void *
handle_arg(PyObject *obj)
{
    if (zmq_error == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "mdgw.runtime._zio: load() first");
        return NULL;
    }
    void *handle = PyLong_AsVoidPtr(obj);
    if (handle == NULL && PyErr_Occurred()) {
        return NULL;
    }
    return handle;
}

static PyObject *
zio_load(PyObject *module, PyObject *args)
{
    const char *path;
    PyObject *error_class;
    if (!PyArg_ParseTuple(args, "sO:load", &path, &error_class)) {
        return NULL;
    }
    void *lib = dlopen(path, RTLD_NOW | RTLD_NOLOAD);
    if (lib == NULL) {
        const char *why = dlerror();
        PyErr_Format(PyExc_ImportError, "%s is not loaded: %s", path, why ? why : "?");
        return NULL;
    }
    struct {
        const char *name;
        void **slot;
    } wanted[] = {
        {"zmq_msg_init", (void **)&zio_msg_init},   {"zmq_msg_recv", (void **)&zio_msg_recv},
        {"zmq_msg_data", (void **)&zio_msg_data},   {"zmq_msg_size", (void **)&zio_msg_size},
        {"zmq_msg_close", (void **)&zio_msg_close}, {"zmq_send", (void **)&zio_send},
        {"zmq_errno", (void **)&zio_errno},         {"zmq_version", (void **)&zio_version},
    };
    for (size_t i = 0; i < sizeof(wanted) / sizeof(wanted[0]); i++) {
        void *found = dlsym(lib, wanted[i].name);
        if (found == NULL) {
            PyErr_Format(PyExc_ImportError, "%s not found from %s", wanted[i].name, path);
            /* the handle stays open: it is pyzmq's, which stays loaded anyway */
            return NULL;
        }
        *wanted[i].slot = found;
    }
    int major = 0, minor = 0, patch = 0;
    zio_version(&major, &minor, &patch);
    if (major < 4 || (major == 4 && minor < 1)) {
        PyErr_Format(PyExc_ImportError, "libzmq %d.%d.%d: zmq_msg_t is 64 bytes only from 4.1",
                     major, minor, patch);
        return NULL;
    }
    Py_INCREF(error_class);
    Py_XSETREF(zmq_error, error_class);
    return Py_BuildValue("(iii)", major, minor, patch);
}

static PyObject *
zio_recv_batch(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "recv_batch(handle, limit)");
        return NULL;
    }
    void *handle = handle_arg(args[0]);
    if (handle == NULL && PyErr_Occurred()) {
        return NULL;
    }
    Py_ssize_t limit = PyLong_AsSsize_t(args[1]);
    if (limit == -1 && PyErr_Occurred()) {
        return NULL;
    }
    PyObject *out = PyList_New(0);
    if (out == NULL) {
        return NULL;
    }
    int err = 0;
    zio_msg_t msg;
    for (Py_ssize_t taken = 0; taken < limit; taken++) {
        zio_msg_init(&msg);
        if (zio_msg_recv(&msg, handle, ZIO_DONTWAIT) < 0) {
            err = zio_errno();
            zio_msg_close(&msg);
            break;
        }
        PyObject *data = PyBytes_FromStringAndSize((const char *)zio_msg_data(&msg),
                                                   (Py_ssize_t)zio_msg_size(&msg));
        zio_msg_close(&msg);
        if (data == NULL) {
            Py_DECREF(out);
            return NULL;
        }
        int failed = PyList_Append(out, data);
        Py_DECREF(data);
        if (failed) {
            Py_DECREF(out);
            return NULL;
        }
    }
    if (err != 0 && err != EAGAIN && err != EINTR && PyList_GET_SIZE(out) == 0) {
        Py_DECREF(out);
        return raise_errno(err);
    }
    return Py_BuildValue("(NO)", out, err == EAGAIN ? Py_True : Py_False);
}

/* One frame; EINTR is retried as pyzmq retries it. */
static int
send_frame(void *handle, PyObject *data, int flags)
{
    for (;;) {
        if (zio_send(handle, PyBytes_AS_STRING(data), (size_t)PyBytes_GET_SIZE(data), flags) >= 0) {
            return 0;
        }
        int err = zio_errno();
        if (err != EINTR) {
            return err;
        }
    }
}

static PyObject *
zio_send_pairs(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "send_pairs(handle, pairs)");
        return NULL;
    }
    void *handle = handle_arg(args[0]);
    if (handle == NULL && PyErr_Occurred()) {
        return NULL;
    }
    PyObject *pairs = args[1];
    if (!PyList_Check(pairs)) {
        PyErr_SetString(PyExc_TypeError, "send_pairs: pairs must be a list");
        return NULL;
    }
    Py_ssize_t dropped = 0;
    /* The list's size is read at each turn: nothing here runs Python code that could
       change it, but a stale size would be a crash rather than an error. */
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(pairs); i++) {
        PyObject *pair = PyList_GET_ITEM(pairs, i);
        if (!PyTuple_Check(pair) || PyTuple_GET_SIZE(pair) != 2 ||
            !PyBytes_Check(PyTuple_GET_ITEM(pair, 0)) ||
            !PyBytes_Check(PyTuple_GET_ITEM(pair, 1))) {
            PyErr_Format(PyExc_TypeError, "send_pairs: item %zd is not a (bytes, bytes) tuple", i);
            return NULL;
        }
        int err = send_frame(handle, PyTuple_GET_ITEM(pair, 0), ZIO_SNDMORE | ZIO_DONTWAIT);
        if (err == 0) {
            err = send_frame(handle, PyTuple_GET_ITEM(pair, 1), ZIO_DONTWAIT);
        }
        if (err == EAGAIN) {
            dropped++;
        }
        else if (err != 0) {
            return raise_errno(err);
        }
    }
    return PyLong_FromSsize_t(dropped);
}

static PyMethodDef zio_methods[] = {
    {"load", (PyCFunction)zio_load, METH_VARARGS,
     "load(path, ZMQError): find libzmq through pyzmq's loaded extension at path; (major, "
     "minor, patch)."},
    {"recv_batch", (PyCFunction)(void (*)(void))zio_recv_batch, METH_FASTCALL,
     "recv_batch(handle, limit) -> (list[bytes], drained): see the module's source."},
    {"send_pairs", (PyCFunction)(void (*)(void))zio_send_pairs, METH_FASTCALL,
     "send_pairs(handle, pairs) -> pairs dropped on EAGAIN."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef zio_module = {
    PyModuleDef_HEAD_INIT, "_zio", "book_builder's ZeroMQ receives and sends in C.", -1,
    zio_methods,
};

PyMODINIT_FUNC
PyInit__zio(void)
{
    return PyModule_Create(&zio_module);
}
