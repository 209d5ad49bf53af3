/* varcas._timing: the Python face of the C timing core; the only file that includes Python.h.
 *
 * monotonic_ns(): CLOCK_MONOTONIC, the one clock of every varcas timestamp.
 * Timer: an absolute-deadline timerfd, so the dispatcher's event loop wakes within
 *   microseconds of a planned send time instead of at the loop's millisecond timer grain.
 * StreamParser: wraps httpsse.c. feed() stamps the read with clock_gettime before anything
 *   else, then parses it; Python runs once per socket read, never once per token. The
 *   content-event times are exported through the buffer protocol (numpy.frombuffer, no
 *   copy); while an export is alive nothing may move the array, so what would (a reset, a
 *   feed that might grow it) raises BufferError instead of leaving a dangling pointer.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>

#include <errno.h>
#include <stddef.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "httpsse.h"

static int64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static PyObject *monotonic_ns(PyObject *mod, PyObject *unused) { return PyLong_FromLongLong(mono_ns()); }

/* Bind a vectorcall's arguments to names[0:n] (positional or keyword); unset slots stay
 * NULL. The first `required` names must be given. */
static int bind(const char *fname, const char *const *names, int n, int required, PyObject *const *args,
                Py_ssize_t nargs, PyObject *kwnames, PyObject **out)
{
    Py_ssize_t nkw = kwnames ? PyTuple_GET_SIZE(kwnames) : 0;
    for (int i = 0; i < n; i++)
        out[i] = i < nargs ? args[i] : NULL;
    if (nargs > n) {
        PyErr_Format(PyExc_TypeError, "%s() takes at most %d arguments (%zd given)", fname, n, nargs);
        return -1;
    }
    for (Py_ssize_t k = 0; k < nkw; k++) {
        PyObject *key = PyTuple_GET_ITEM(kwnames, k);
        int i = 0;
        while (i < n && PyUnicode_CompareWithASCIIString(key, names[i]) != 0)
            i++;
        if (i == n || out[i]) {
            PyErr_Format(PyExc_TypeError, "%s() got an unexpected or repeated argument '%U'", fname, key);
            return -1;
        }
        out[i] = args[nargs + k];
    }
    for (int i = 0; i < required; i++)
        if (!out[i]) {
            PyErr_Format(PyExc_TypeError, "%s() missing required argument '%s'", fname, names[i]);
            return -1;
        }
    return 0;
}

/* now_ns argument: absent or negative means the time taken at the start of the call. */
static int now_arg(PyObject *obj, int64_t taken, int64_t *now)
{
    long long v = obj ? PyLong_AsLongLong(obj) : -1;
    if (v == -1 && PyErr_Occurred()) return -1;
    *now = v < 0 ? taken : (int64_t)v;
    return 0;
}

/* ---- Timer ---------------------------------------------------------------------------- */

typedef struct {
    PyObject_HEAD int fd;
} TimerObject;

static PyObject *Timer_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    static char *kwlist[] = {NULL};
    TimerObject *self;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, ":Timer", kwlist)) return NULL;
    self = (TimerObject *)type->tp_alloc(type, 0);
    if (!self) return NULL;
    self->fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    if (self->fd < 0) {
        PyErr_SetFromErrno(PyExc_OSError);
        Py_DECREF(self);
        return NULL;
    }
    return (PyObject *)self;
}

static void Timer_dealloc(TimerObject *self)
{
    if (self->fd >= 0) close(self->fd);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static int timer_open(TimerObject *self)
{
    if (self->fd >= 0) return 0;
    PyErr_SetString(PyExc_ValueError, "Timer is closed");
    return -1;
}

static PyObject *Timer_fileno(TimerObject *self, PyObject *unused)
{
    return timer_open(self) ? NULL : PyLong_FromLong(self->fd);
}

static PyObject *Timer_arm(TimerObject *self, PyObject *arg)
{
    long long d = PyLong_AsLongLong(arg);
    struct itimerspec its = {{0, 0}, {0, 0}}; /* an all-zero it_value disarms */
    if (d == -1 && PyErr_Occurred()) return NULL;
    if (timer_open(self)) return NULL;
    if (d < 0) {
        PyErr_SetString(PyExc_ValueError, "deadline_ns must be >= 0");
        return NULL;
    }
    its.it_value.tv_sec = (time_t)(d / 1000000000);
    its.it_value.tv_nsec = (long)(d % 1000000000);
    if (timerfd_settime(self->fd, TFD_TIMER_ABSTIME, &its, NULL) < 0) return PyErr_SetFromErrno(PyExc_OSError);
    Py_RETURN_NONE;
}

static PyObject *Timer_consume(TimerObject *self, PyObject *unused)
{
    uint64_t count;
    if (timer_open(self)) return NULL;
    if (read(self->fd, &count, sizeof count) != (ssize_t)sizeof count) {
        if (errno == EAGAIN) return PyLong_FromLong(0);
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    return PyLong_FromUnsignedLongLong(count);
}

static PyObject *Timer_close(TimerObject *self, PyObject *unused)
{
    if (self->fd >= 0) close(self->fd);
    self->fd = -1;
    Py_RETURN_NONE;
}

static PyMethodDef Timer_methods[] = {
    {"fileno", (PyCFunction)Timer_fileno, METH_NOARGS, "The timerfd, for loop.add_reader."},
    {"arm", (PyCFunction)Timer_arm, METH_O, "arm(deadline_ns): fire at this CLOCK_MONOTONIC time; 0 disarms."},
    {"consume", (PyCFunction)Timer_consume, METH_NOARGS, "Expirations since the last call (0 if none); never blocks."},
    {"close", (PyCFunction)Timer_close, METH_NOARGS, "Close the timerfd."},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject TimerType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "varcas._timing.Timer",
    .tp_basicsize = sizeof(TimerObject),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Timer(): an absolute-time CLOCK_MONOTONIC timerfd (non-blocking, close-on-exec).",
    .tp_new = Timer_new,
    .tp_dealloc = (destructor)Timer_dealloc,
    .tp_methods = Timer_methods,
};

/* ---- StreamParser --------------------------------------------------------------------- */

typedef struct {
    PyObject_HEAD hs_parser p;
    Py_ssize_t exports; /* live buffer views of p.tokens */
} ParserObject;

static PyObject *Parser_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    static char *kwlist[] = {"excerpt_limit", NULL};
    Py_ssize_t limit = 512;
    ParserObject *self;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "|n:StreamParser", kwlist, &limit)) return NULL;
    if (limit < 0) {
        PyErr_SetString(PyExc_ValueError, "excerpt_limit must be >= 0");
        return NULL;
    }
    self = (ParserObject *)type->tp_alloc(type, 0);
    if (!self) return NULL;
    if (hs_init(&self->p, (size_t)limit)) {
        Py_DECREF(self);
        return PyErr_NoMemory();
    }
    return (PyObject *)self;
}

static void Parser_dealloc(ParserObject *self)
{
    hs_free(&self->p);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static const char *const FEED_ARGS[] = {"data", "now_ns"};

static PyObject *Parser_feed(ParserObject *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    int64_t taken = mono_ns(), now;
    PyObject *a[2];
    Py_buffer view = {0};
    const char *d;
    Py_ssize_t n;
    int r;
    if (bind("feed", FEED_ARGS, 2, 1, args, nargs, kwnames, a) || now_arg(a[1], taken, &now)) return NULL;
    if (PyBytes_CheckExact(a[0])) { /* what asyncio hands data_received */
        d = PyBytes_AS_STRING(a[0]);
        n = PyBytes_GET_SIZE(a[0]);
    } else {
        if (PyObject_GetBuffer(a[0], &view, PyBUF_SIMPLE)) return NULL;
        d = view.buf;
        n = view.len;
    }
    /* A content event takes well over 16 bytes of SSE text, and all but the first one that a
     * read completes lie wholly in that read: this bounds the growth of the token array. */
    if (self->exports && self->p.cap_tokens - self->p.n_tokens < (size_t)n / 16 + 1) {
        PyBuffer_Release(&view);
        PyErr_SetString(PyExc_BufferError, "StreamParser timestamps are exported; release them before feeding more");
        return NULL;
    }
    r = hs_feed(&self->p, d, (size_t)n, now);
    PyBuffer_Release(&view);
    return PyLong_FromLong(r);
}

static const char *const EOF_ARGS[] = {"now_ns"};

static PyObject *Parser_eof(ParserObject *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    int64_t taken = mono_ns(), now;
    PyObject *a[1];
    if (bind("eof", EOF_ARGS, 1, 0, args, nargs, kwnames, a) || now_arg(a[0], taken, &now)) return NULL;
    return PyLong_FromLong(hs_eof(&self->p, now));
}

static const char *const RESET_ARGS[] = {"max_tokens"};

static PyObject *Parser_reset(ParserObject *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    PyObject *a[1];
    unsigned long long max_tokens = 0;
    int overflow = 0;
    if (bind("reset", RESET_ARGS, 1, 0, args, nargs, kwnames, a)) return NULL;
    if (a[0]) {
        PyObject *index = PyNumber_Index(a[0]); /* an int, or any integer type (numpy's) */
        long long v;
        if (!index) return NULL;
        v = PyLong_AsLongLongAndOverflow(index, &overflow);
        Py_DECREF(index);
        if (v == -1 && PyErr_Occurred()) return NULL;
        if (overflow || v < 0 || (unsigned long long)v > HS_MAX_TOKENS_LIMIT) {
            PyErr_Format(PyExc_ValueError, "max_tokens must be in [0, %u]", HS_MAX_TOKENS_LIMIT);
            return NULL;
        }
        max_tokens = (unsigned long long)v;
    }
    if (self->exports) {
        PyErr_SetString(PyExc_BufferError, "StreamParser timestamps are exported; release them before reset()");
        return NULL;
    }
    hs_reset(&self->p, max_tokens);
    Py_RETURN_NONE;
}

static PyObject *bytes_or_none(int has, const hs_buf *b)
{
    if (!has) Py_RETURN_NONE;
    return PyBytes_FromStringAndSize(b->p, (Py_ssize_t)b->len);
}

static PyObject *get_keep_alive(ParserObject *s, void *c) { return PyBool_FromLong(s->p.keep_alive); }
static PyObject *get_is_sse(ParserObject *s, void *c) { return PyBool_FromLong(s->p.is_sse); }
static PyObject *get_trailing(ParserObject *s, void *c) { return PyBool_FromLong(s->p.trailing); }
static PyObject *get_n_events(ParserObject *s, void *c) { return PyLong_FromSize_t(s->p.n_tokens); }
static PyObject *get_usage(ParserObject *s, void *c) { return bytes_or_none(s->p.has_usage, &s->p.usage); }
static PyObject *get_error_event(ParserObject *s, void *c)
{
    return bytes_or_none(s->p.has_error_event, &s->p.error_event);
}
static PyObject *get_body_excerpt(ParserObject *s, void *c) { return bytes_or_none(1, &s->p.excerpt); }

static PyObject *get_first_token_ns(ParserObject *s, void *c)
{
    return PyLong_FromLongLong(s->p.n_tokens ? s->p.tokens[0] : 0);
}

static PyObject *get_last_token_ns(ParserObject *s, void *c)
{
    return PyLong_FromLongLong(s->p.n_tokens ? s->p.tokens[s->p.n_tokens - 1] : 0);
}

static PyObject *get_finish_reason(ParserObject *s, void *c)
{
    if (!s->p.has_finish) Py_RETURN_NONE;
    return PyUnicode_DecodeUTF8(s->p.finish.p, (Py_ssize_t)s->p.finish.len, "strict");
}

static PyObject *get_errmsg(ParserObject *s, void *c)
{
    if (!s->p.errmsg) Py_RETURN_NONE;
    return PyUnicode_FromString(s->p.errmsg);
}

static PyGetSetDef Parser_getset[] = {
    {"keep_alive", (getter)get_keep_alive, NULL, "The connection may carry the next request.", NULL},
    {"is_sse", (getter)get_is_sse, NULL, "Content-Type is text/event-stream.", NULL},
    {"trailing", (getter)get_trailing, NULL, "Bytes arrived after the response completed.", NULL},
    {"n_events", (getter)get_n_events, NULL, "Content events so far.", NULL},
    {"first_token_ns", (getter)get_first_token_ns, NULL, "Time of the first content event, or 0.", NULL},
    {"last_token_ns", (getter)get_last_token_ns, NULL, "Time of the last content event, or 0.", NULL},
    {"usage", (getter)get_usage, NULL, "Raw JSON of the last non-null usage object, or None.", NULL},
    {"finish_reason", (getter)get_finish_reason, NULL, "The last non-null finish_reason, or None.", NULL},
    {"error_event", (getter)get_error_event, NULL, "Data of the first in-stream error event, or None.", NULL},
    {"body_excerpt", (getter)get_body_excerpt, NULL, "Start of a body that is not a 2xx event stream.", NULL},
    {"errmsg", (getter)get_errmsg, NULL, "Why the response is malformed, or None.", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

#define PARSER_MEMBER(name, type, doc) {#name, type, offsetof(ParserObject, p.name), READONLY, doc}
static PyMemberDef Parser_members[] = {
    PARSER_MEMBER(status, T_INT, "HTTP status of the final response; 0 until its status line."),
    PARSER_MEMBER(first_byte_ns, T_LONGLONG, "Time of the first response byte, or 0."),
    PARSER_MEMBER(done_ns, T_LONGLONG, "Time data: [DONE] was seen, or 0."),
    PARSER_MEMBER(end_ns, T_LONGLONG, "Time the body completed, or 0."),
    {NULL, 0, 0, 0, NULL},
};

static int Parser_getbuffer(ParserObject *self, Py_buffer *view, int flags)
{
    Py_ssize_t *dims; /* shape and strides, owned by the view */
    if (flags & PyBUF_WRITABLE) {
        PyErr_SetString(PyExc_BufferError, "StreamParser timestamps are read-only");
        return -1;
    }
    dims = PyMem_Malloc(2 * sizeof *dims);
    if (!dims) {
        PyErr_NoMemory();
        return -1;
    }
    dims[0] = (Py_ssize_t)self->p.n_tokens;
    dims[1] = sizeof(int64_t);
    view->obj = Py_NewRef(self);
    view->buf = self->p.tokens;
    view->len = dims[0] * dims[1];
    view->readonly = 1;
    view->itemsize = sizeof(int64_t);
    view->format = (flags & PyBUF_FORMAT) ? (char *)"q" : NULL;
    view->ndim = 1;
    view->shape = (flags & PyBUF_ND) ? &dims[0] : NULL;
    view->strides = (flags & PyBUF_STRIDES) == PyBUF_STRIDES ? &dims[1] : NULL;
    view->suboffsets = NULL;
    view->internal = dims;
    self->exports++;
    return 0;
}

static void Parser_releasebuffer(ParserObject *self, Py_buffer *view)
{
    PyMem_Free(view->internal);
    self->exports--;
}

static PyBufferProcs Parser_as_buffer = {(getbufferproc)Parser_getbuffer, (releasebufferproc)Parser_releasebuffer};

static PyMethodDef Parser_methods[] = {
    {"feed", (PyCFunction)(void (*)(void))Parser_feed, METH_FASTCALL | METH_KEYWORDS,
     "feed(data, now_ns=-1): parse one read; 0 = need more, 1 = complete, -1 = protocol error."},
    {"eof", (PyCFunction)(void (*)(void))Parser_eof, METH_FASTCALL | METH_KEYWORDS,
     "eof(now_ns=-1): the connection closed; 1 if that completes the body."},
    {"reset", (PyCFunction)(void (*)(void))Parser_reset, METH_FASTCALL | METH_KEYWORDS,
     "reset(max_tokens=0): ready for the next response on the same connection, capped for a request of "
     "max_tokens (0: no caps; see csrc/httpsse.h)."},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject ParserType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "varcas._timing.StreamParser",
    .tp_basicsize = sizeof(ParserObject),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "StreamParser(excerpt_limit=512): incremental HTTP/1.1 + chunked + SSE response parser.",
    .tp_new = Parser_new,
    .tp_dealloc = (destructor)Parser_dealloc,
    .tp_methods = Parser_methods,
    .tp_members = Parser_members,
    .tp_getset = Parser_getset,
    .tp_as_buffer = &Parser_as_buffer,
};

/* ---- module --------------------------------------------------------------------------- */

static PyMethodDef module_methods[] = {
    {"monotonic_ns", monotonic_ns, METH_NOARGS, "CLOCK_MONOTONIC in ns (the clock of time.monotonic_ns())."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef timing_module = {
    PyModuleDef_HEAD_INIT, "varcas._timing", "varcas C timing core: clock, timer, stream parser.", -1,
    module_methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__timing(void)
{
    PyObject *m;
    if (PyType_Ready(&TimerType) < 0 || PyType_Ready(&ParserType) < 0) return NULL;
    m = PyModule_Create(&timing_module);
    if (!m) return NULL;
    if (PyModule_AddObjectRef(m, "Timer", (PyObject *)&TimerType) < 0 ||
        PyModule_AddObjectRef(m, "StreamParser", (PyObject *)&ParserType) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
