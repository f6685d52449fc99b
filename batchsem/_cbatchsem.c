/*
 * batchsem._cbatchsem: the compiled core of batchsem (Semaphore, BoundedSemaphore,
 * Permit and the acquire awaitable), hand-written against the CPython C API.
 *
 * Implementation details
 * ----------------------
 * The algorithm is the one of batchsem/_semaphore.py (the readable reference),
 * itself a port of Tokio's batch_semaphore: a counter of free permits plus a
 * FIFO queue of waiters kept as an intrusive doubly linked list. Permits that
 * come back are handed to the head of the queue; a head that needs more keeps
 * what it got (a partial reservation) and nothing passes it. Only once the
 * queue is empty do permits reach the counter. Invariants:
 *
 *   (I1) head != NULL  =>  permits == 0           (no barging)
 *   (I2) only the head may have 0 < assigned       (partial reservations)
 *   (I3) 0 <= assigned <= needed for every node
 *   (I4) waiting == length of the queue; node->queued <=> node is linked
 *   (I5) permits <= MAX_PERMITS
 *
 * Why C and not Python (or Cython): every state change below is a run of plain
 * C statements between two points where no Python code can run. A signal
 * handler (KeyboardInterrupt) only runs at bytecode boundaries, so it cannot
 * land between two steps of a state change: there is no window in which the
 * semaphore is half-updated. The rules that keep it so:
 *
 *   (R1) Between LOCK(sem) and UNLOCK(sem) nothing allocates, no reference is
 *        dropped (a DECREF could run __del__ or a weakref callback) and no
 *        Python code is called. Everything a state change needs (a Permit, a
 *        future) is allocated before it; references are dropped after it.
 *   (R2) Waking (future.set_result, loop.call_soon_threadsafe, a tracer)
 *        happens after the state change is complete. A waiter is woken at most
 *        once: a served node leaves the queue, under the lock, in the same step
 *        that decides it was served, and only the code that unlinked it wakes it.
 *   (R3) Ownership of permits is decided under the lock. A request that will
 *        not complete (cancelled, closed, timed out, its loop closed) gives back
 *        whatever it holds, under the lock, exactly once (node->assigned is
 *        zeroed in the same step).
 *
 * Stranded waiters. An async waiter that was served and woken (its wake-up
 * scheduled on its loop) but whose loop is closed before the wake-up runs never
 * resumes. Such nodes stay in sem->granted; reclaim() gives back what they hold.
 * Inspections and new requests run it; for waiters already queued:
 *
 *   (S)  Every queued waiter that a stranded node could block re-checks with a
 *        bounded delay (RECHECK_FIRST doubling to RECHECK_MAX, the values of the
 *        Python core) until it leaves the queue or the semaphore is closed. A
 *        blocking waiter always does (wait_event() waits in slices). An async
 *        waiter does when it was queued after async waiters of two different
 *        loops had queued (sem->many; sem->home is the one loop before that):
 *        a timer on its own loop (arm_recheck, recheck).
 *
 * A stranded node S blocks a queued waiter W only if W is on another loop (a
 * waiter on S's loop never resumes either) and S was queued before W (FIFO).
 * When W queued, S's loop had queued a waiter already, so W's queueing found or
 * set sem->many. Waiters of a single loop never re-check and pay nothing. The
 * full argument is in batchsem/_waitlist.py (stranded).
 *
 * LOCK/UNLOCK are no-ops under the GIL: the GIL is not released and no Python
 * code runs between them (R1), so the region is atomic. A free-threaded build
 * (Py_GIL_DISABLED, CPython >= 3.13) gets a real PyMutex per semaphore, which
 * also guards the `n` of the semaphore's Permits and every read of a field that
 * holds a reference (tracer, name). Free-threading additions, all compiled out
 * under the GIL: fields read without the lock as hints are FT_ATOMIC; the lazily
 * set module globals have their own mutex; a request (send/throw/close) is
 * stepped by one thread at a time (acq_claim). The module declares
 * Py_MOD_GIL_NOT_USED. Built and run on CPython 3.13.5 free-threaded (and under
 * ThreadSanitizer), see docs/development.md.
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <pythread.h>
#include <stddef.h>
#include <stdint.h>
#include <math.h>
#include <time.h>

#define MAX_PERMITS ((int64_t)((((uint64_t)1) << 61) - 1))
/* (S): the first re-check after RECHECK_FIRST seconds, then doubling intervals up
 * to RECHECK_MAX (batchsem._waitlist.RECHECK_FIRST / RECHECK_MAX). */
#define RECHECK_FIRST 0.01
#define RECHECK_MAX 1.0

#ifdef Py_GIL_DISABLED
#include <stdatomic.h>
#define LOCK(sem) PyMutex_Lock(&(sem)->mutex)
#define UNLOCK(sem) PyMutex_Unlock(&(sem)->mutex)
/* Free threading: guards the module globals set lazily (trace_module,
 * debug_module, debug_default). Nothing under it calls Python code. */
static PyMutex globals_mutex;
#define GLOBALS_LOCK() PyMutex_Lock(&globals_mutex)
#define GLOBALS_UNLOCK() PyMutex_Unlock(&globals_mutex)
/* A field also read without LOCK(sem) (a hint: "is a tracer set", "is any node
 * in granted", closed, a capacity check) is an atomic object: those reads are
 * not data races, and its writes, all under LOCK(sem), are seen whole. */
#define FT_ATOMIC _Atomic
#else
#define LOCK(sem) ((void)0)
#define UNLOCK(sem) ((void)0)
#define GLOBALS_LOCK() ((void)0)
#define GLOBALS_UNLOCK() ((void)0)
#define FT_ATOMIC
#endif

/* ------------------------------------------------------------ module state */

static PyObject *AcquireError;     /* batchsem._errors.AcquireError */
static PyObject *ClosedError;      /* batchsem._errors.Closed */
static PyObject *NoPermitsError;   /* batchsem._errors.NoPermits */
static PyObject *InvalidStateError;/* asyncio.InvalidStateError */
static PyObject *get_running_loop; /* asyncio.events._get_running_loop */
static PyObject *resolve_fn;       /* _cbatchsem._resolve */
static PyObject *recheck_fn;       /* _cbatchsem._recheck */
static PyObject *base_create_future; /* asyncio.BaseEventLoop.create_future */
static PyObject *future_type;      /* asyncio.Future */
static PyObject *kwnames_loop;     /* ("loop",) */
static PyObject *trace_module;     /* batchsem._trace: TraceEvent, emit, SemaphoreStatistics */
static PyObject *debug_module;     /* batchsem._cdebug: debug-mode glue, imported on first use */
static PyObject *str_set_result, *str_create_future, *str_call_soon_threadsafe,
    *str_blocking, *str_done, *str_is_closed, *str_call_later;

static PyTypeObject Semaphore_Type;
static PyTypeObject BoundedSemaphore_Type;
static PyTypeObject Permit_Type;
static PyTypeObject Acquire_Type;
static PyTypeObject Ready_Type;
static PyObject *ready_none;      /* a completed awaitable whose result is None */

/* ----------------------------------------------------------------- objects */

typedef struct AcqObject AcqObject;

typedef struct {
    PyObject_HEAD
    int64_t permits;          /* the free counter; (I1), (I5) */
    /* (I6) permits + the head's partial reservation <= limit: MAX_PERMITS for a
     * Semaphore, the capacity of a BoundedSemaphore (lowered by forgetting). */
    FT_ATOMIC int64_t limit;
    char bounded;             /* a BoundedSemaphore: limit is a capacity */
    Py_ssize_t waiting;       /* (I4) */
    AcqObject *head, *tail;   /* FIFO queue, oldest at head; each linked node holds a reference */
    /* Async waiters woken (their wake-up scheduled) but not resumed yet, linked
     * through gprev/gnext; each holds a reference. A node left here whose loop
     * is closed will never resume: reclaim() takes its permits back. */
    AcqObject *granted;
    FT_ATOMIC Py_ssize_t ngranted;
    PyObject *name;           /* str or None; immutable after __init__ */
    PyObject *FT_ATOMIC tracer; /* callable or NULL */
    PyObject *debug;          /* batchsem._semaphore.DebugLedger in debug mode, else NULL */
    FT_ATOMIC char closed;    /* goes from 0 to 1 only */
    PyObject *weakreflist;
#ifdef Py_GIL_DISABLED
    PyMutex mutex;
#endif
    /* (S): the loop of every async waiter queued so far while they were all on
     * one loop (NULL before the first; a reference), and many = 1 (home NULL)
     * from the first waiter of a second loop on. Under LOCK(sem). Last: the
     * fields the fast paths read keep their offsets. */
    PyObject *home;
    char many;
} SemObject;

typedef struct {
    PyObject_HEAD
    SemObject *sem;
    int64_t n;                /* permits held; changed only under LOCK(sem) */
    PyObject *record;         /* debug mode: the ledger's record of this acquisition */
} PermitObject;

enum { ST_INIT, ST_WAITING, ST_DONE };
enum { K_PERMIT, K_NONE, K_BLOCKING };

/* A request: the object `sem.acquire(n)` returns (a coroutine-compatible
 * awaitable), the one behind a contended `async with sem`, and the queue node of
 * a blocking acquire. It is its own queue node: prev/next/assigned/queued may
 * only be touched under LOCK(sem), except that a node the semaphore has
 * unlinked (served or failed) is chained through `next` to the other nodes to
 * wake, and only the waker reads and clears that link. fut/loop/thread/event
 * are set before the node is linked and never change while it is linked. */
struct AcqObject {
    PyObject_HEAD
    SemObject *sem;
    AcqObject *prev, *next;
    AcqObject *gprev, *gnext; /* in sem->granted; under LOCK(sem) */
    int64_t needed, assigned;
    char queued;
    char in_granted;
    char state;
    char kind;
    PyObject *fut;            /* async: the future the task awaits */
    PyObject *loop;           /* async: the loop of that future */
    unsigned long thread;     /* async: ident of the thread that runs that loop */
    PyThread_type_lock event; /* blocking: released once to wake the thread */
    PermitObject *permit;     /* K_PERMIT/K_BLOCKING: the Permit the request fills */
#ifdef Py_GIL_DISABLED
    atomic_int stepping;      /* a thread is in send/throw/close (acq_claim) */
#endif
};

typedef struct {
    PyObject_HEAD
    PyObject *value;
} ReadyObject;

/* ------------------------------------------------------------ small helpers */

static int
set_count_error(PyObject *num, const char *what)
{
    /* num is an int (exact or from __index__) known to be out of range */
    PyObject *zero = PyLong_FromLong(0);
    if (zero == NULL)
        return -1;
    int neg = PyObject_RichCompareBool(num, zero, Py_LT);
    Py_DECREF(zero);
    if (neg < 0)
        return -1;
    if (neg)
        PyErr_Format(PyExc_ValueError, "%s must be >= 0, got %S", what, num);
    else
        PyErr_Format(PyExc_ValueError, "%s must be <= MAX_PERMITS (%lld), got %S", what,
                     (long long)MAX_PERMITS, num);
    return -1;
}

/* Parse a permit count: an int (or an object with __index__, not bool) in
 * 0..MAX_PERMITS. TypeError / ValueError otherwise. */
static int
parse_count(PyObject *obj, const char *what, int64_t *out)
{
    PyObject *num;
    if (PyLong_CheckExact(obj)) {
        num = Py_NewRef(obj);
    }
    else {
        if (PyBool_Check(obj)) {
            PyErr_Format(PyExc_TypeError, "%s must be an integer, not bool", what);
            return -1;
        }
        if (!PyIndex_Check(obj)) {
            PyErr_Format(PyExc_TypeError, "%s must be an integer, not %.200s", what,
                         _PyType_Name(Py_TYPE(obj)));
            return -1;
        }
        num = PyNumber_Index(obj);
        if (num == NULL)
            return -1;
    }
    int overflow;
    long long v = PyLong_AsLongLongAndOverflow(num, &overflow);
    if (v == -1 && PyErr_Occurred()) {
        Py_DECREF(num);
        return -1;
    }
    if (overflow || v < 0 || v > MAX_PERMITS) {
        set_count_error(num, what);
        Py_DECREF(num);
        return -1;
    }
    Py_DECREF(num);
    *out = (int64_t)v;
    return 0;
}

/* Vectorcall argument parsing for up to 3 parameters; defaults stay in objs. */
static int
parse_args(const char *fname, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames,
           const char *const *names, int nparams, int nrequired, PyObject **objs)
{
    if (nargs > nparams) {
        PyErr_Format(PyExc_TypeError, "%s() takes at most %d positional arguments (%zd given)",
                     fname, nparams, nargs);
        return -1;
    }
    for (Py_ssize_t i = 0; i < nargs; i++)
        objs[i] = args[i];
    if (kwnames != NULL) {
        Py_ssize_t nkw = PyTuple_GET_SIZE(kwnames);
        for (Py_ssize_t k = 0; k < nkw; k++) {
            PyObject *key = PyTuple_GET_ITEM(kwnames, k);
            int j;
            for (j = 0; j < nparams; j++) {
                if (PyUnicode_CompareWithASCIIString(key, names[j]) == 0)
                    break;
            }
            if (j == nparams) {
                PyErr_Format(PyExc_TypeError, "%s() got an unexpected keyword argument '%S'",
                             fname, key);
                return -1;
            }
            if (j < nargs) {
                PyErr_Format(PyExc_TypeError, "%s() got multiple values for argument '%s'",
                             fname, names[j]);
                return -1;
            }
            objs[j] = args[nargs + k];
        }
    }
    for (int j = 0; j < nrequired; j++) {
        if (objs[j] == NULL) {
            PyErr_Format(PyExc_TypeError, "%s() missing required argument '%s'", fname,
                         names[j]);
            return -1;
        }
    }
    return 0;
}

static PyObject *
import_attr_any(const char *module, const char *name)
{
    PyObject *mod = PyImport_ImportModule(module);
    if (mod == NULL)
        return NULL;
    PyObject *attr = PyObject_GetAttrString(mod, name);
    Py_DECREF(mod);
    return attr;
}

static double
monotonic_now(void)
{
#ifdef _WIN32
    return (double)GetTickCount64() * 1e-3;
#else
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
#endif
}

/* The module in *slot, imported on first use and kept for the process's life;
 * a borrowed reference, or NULL with an exception. The import runs outside
 * GLOBALS_LOCK; if two threads import at once (free threading), the first to
 * publish wins and the other drops its reference. */
static PyObject *
lazy_module(PyObject **slot, const char *name)
{
    GLOBALS_LOCK();
    PyObject *mod = *slot;
    GLOBALS_UNLOCK();
    if (mod != NULL)
        return mod;
    PyObject *imported = PyImport_ImportModule(name);
    if (imported == NULL)
        return NULL;
    GLOBALS_LOCK();
    if (*slot == NULL)
        *slot = Py_NewRef(imported);
    mod = *slot;
    GLOBALS_UNLOCK();
    Py_DECREF(imported);
    return mod;
}

static PyObject *
support(void)
{
    return lazy_module(&trace_module, "batchsem._trace");
}

/* Call batchsem._cdebug.<fname>(a, n) on the debug path; a new reference or NULL. */
static PyObject *
debug_call(const char *fname, PyObject *a, int64_t n)
{
    PyObject *mod = lazy_module(&debug_module, "batchsem._cdebug");
    if (mod == NULL)
        return NULL;
    return PyObject_CallMethod(mod, fname, "OL", a, (long long)n);
}

/* Debug mode: note that permit gave up n permits (released, forgotten, split off). */
static void
debug_covered(PyObject *record, int64_t n)
{
    if (record == NULL || n == 0)
        return;
    PyObject *et, *ev, *etb;
    PyErr_Fetch(&et, &ev, &etb);
    PyObject *r = debug_call("covered", record, n);
    if (r == NULL)
        PyErr_WriteUnraisable(record);
    Py_XDECREF(r);
    PyErr_Restore(et, ev, etb);
}

/* --------------------------------------------------------------- tracing */

/* Hand a TraceEvent to the tracer through the Python module's emit() (which
 * logs and drops a tracer's exception). Called only with a tracer set, after
 * the state change (R2); an error here is reported as unraisable, never
 * propagated, so a trace call cannot break an acquire or a release. */
static void
trace(SemObject *sem, const char *kind, int64_t n, int64_t available, Py_ssize_t waiting)
{
    /* Read and hold the tracer under the lock: the setter swaps it under the lock
     * and drops the old one after, so it stays alive while we call it. */
    LOCK(sem);
    PyObject *tracer = sem->tracer;
    Py_XINCREF(tracer);
    PyObject *name = Py_NewRef(sem->name ? sem->name : Py_None); /* __init__ may swap it */
    UNLOCK(sem);
    if (tracer == NULL) {
        Py_DECREF(name);
        return;
    }
    PyObject *exc_type, *exc_value, *exc_tb;
    PyErr_Fetch(&exc_type, &exc_value, &exc_tb);
    PyObject *mod = support();
    PyObject *event = NULL, *res = NULL;
    if (mod != NULL) {
        PyObject *cls = PyObject_GetAttrString(mod, "TraceEvent");
        if (cls != NULL) {
            event = PyObject_CallFunction(cls, "sOLLn", kind, name, (long long)n,
                                          (long long)available, waiting);
            Py_DECREF(cls);
        }
        if (event != NULL) {
            res = PyObject_CallMethod(mod, "emit", "OO", tracer, event);
        }
    }
    if (res == NULL)
        PyErr_WriteUnraisable((PyObject *)sem);
    Py_XDECREF(res);
    Py_XDECREF(event);
    Py_DECREF(tracer);
    Py_DECREF(name);
    PyErr_Restore(exc_type, exc_value, exc_tb);
}

/* Trace with the counter and queue length read now. */
static void
trace_now(SemObject *sem, const char *kind, int64_t n)
{
    if (sem->tracer == NULL)
        return;
    LOCK(sem);
    int64_t available = sem->permits;
    Py_ssize_t waiting = sem->waiting;
    UNLOCK(sem);
    trace(sem, kind, n, available, waiting);
}

/* ------------------------------------------------------ locked queue steps */

/* Link node at the tail; the queue takes a reference (the caller's INCREF). */
static void
link_tail_locked(SemObject *sem, AcqObject *node)
{
    node->queued = 1;
    node->next = NULL;
    node->prev = sem->tail;
    if (sem->tail == NULL)
        sem->head = node;
    else
        sem->tail->next = node;
    sem->tail = node;
    sem->waiting++;
}

/* Unlink a queued node; the caller now owns the queue's reference. */
static void
unlink_locked(SemObject *sem, AcqObject *node)
{
    AcqObject *prev = node->prev, *next = node->next;
    if (prev == NULL)
        sem->head = next;
    else
        prev->next = next;
    if (next == NULL)
        sem->tail = prev;
    else
        next->prev = prev;
    node->prev = node->next = NULL;
    node->queued = 0;
    sem->waiting--;
}

/* Hand rem permits to the queue, head first, the rest to the counter. Returns
 * the served nodes (a prefix of the queue, chained through next; the chain owns
 * the queue's references). The caller has checked that the counter cannot pass
 * MAX_PERMITS (with a non-empty queue it is 0 (I1), so it cannot). */
static AcqObject *
assign_locked(SemObject *sem, int64_t rem)
{
    AcqObject *node = sem->head, *last = NULL;
    while (node != NULL && rem > 0) {
        int64_t want = node->needed - node->assigned;
        if (rem < want) {
            node->assigned += rem;
            rem = 0;
            break;
        }
        rem -= want;
        node->assigned = node->needed;
        node->queued = 0;
        node->prev = NULL;
        sem->waiting--;
        last = node;
        node = node->next;
    }
    sem->permits += rem;
    if (last == NULL)
        return NULL;
    AcqObject *served = sem->head;
    last->next = NULL;
    sem->head = node;
    if (node == NULL)
        sem->tail = NULL;
    else
        node->prev = NULL;
    return served;
}

/* May n permits be released? (I6): with nobody queued they all reach the
 * counter; with a queue the counter is 0 (I1) and only the head holds a partial
 * reservation (I2), so the head's reservation plus n bounds what ends up outside
 * any Permit. 0 if allowed. */
static int
put_check_locked(SemObject *sem, int64_t n)
{
    int64_t base = sem->head == NULL ? sem->permits : sem->head->assigned;
    return n > sem->limit - base ? -1 : 0;
}

static int
put_error(SemObject *sem, int64_t n)
{
    LOCK(sem);
    int64_t free = sem->permits, limit = sem->limit;
    UNLOCK(sem);
    if (sem->bounded)
        PyErr_Format(PyExc_ValueError,
                     "BoundedSemaphore released too many times: %lld more would exceed its "
                     "capacity of %lld (%lld free)",
                     (long long)n, (long long)limit, (long long)free);
    else
        PyErr_Format(PyExc_ValueError,
                     "adding %lld permits would exceed MAX_PERMITS (%lld); %lld are free",
                     (long long)n, (long long)MAX_PERMITS, (long long)free);
    return -1;
}

/* ------------------------------------------------------------------ waking */

/* The granted list: async nodes woken but not resumed. The caller holds a
 * reference to node; add takes one more for the list, remove hands it back to
 * the caller to drop after UNLOCK (R1). */
static void
granted_add_locked(SemObject *sem, AcqObject *node)
{
    node->in_granted = 1;
    node->gprev = NULL;
    node->gnext = sem->granted;
    if (sem->granted != NULL)
        sem->granted->gprev = node;
    sem->granted = node;
    sem->ngranted++;
}

static int
granted_remove_locked(SemObject *sem, AcqObject *node)
{
    if (!node->in_granted)
        return 0;
    if (node->gprev == NULL)
        sem->granted = node->gnext;
    else
        node->gprev->gnext = node->gnext;
    if (node->gnext != NULL)
        node->gnext->gprev = node->gprev;
    node->gprev = node->gnext = NULL;
    node->in_granted = 0;
    sem->ngranted--;
    return 1;
}

static int failed(SemObject *sem, AcqObject *node);

static PyObject *
resolve(PyObject *Py_UNUSED(module), PyObject *fut)
{
    PyObject *done = PyObject_CallMethodNoArgs(fut, str_done);
    if (done == NULL)
        return NULL;
    int is_done = PyObject_IsTrue(done);
    Py_DECREF(done);
    if (is_done < 0)
        return NULL;
    if (!is_done) {
        PyObject *r = PyObject_CallMethodOneArg(fut, str_set_result, Py_None);
        if (r == NULL)
            return NULL;
        Py_DECREF(r);
    }
    Py_RETURN_NONE;
}

/* Wake one unlinked node. An async node enters the granted list before its
 * wake-up is scheduled. Returns 0, or -1 with an exception that is not one of
 * the expected outcomes (cancelled meanwhile; its loop is closed). */
static int
wake_one(SemObject *sem, AcqObject *node, unsigned long ident)
{
    if (node->kind == K_BLOCKING) {
        PyThread_release_lock(node->event);
        return 0;
    }
    LOCK(sem);
    /* Since assign_locked() unlinked it, its own thread may have failed it: a
     * cancel while wake() woke the nodes before it (Python code) or, free
     * threaded, at any time. failed() gave back its permits and zeroed assigned
     * (a queued node needs >= 1); it will not resume to leave the granted list. */
    int keep = node->assigned == node->needed;
    if (keep) {
        Py_INCREF(node);
        granted_add_locked(sem, node);
    }
    UNLOCK(sem);
    PyObject *r;
    if (node->thread == ident)
        r = PyObject_CallMethodOneArg(node->fut, str_set_result, Py_None);
    else
        r = PyObject_CallMethodObjArgs(node->loop, str_call_soon_threadsafe, resolve_fn,
                                       node->fut, NULL);
    if (r != NULL) {
        Py_DECREF(r);
        return 0;
    }
    if (PyErr_ExceptionMatches(InvalidStateError)) {
        /* cancelled meanwhile: its task gives the permits back when it runs */
        PyErr_Clear();
        return 0;
    }
    if (PyErr_ExceptionMatches(PyExc_RuntimeError)) {
        /* its loop is closed: it will never resume; take its permits back */
        PyErr_Clear();
        return failed(sem, node);
    }
    return -1;
}

/* The one wake path: wake a chain of unlinked nodes (consumes the chain's
 * references). Every node is woken even if one fails; the first unexpected
 * error is re-raised. */
static int
wake(SemObject *sem, AcqObject *node)
{
    if (node == NULL)
        return 0;
    unsigned long ident = PyThread_get_thread_ident();
    PyObject *et = NULL, *ev = NULL, *etb = NULL;
    while (node != NULL) {
        AcqObject *next = node->next;
        node->next = NULL;
        if (wake_one(sem, node, ident) < 0) {
            if (et == NULL)
                PyErr_Fetch(&et, &ev, &etb);
            else
                PyErr_WriteUnraisable((PyObject *)node);
        }
        Py_DECREF(node);
        node = next;
    }
    if (et != NULL) {
        PyErr_Restore(et, ev, etb);
        return -1;
    }
    return 0;
}

/* The request will not complete: unlink it (if queued) and give back all it was
 * handed (R3). A second call gives back nothing more. */
static int
failed(SemObject *sem, AcqObject *node)
{
    int was_queued, was_granted;
    AcqObject *woken = NULL;
    LOCK(sem);
    was_granted = granted_remove_locked(sem, node);
    was_queued = node->queued;
    if (was_queued)
        unlink_locked(sem, node);
    int64_t n = node->assigned;
    if (n) {
        node->assigned = 0;
        woken = assign_locked(sem, n);
    }
    int closed = sem->closed;
    UNLOCK(sem);
    /* the queue's and the granted list's references; the caller holds another */
    if (was_queued)
        Py_DECREF(node);
    if (was_granted)
        Py_DECREF(node);
    int rc = wake(sem, woken);
    if (sem->tracer != NULL)
        trace_now(sem, closed ? "failed_closed" : "cancelled", node->needed);
    return rc;
}

/* If node (an async request; the caller holds a reference) is on a closed loop,
 * it will never resume: fail it, giving back what it holds. 1 if it was failed,
 * 0 if its loop is open, -1 on an error, which is reported, never raised. */
static int
fail_if_stranded(SemObject *sem, AcqObject *node)
{
    PyObject *closed = PyObject_CallMethodNoArgs(node->loop, str_is_closed);
    int stranded = closed == NULL ? -1 : PyObject_IsTrue(closed);
    Py_XDECREF(closed);
    if (stranded > 0 && failed(sem, node) < 0)
        stranded = -1;
    if (stranded < 0)
        PyErr_WriteUnraisable((PyObject *)node);
    return stranded;
}

/* Give back the permits of woken waiters whose loop was closed before they
 * resumed (they will never resume). Errors are reported, never raised. */
static void
reclaim(SemObject *sem)
{
    LOCK(sem);
    Py_ssize_t count = sem->ngranted;
    UNLOCK(sem);
    if (count == 0)
        return;
    AcqObject **nodes = PyMem_New(AcqObject *, count);
    if (nodes == NULL)
        return;
    Py_ssize_t k = 0;
    LOCK(sem);
    for (AcqObject *node = sem->granted; node != NULL && k < count; node = node->gnext) {
        Py_INCREF(node);
        nodes[k++] = node;
    }
    UNLOCK(sem);
    PyObject *et, *ev, *etb;
    PyErr_Fetch(&et, &ev, &etb);
    for (Py_ssize_t i = 0; i < k; i++) {
        fail_if_stranded(sem, nodes[i]);
        Py_DECREF(nodes[i]);
    }
    PyMem_Free(nodes);
    PyErr_Restore(et, ev, etb);
}

/* Rarely run code, placed away from the hot paths (GCC/Clang). */
#if defined(__GNUC__)
#define COLD __attribute__((cold, noinline))
#else
#define COLD
#endif

/* (S): schedule recheck(sem, node, delay) on the queued async node's loop. */
static COLD int
arm_recheck(SemObject *sem, AcqObject *node, double delay)
{
    PyObject *d = PyFloat_FromDouble(delay);
    if (d == NULL)
        return -1;
    PyObject *handle = PyObject_CallMethodObjArgs(node->loop, str_call_later, d, recheck_fn,
                                                  (PyObject *)sem, (PyObject *)node, d, NULL);
    Py_DECREF(d);
    if (handle == NULL)
        return -1;
    Py_DECREF(handle);
    return 0;
}

/* Fail queue heads whose loop was closed while they waited: such a waiter never
 * resumes, and what it was handed towards its request (permits go to the head
 * first, so only the head holds any) would make everyone behind it wait forever.
 * Failing it gives that back and makes the next node the head, checked in turn.
 * Run by the re-checks of (S): the waiters a dead head blocks are exactly those
 * a stranded node could block. Errors are reported, never raised. */
static COLD void
reap_dead_head(SemObject *sem)
{
    PyObject *et, *ev, *etb;
    PyErr_Fetch(&et, &ev, &etb);
    for (;;) {
        LOCK(sem);
        AcqObject *head = sem->head;
        if (head == NULL || head->kind == K_BLOCKING || head->loop == NULL) {
            UNLOCK(sem);
            break;
        }
        Py_INCREF(head);
        UNLOCK(sem);
        /* If another thread served it meanwhile, it is in sem->granted, its loop
         * is closed all the same, and failing it gives back what it holds. */
        int dead = fail_if_stranded(sem, head);
        Py_DECREF(head);
        if (dead <= 0)
            break;
    }
    PyErr_Restore(et, ev, etb);
}

/* _recheck(sem, node, delay): the timer callback of (S), on the waiter's own
 * loop. Reclaims what stranded nodes hold and fails dead heads, then, if node is still queued and the
 * semaphore open, runs again after a doubled delay (capped). It stops by itself
 * once the waiter has left the queue; it is not cancelled when the waiter
 * leaves (as in the Python core), so it fires at most once more. */
static COLD PyObject *
recheck(PyObject *Py_UNUSED(module), PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 3 || !PyObject_TypeCheck(args[0], &Semaphore_Type) ||
        !Py_IS_TYPE(args[1], &Acquire_Type) || ((AcqObject *)args[1])->sem != (SemObject *)args[0]) {
        PyErr_SetString(PyExc_TypeError, "_recheck(semaphore, its queued request, delay)");
        return NULL;
    }
    SemObject *sem = (SemObject *)args[0];
    AcqObject *node = (AcqObject *)args[1];
    double delay = PyFloat_AsDouble(args[2]);
    if (delay == -1.0 && PyErr_Occurred())
        return NULL;
    LOCK(sem);
    int queued = node->queued && !sem->closed;
    Py_ssize_t granted = sem->ngranted;
    UNLOCK(sem);
    if (queued) {
        if (granted)
            reclaim(sem);
        reap_dead_head(sem);
        LOCK(sem);
        queued = node->queued;
        UNLOCK(sem);
    }
    if (!queued || node->loop == NULL)
        Py_RETURN_NONE;
    delay += delay;
    if (arm_recheck(sem, node, delay > RECHECK_MAX ? RECHECK_MAX : delay) < 0)
        return NULL;
    Py_RETURN_NONE;
}

/* Give n permits back (add_permits / release / Permit.release). If permit is
 * given, its n is zeroed in the same step, only if the release is allowed. */
static int
put(SemObject *sem, int64_t n, PermitObject *permit)
{
    int64_t available;
    Py_ssize_t waiting;
    AcqObject *woken = NULL;
    LOCK(sem);
    if (permit != NULL)
        n = permit->n;
    int check = put_check_locked(sem, n);
    if (check == 0) {
        if (permit != NULL)
            permit->n = 0;
        if (sem->head == NULL)
            sem->permits += n;
        else
            woken = assign_locked(sem, n);
    }
    available = sem->permits;
    waiting = sem->waiting;
    UNLOCK(sem);
    if (check)
        return put_error(sem, n);
    if (permit != NULL)
        debug_covered(permit->record, n);
    int rc = wake(sem, woken);
    if (sem->tracer != NULL)
        trace(sem, "release", n, available, waiting);
    return rc;
}

/* --------------------------------------------------------------- Permit */

static PermitObject *
permit_new(SemObject *sem, int64_t n)
{
    PermitObject *p = PyObject_GC_New(PermitObject, &Permit_Type);
    if (p == NULL)
        return NULL;
    p->sem = (SemObject *)Py_NewRef(sem);
    p->n = n;
    p->record = NULL;
    PyObject_GC_Track(p);
    return p;
}

/* Debug mode: open the ledger's record for a Permit just filled (after the
 * state change; a failure is reported, the permits stay held). */
static void
permit_track(PermitObject *p)
{
    SemObject *sem = p->sem;
    if (sem->debug == NULL || p->record != NULL)
        return;
    PyObject *et, *ev, *etb;
    PyErr_Fetch(&et, &ev, &etb);
    p->record = debug_call("acquired", sem->debug, p->n);
    if (p->record == NULL)
        PyErr_WriteUnraisable((PyObject *)p);
    PyErr_Restore(et, ev, etb);
}

static int
permit_traverse(PermitObject *self, visitproc visit, void *arg)
{
    Py_VISIT(self->sem);
    Py_VISIT(self->record);
    return 0;
}

static int
permit_clear(PermitObject *self)
{
    Py_CLEAR(self->sem);
    Py_CLEAR(self->record);
    return 0;
}

static void
permit_dealloc(PermitObject *self)
{
    PyObject_GC_UnTrack(self);
    Py_CLEAR(self->sem);
    Py_CLEAR(self->record);
    PyObject_GC_Del(self);
}

static PyObject *
permit_num_permits(PermitObject *self, void *Py_UNUSED(c))
{
    LOCK(self->sem);
    int64_t n = self->n;
    UNLOCK(self->sem);
    return PyLong_FromLongLong(n);
}

static PyObject *
permit_semaphore(PermitObject *self, void *Py_UNUSED(c))
{
    return Py_NewRef(self->sem);
}

static PyObject *
permit_release(PermitObject *self, PyObject *Py_UNUSED(a))
{
    LOCK(self->sem);
    int64_t n = self->n;
    UNLOCK(self->sem);
    if (n == 0)
        Py_RETURN_NONE;
    if (put(self->sem, 0, self) < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *
permit_forget(PermitObject *self, PyObject *Py_UNUSED(a))
{
    SemObject *sem = self->sem;
    LOCK(sem);
    int64_t n = self->n;
    if (sem->bounded) {
        /* The capacity shrinks by what is dropped, unless that breaks (I6): then
         * this Permit's permits were given back already (a release() without it). */
        int64_t outside = sem->head == NULL ? sem->permits : sem->head->assigned;
        int64_t limit = sem->limit;
        if (limit - n < outside) {
            UNLOCK(sem);
            PyErr_Format(PyExc_ValueError,
                         "cannot forget %lld permits of a BoundedSemaphore that are not held: "
                         "%lld of its capacity of %lld are free (a release() without the "
                         "Permit gave them back already)",
                         (long long)n, (long long)outside, (long long)limit);
            return NULL;
        }
        sem->limit = limit - n;
    }
    self->n = 0;
    UNLOCK(sem);
    debug_covered(self->record, n);
    Py_RETURN_NONE;
}

static PyObject *
permit_split(PermitObject *self, PyObject *arg)
{
    int64_t n;
    if (parse_count(arg, "permits", &n) < 0)
        return NULL;
    PermitObject *p = permit_new(self->sem, 0);
    if (p == NULL)
        return NULL;
    int ok;
    LOCK(self->sem);
    ok = n <= self->n;
    if (ok) {
        self->n -= n;
        p->n = n;
    }
    UNLOCK(self->sem);
    if (!ok) {
        Py_DECREF(p);
        Py_RETURN_NONE;
    }
    if (self->sem->debug != NULL) {
        debug_covered(self->record, n);
        permit_track(p);
    }
    return (PyObject *)p;
}

static PyObject *
permit_merge(PermitObject *self, PyObject *arg)
{
    if (!PyObject_TypeCheck(arg, &Permit_Type)) {
        PyErr_Format(PyExc_TypeError, "can only merge a Permit, not %.200s",
                     Py_TYPE(arg)->tp_name);
        return NULL;
    }
    PermitObject *other = (PermitObject *)arg;
    if (other == self)
        Py_RETURN_NONE;
    if (other->sem != self->sem) {
        PyErr_SetString(PyExc_ValueError, "cannot merge permits of different semaphores");
        return NULL;
    }
    int ok;
    int64_t moved = 0;
    LOCK(self->sem);
    ok = other->n <= MAX_PERMITS - self->n;
    if (ok) {
        moved = other->n;
        self->n += moved;
        other->n = 0;
    }
    UNLOCK(self->sem);
    if (!ok) {
        PyErr_Format(PyExc_ValueError, "a Permit cannot hold more than MAX_PERMITS (%lld)",
                     (long long)MAX_PERMITS);
        return NULL;
    }
    if (moved && self->record != NULL) {
        debug_covered(other->record, moved);
        PyObject *r = debug_call("moved", self->record, moved);
        if (r == NULL)
            PyErr_WriteUnraisable((PyObject *)self);
        Py_XDECREF(r);
    }
    Py_RETURN_NONE;
}

static PyObject *
permit_enter(PermitObject *self, PyObject *Py_UNUSED(a))
{
    return Py_NewRef(self);
}

static PyObject *
permit_exit(PermitObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (permit_release(self, NULL) == NULL)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *
ready_new(PyObject *value)
{
    ReadyObject *r = PyObject_GC_New(ReadyObject, &Ready_Type);
    if (r == NULL)
        return NULL;
    r->value = Py_NewRef(value);
    PyObject_GC_Track(r);
    return (PyObject *)r;
}

static PyObject *
permit_aenter(PermitObject *self, PyObject *Py_UNUSED(a))
{
    return ready_new((PyObject *)self);
}

static PyObject *
permit_aexit(PermitObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (permit_release(self, NULL) == NULL)
        return NULL;
    return Py_NewRef(ready_none);
}

static PyObject *
permit_repr(PermitObject *self)
{
    LOCK(self->sem);
    int64_t n = self->n;
    UNLOCK(self->sem);
    return PyUnicode_FromFormat("<batchsem.Permit permits:%lld of %R>", (long long)n,
                                (PyObject *)self->sem);
}

static PyMethodDef permit_methods[] = {
    {"release", (PyCFunction)permit_release, METH_NOARGS,
     "Give the permits back to the semaphore. Calling it again does nothing.\n\n"
     "ValueError (the Permit keeps its permits) if the semaphore's counter would pass "
     "MAX_PERMITS, or a BoundedSemaphore its capacity."},
    {"forget", (PyCFunction)permit_forget, METH_NOARGS,
     "Drop the permits without giving them back: the semaphore permanently has n fewer."},
    {"split", (PyCFunction)permit_split, METH_O,
     "Move n permits into a new Permit; None (nothing moved) if fewer are held."},
    {"merge", (PyCFunction)permit_merge, METH_O,
     "Move all of other's permits into this one; ValueError (nothing moved) for another "
     "semaphore's Permit or if the result would exceed MAX_PERMITS."},
    {"__enter__", (PyCFunction)permit_enter, METH_NOARGS, NULL},
    {"__exit__", (PyCFunction)(void (*)(void))permit_exit, METH_FASTCALL, NULL},
    {"__aenter__", (PyCFunction)permit_aenter, METH_NOARGS, NULL},
    {"__aexit__", (PyCFunction)(void (*)(void))permit_aexit, METH_FASTCALL, NULL},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef permit_getset[] = {
    {"num_permits", (getter)permit_num_permits, NULL,
     "How many permits this object holds now (0 after release or forget).", NULL},
    {"semaphore", (getter)permit_semaphore, NULL, "The semaphore the permits belong to.", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyObject *
permit_tp_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    PyErr_SetString(PyExc_TypeError,
                    "Permit cannot be created directly; use acquire, try_acquire or "
                    "acquire_blocking");
    return NULL;
}

static PyTypeObject Permit_Type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "Permit", /* __module__ is set to "batchsem" at import */
    .tp_basicsize = sizeof(PermitObject),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "Ownership of some permits of one semaphore (returned by acquire, "
              "try_acquire and acquire_blocking).\n\n"
              "The permits stay taken until release() (idempotent), the end of a "
              "with/async with block, or sem.release(n). The garbage collector never "
              "releases them. forget() drops them for good.",
    .tp_dealloc = (destructor)permit_dealloc,
    .tp_traverse = (traverseproc)permit_traverse,
    .tp_clear = (inquiry)permit_clear,
    .tp_repr = (reprfunc)permit_repr,
    .tp_methods = permit_methods,
    .tp_getset = permit_getset,
    .tp_new = permit_tp_new,
};

/* ------------------------------------------------------ Ready (done awaitable) */

static int
ready_traverse(ReadyObject *self, visitproc visit, void *arg)
{
    Py_VISIT(self->value);
    return 0;
}

static int
ready_clear(ReadyObject *self)
{
    Py_CLEAR(self->value);
    return 0;
}

static void
ready_dealloc(ReadyObject *self)
{
    PyObject_GC_UnTrack(self);
    Py_CLEAR(self->value);
    PyObject_GC_Del(self);
}

static PySendResult
ready_am_send(ReadyObject *self, PyObject *arg, PyObject **result)
{
    *result = Py_NewRef(self->value ? self->value : Py_None);
    return PYGEN_RETURN;
}

static PyObject *
return_value(PyObject *value)
{
    /* tp_iternext / send() convention: raise StopIteration(value) */
    if (value == Py_None) {
        PyErr_SetNone(PyExc_StopIteration);
        return NULL;
    }
    PyObject *e = PyObject_CallOneArg(PyExc_StopIteration, value);
    if (e != NULL) {
        PyErr_SetObject(PyExc_StopIteration, e);
        Py_DECREF(e);
    }
    return NULL;
}

static PyObject *
ready_iternext(ReadyObject *self)
{
    return return_value(self->value ? self->value : Py_None);
}

static PyObject *
ready_send(ReadyObject *self, PyObject *arg)
{
    return ready_iternext(self);
}

static PyObject *
ready_close(ReadyObject *self, PyObject *Py_UNUSED(a))
{
    Py_RETURN_NONE;
}

static PyObject *throw_args(PyObject *args);

static PyObject *
ready_throw(ReadyObject *self, PyObject *args)
{
    return throw_args(args);
}

static PyMethodDef ready_methods[] = {
    {"send", (PyCFunction)ready_send, METH_O, NULL},
    {"throw", (PyCFunction)ready_throw, METH_VARARGS, NULL},
    {"close", (PyCFunction)ready_close, METH_NOARGS, NULL},
    {NULL, NULL, 0, NULL},
};

static PyAsyncMethods ready_as_async = {
    .am_await = (unaryfunc)Py_NewRef,
    .am_send = (sendfunc)ready_am_send,
};

static PyTypeObject Ready_Type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "batchsem._cbatchsem._Ready",
    .tp_basicsize = sizeof(ReadyObject),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "An awaitable that is already complete (the uncontended async with).",
    .tp_dealloc = (destructor)ready_dealloc,
    .tp_traverse = (traverseproc)ready_traverse,
    .tp_clear = (inquiry)ready_clear,
    .tp_as_async = &ready_as_async,
    .tp_iter = PyObject_SelfIter,
    .tp_iternext = (iternextfunc)ready_iternext,
    .tp_methods = ready_methods,
};

/* Raise the exception described by throw()'s arguments (typ[, val[, tb]]). */
static PyObject *
throw_args(PyObject *args)
{
    PyObject *typ, *val = NULL, *tb = NULL;
    if (!PyArg_UnpackTuple(args, "throw", 1, 3, &typ, &val, &tb))
        return NULL;
    if (val == Py_None)
        val = NULL;
    if (tb == Py_None)
        tb = NULL;
    if (PyExceptionInstance_Check(typ)) {
        if (val != NULL) {
            PyErr_SetString(PyExc_TypeError, "instance exception may not have a separate value");
            return NULL;
        }
        PyErr_SetObject((PyObject *)Py_TYPE(typ), typ);
    }
    else if (PyExceptionClass_Check(typ)) {
        PyErr_SetObject(typ, val);
    }
    else {
        PyErr_SetString(PyExc_TypeError,
                        "exceptions must be classes or instances deriving from BaseException");
        return NULL;
    }
    if (tb != NULL) {
        PyObject *t, *v, *b;
        PyErr_Fetch(&t, &v, &b);
        PyErr_NormalizeException(&t, &v, &b);
        Py_XDECREF(b);
        PyException_SetTraceback(v, tb);
        PyErr_Restore(t, v, Py_NewRef(tb));
    }
    return NULL;
}

/* ---------------------------------------------------------------- Acquire */

static AcqObject *
acq_new(SemObject *sem, int64_t n, int kind)
{
    AcqObject *a = PyObject_GC_New(AcqObject, &Acquire_Type);
    if (a == NULL)
        return NULL;
    a->sem = (SemObject *)Py_NewRef(sem);
    a->prev = a->next = NULL;
    a->gprev = a->gnext = NULL;
    a->needed = n;
    a->assigned = 0;
    a->queued = 0;
    a->in_granted = 0;
    a->state = ST_INIT;
    a->kind = (char)kind;
    a->fut = NULL;
    a->loop = NULL;
    a->thread = 0;
    a->event = NULL;
    a->permit = NULL;
#ifdef Py_GIL_DISABLED
    atomic_init(&a->stepping, 0);
#endif
    PyObject_GC_Track(a);
    return a;
}

/* loop.create_future(). BaseEventLoop's is `return futures.Future(loop=self)` in
 * Python; when `loop.create_future` is that very method (not overridden by the
 * loop's class, nor set on the loop itself), calling the Future type directly
 * saves its frame on every wait on the stock asyncio loop. Any other
 * create_future (uvloop's, a patched one) is called. */
static PyObject *
make_future(PyObject *loop)
{
    PyObject *meth = PyObject_GetAttr(loop, str_create_future);
    if (meth == NULL)
        return NULL;
    if (PyMethod_Check(meth) && PyMethod_GET_FUNCTION(meth) == base_create_future &&
        PyMethod_GET_SELF(meth) == loop) {
        Py_DECREF(meth);
        PyObject *args[1] = {loop};
        return PyObject_Vectorcall(future_type, args, 0, kwnames_loop);
    }
    PyObject *fut = PyObject_CallNoArgs(meth);
    Py_DECREF(meth);
    return fut;
}

/* Serve node at once if possible (under the lock): nobody queued and enough
 * free, or a request for 0. Returns 1 if served, 0 if not, -1 if closed. */
static int
try_serve_locked(SemObject *sem, AcqObject *node)
{
    if (sem->closed)
        return -1;
    int64_t n = node->needed;
    if (sem->head == NULL ? sem->permits >= n : n == 0) {
        sem->permits -= n;
        if (node->permit != NULL)
            node->permit->n = n;
        return 1;
    }
    return 0;
}

/* Start a request: 1 served at once (node->permit filled), 0 queued (the node
 * is linked and will be woken through fut or event), -1 error (AcquireError if
 * closed). The waker (future or lock) is made before the node is linked. */
static int
begin(AcqObject *node)
{
    SemObject *sem = node->sem;
    int r;
    if (node->kind != K_NONE && node->permit == NULL) {
        node->permit = permit_new(sem, 0);
        if (node->permit == NULL)
            return -1;
    }
    if (sem->tracer == NULL && sem->debug == NULL) {
        LOCK(sem);
        r = try_serve_locked(sem, node);
        UNLOCK(sem);
        if (r == 1)
            return 1;
    }
    /* Make the waker, then decide again: the state may have changed meanwhile. */
    if (node->kind == K_BLOCKING) {
        node->event = PyThread_allocate_lock();
        if (node->event == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        PyThread_acquire_lock(node->event, WAIT_LOCK);
    }
    else {
        PyObject *loop = PyObject_CallNoArgs(get_running_loop);
        if (loop == NULL)
            return -1;
        if (loop == Py_None) {
            Py_DECREF(loop);
            PyErr_SetString(PyExc_RuntimeError, "no running event loop");
            return -1;
        }
        PyObject *fut = make_future(loop);
        if (fut == NULL) {
            Py_DECREF(loop);
            return -1;
        }
        node->loop = loop;
        node->fut = fut;
        node->thread = PyThread_get_thread_ident();
    }
    Py_INCREF(node); /* the queue's reference, if it is linked */
    int scan = 0, rearm = 0;
    PyObject *old_home = NULL;
    LOCK(sem);
    r = try_serve_locked(sem, node);
    if (r == 0) {
        if (sem->head == NULL) {
            /* take what is free, queue for the rest; now the head */
            node->assigned = sem->permits;
            sem->permits = 0;
            /* nobody queued and too few free: maybe a woken waiter whose loop
             * closed before it resumed holds them */
            scan = sem->ngranted > 0;
        }
        link_tail_locked(sem, node);
        if (node->kind != K_BLOCKING && sem->home != node->loop) {
            /* (S): a waiter of a second loop from now on re-checks */
            if (sem->home == NULL && !sem->many) {
                sem->home = Py_NewRef(node->loop); /* no DECREF here (R1) */
            }
            else {
                old_home = sem->home; /* dropped after UNLOCK (R1) */
                sem->home = NULL;
                sem->many = 1;
                rearm = 1;
            }
        }
        /* Every async waiter so far was on this loop, so is every woken one; it
         * is running, hence not closed, and none of them is stranded. */
        if (sem->home == node->loop && node->kind != K_BLOCKING)
            scan = 0;
    }
    UNLOCK(sem);
    Py_XDECREF(old_home);
    if (rearm && arm_recheck(sem, node, RECHECK_FIRST) < 0) {
        PyObject *et, *ev, *etb;
        PyErr_Fetch(&et, &ev, &etb);
        failed(sem, node); /* give back what it took (R3) */
        PyErr_Restore(et, ev, etb);
        Py_CLEAR(node->permit);
        return -1;
    }
    if (r != 0) {
        Py_DECREF(node);
        Py_CLEAR(node->fut);
        Py_CLEAR(node->loop);
    }
    else {
        /* Queued: the Permit is made when the request is granted (resume), so a
         * queued waiter costs no Permit. */
        Py_CLEAR(node->permit);
    }
    if (sem->tracer != NULL)
        trace_now(sem, r < 0 ? "failed_closed" : "acquire", node->needed);
    if (r < 0) {
        PyErr_SetNone(AcquireError);
        return -1;
    }
    if (r == 1 && node->permit != NULL)
        permit_track(node->permit);
    if (scan)
        reclaim(sem);
    return r;
}

/* The waiter resumed (woken, or spuriously): 1 granted (the node's permits
 * moved into the Permit), 0 still queued, -1 AcquireError (closed; what it was
 * handed is given back). */
static int
resume(AcqObject *node)
{
    SemObject *sem = node->sem;
    int r;
    if (node->kind != K_NONE && node->permit == NULL) {
        node->permit = permit_new(sem, 0);
        if (node->permit == NULL) {
            PyObject *et, *ev, *etb;
            PyErr_Fetch(&et, &ev, &etb);
            failed(sem, node); /* give back what it was handed (R3) */
            PyErr_Restore(et, ev, etb);
            return -1;
        }
    }
    LOCK(sem);
    if (node->queued && !sem->closed) {
        r = 0;
    }
    else if (!sem->closed && node->assigned == node->needed) {
        if (node->permit != NULL)
            node->permit->n = node->assigned;
        node->assigned = 0;
        r = 1;
    }
    else {
        r = -1;
    }
    int was_granted = r == 1 ? granted_remove_locked(sem, node) : 0;
    UNLOCK(sem);
    if (was_granted)
        Py_DECREF(node);
    if (r == 1 && node->permit != NULL)
        permit_track(node->permit);
    if (r < 0) {
        if (failed(sem, node) == 0)
            PyErr_SetNone(AcquireError);
        return -1;
    }
    if (r == 1 && sem->tracer != NULL)
        trace_now(sem, "granted", node->needed);
    return r;
}

static PyObject *
acq_result(AcqObject *self)
{
    if (self->kind == K_NONE)
        return Py_NewRef(Py_None);
    return Py_NewRef(self->permit);
}

static PySendResult
acq_am_send(AcqObject *self, PyObject *arg, PyObject **result)
{
    int r;
    switch (self->state) {
    case ST_INIT:
        r = begin(self);
        break;
    case ST_WAITING:
        r = resume(self);
        break;
    default:
        PyErr_SetString(PyExc_RuntimeError,
                        "this acquire() request was already awaited; call acquire() again");
        *result = NULL;
        return PYGEN_ERROR;
    }
    if (r < 0) {
        self->state = ST_DONE;
        *result = NULL;
        return PYGEN_ERROR;
    }
    if (r == 0) {
        self->state = ST_WAITING;
        /* Future.__await__'s handshake with the Task */
        if (PyObject_SetAttr(self->fut, str_blocking, Py_True) < 0) {
            failed(self->sem, self);
            self->state = ST_DONE;
            *result = NULL;
            return PYGEN_ERROR;
        }
        *result = Py_NewRef(self->fut);
        return PYGEN_NEXT;
    }
    if (self->state == ST_INIT && self->sem->tracer != NULL)
        trace_now(self->sem, "granted", self->needed); /* served at once */
    self->state = ST_DONE;
    *result = acq_result(self);
    return PYGEN_RETURN;
}

#ifdef Py_GIL_DISABLED
/* Free threading: like a coroutine, a request is stepped (send, throw, close) by
 * one thread at a time; another thread gets ValueError instead of linking the
 * node twice or filling two Permits. Under the GIL no two steps overlap. */
static int
acq_claim(AcqObject *self)
{
    int idle = 0;
    if (atomic_compare_exchange_strong(&self->stepping, &idle, 1))
        return 0;
    PyErr_SetString(PyExc_ValueError, "acquire() request already executing");
    return -1;
}

static PySendResult
acq_am_send_ft(AcqObject *self, PyObject *arg, PyObject **result)
{
    if (acq_claim(self) < 0) {
        *result = NULL;
        return PYGEN_ERROR;
    }
    PySendResult r = acq_am_send(self, arg, result);
    atomic_store(&self->stepping, 0);
    return r;
}
#define ACQ_SEND acq_am_send_ft
#else
#define ACQ_SEND acq_am_send
#endif

static PyObject *
acq_send_common(AcqObject *self)
{
    PyObject *result;
    PySendResult r = ACQ_SEND(self, Py_None, &result);
    if (r == PYGEN_NEXT)
        return result;
    if (r == PYGEN_RETURN) {
        return_value(result);
        Py_DECREF(result);
    }
    return NULL;
}

static PyObject *
acq_iternext(AcqObject *self)
{
    return acq_send_common(self);
}

static PyObject *
acq_send(AcqObject *self, PyObject *arg)
{
    if (self->state == ST_INIT && arg != Py_None) {
        PyErr_SetString(PyExc_TypeError, "can't send non-None value to a just-started coroutine");
        return NULL;
    }
    return acq_send_common(self);
}

static PyObject *
acq_throw(AcqObject *self, PyObject *args)
{
    if (self->state == ST_WAITING) {
        self->state = ST_DONE;
        if (failed(self->sem, self) < 0)
            return NULL;
    }
    self->state = ST_DONE;
    return throw_args(args);
}

static PyObject *
acq_close(AcqObject *self, PyObject *Py_UNUSED(a))
{
    if (self->state == ST_WAITING) {
        self->state = ST_DONE;
        if (failed(self->sem, self) < 0)
            return NULL;
    }
    self->state = ST_DONE;
    Py_RETURN_NONE;
}

#ifdef Py_GIL_DISABLED
/* step(self, arg) as the one thread stepping the request (acq_claim). */
static PyObject *
acq_claimed(AcqObject *self, PyObject *(*step)(AcqObject *, PyObject *), PyObject *arg)
{
    if (acq_claim(self) < 0)
        return NULL;
    PyObject *r = step(self, arg);
    atomic_store(&self->stepping, 0);
    return r;
}

static PyObject *
acq_throw_ft(AcqObject *self, PyObject *args)
{
    return acq_claimed(self, acq_throw, args);
}

static PyObject *
acq_close_ft(AcqObject *self, PyObject *a)
{
    return acq_claimed(self, acq_close, a);
}
#define ACQ_THROW acq_throw_ft
#define ACQ_CLOSE acq_close_ft
#else
#define ACQ_THROW acq_throw
#define ACQ_CLOSE acq_close
#endif

static PyObject *
acq_aenter(AcqObject *self, PyObject *Py_UNUSED(a))
{
    return Py_NewRef(self);
}

static PyObject *
acq_aexit(AcqObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (self->permit != NULL && permit_release(self->permit, NULL) == NULL)
        return NULL;
    return Py_NewRef(ready_none);
}

static PyObject *
acq_repr(AcqObject *self)
{
    if (self->state == ST_INIT)
        return PyUnicode_FromFormat("<batchsem.Acquire [pending:%lld] of %R>",
                                    (long long)self->needed, (PyObject *)self->sem);
    return PyUnicode_FromFormat("<batchsem.Acquire [started] of %R>", (PyObject *)self->sem);
}

/* Garbage collected while waiting (its task was dropped without closing it):
 * give back what it was handed. */
static void
acq_finalize(AcqObject *self)
{
    if (self->state != ST_WAITING || self->sem == NULL)
        return;
    PyObject *et, *ev, *etb;
    PyErr_Fetch(&et, &ev, &etb);
    self->state = ST_DONE;
    if (failed(self->sem, self) < 0)
        PyErr_WriteUnraisable((PyObject *)self);
    PyErr_Restore(et, ev, etb);
}

static int
acq_traverse(AcqObject *self, visitproc visit, void *arg)
{
    Py_VISIT(self->sem);
    Py_VISIT(self->fut);
    Py_VISIT(self->loop);
    Py_VISIT(self->permit);
    return 0;
}

static int
acq_clear(AcqObject *self)
{
    /* A queued node is cleared only when its semaphore is garbage too; the
     * semaphore's own clear unlinks it without needing node->sem. */
    Py_CLEAR(self->fut);
    Py_CLEAR(self->loop);
    Py_CLEAR(self->permit);
    if (!self->queued && !self->in_granted)
        Py_CLEAR(self->sem);
    return 0;
}

static void
acq_dealloc(AcqObject *self)
{
    if (PyObject_CallFinalizerFromDealloc((PyObject *)self) < 0)
        return; /* resurrected */
    PyObject_GC_UnTrack(self);
    Py_CLEAR(self->fut);
    Py_CLEAR(self->loop);
    Py_CLEAR(self->permit);
    Py_CLEAR(self->sem);
    if (self->event != NULL)
        PyThread_free_lock(self->event);
    PyObject_GC_Del(self);
}

static PyObject *
acq_await(AcqObject *self)
{
    return Py_NewRef(self);
}

static PyObject *
acq_get_frame(AcqObject *self, void *Py_UNUSED(c))
{
    Py_RETURN_NONE;
}

static PyObject *
acq_get_await(AcqObject *self, void *Py_UNUSED(c))
{
    if (self->state == ST_WAITING && self->fut != NULL)
        return Py_NewRef(self->fut);
    Py_RETURN_NONE;
}

static PyObject *
acq_get_running(AcqObject *self, void *Py_UNUSED(c))
{
    Py_RETURN_FALSE;
}

static PyMethodDef acq_methods[] = {
    {"send", (PyCFunction)acq_send, METH_O, "Coroutine protocol: start or resume the request."},
    {"throw", (PyCFunction)ACQ_THROW, METH_VARARGS,
     "Coroutine protocol: abandon the request (handing back what it was given) and raise."},
    {"close", (PyCFunction)ACQ_CLOSE, METH_NOARGS,
     "Coroutine protocol: abandon the request, handing back what it was given."},
    {"__aenter__", (PyCFunction)acq_aenter, METH_NOARGS, NULL},
    {"__aexit__", (PyCFunction)(void (*)(void))acq_aexit, METH_FASTCALL, NULL},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef acq_getset[] = {
    {"cr_frame", (getter)acq_get_frame, NULL, NULL, NULL},
    {"cr_await", (getter)acq_get_await, NULL, NULL, NULL},
    {"cr_running", (getter)acq_get_running, NULL, NULL, NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyAsyncMethods acq_as_async = {
    .am_await = (unaryfunc)acq_await,
    .am_send = (sendfunc)ACQ_SEND,
};

static PyTypeObject Acquire_Type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "Acquire", /* __module__ is set to "batchsem" at import */
    .tp_basicsize = sizeof(AcqObject),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "A request for permits: await it (once) for a Permit, or use it as "
              "``async with sem.acquire(n) as permit``. It is also a coroutine "
              "(send/throw/close), so asyncio.create_task and wait_for accept it. The "
              "queue position is taken when it is first awaited. Cancellation at any "
              "point hands back whatever the request had been given.",
    .tp_dealloc = (destructor)acq_dealloc,
    .tp_traverse = (traverseproc)acq_traverse,
    .tp_clear = (inquiry)acq_clear,
    .tp_finalize = (destructor)acq_finalize,
    .tp_repr = (reprfunc)acq_repr,
    .tp_as_async = &acq_as_async,
    .tp_iter = PyObject_SelfIter,
    .tp_iternext = (iternextfunc)acq_iternext,
    .tp_methods = acq_methods,
    .tp_getset = acq_getset,
};

/* ---------------------------------------------------------------- Semaphore */

static int
sem_traverse(SemObject *self, visitproc visit, void *arg)
{
    Py_VISIT(self->name);
    Py_VISIT(self->tracer);
    Py_VISIT(self->debug);
    for (AcqObject *node = self->head; node != NULL; node = node->next)
        Py_VISIT(node);
    for (AcqObject *node = self->granted; node != NULL; node = node->gnext)
        Py_VISIT(node);
    Py_VISIT(self->home);
    return 0;
}

/* Unlink every queued node (without waking: the semaphore is garbage) and drop
 * the queue's references afterwards (R1). */
static void
sem_drop_queue(SemObject *self)
{
    LOCK(self);
    AcqObject *node = self->head;
    self->head = self->tail = NULL;
    self->waiting = 0;
    for (AcqObject *n = node; n != NULL; n = n->next) {
        n->queued = 0;
        n->prev = NULL;
    }
    AcqObject *granted = self->granted;
    self->granted = NULL;
    self->ngranted = 0;
    for (AcqObject *n = granted; n != NULL; n = n->gnext)
        n->in_granted = 0;
    UNLOCK(self);
    while (node != NULL) {
        AcqObject *next = node->next;
        node->next = NULL;
        Py_DECREF(node);
        node = next;
    }
    while (granted != NULL) {
        AcqObject *next = granted->gnext;
        granted->gprev = granted->gnext = NULL;
        Py_DECREF(granted);
        granted = next;
    }
}

static int
sem_clear(SemObject *self)
{
    sem_drop_queue(self);
    Py_CLEAR(self->home);
    Py_CLEAR(self->name);
    Py_CLEAR(self->tracer);
    Py_CLEAR(self->debug);
    return 0;
}

static void
sem_dealloc(SemObject *self)
{
    PyTypeObject *tp = Py_TYPE(self);
    PyObject_GC_UnTrack(self);
    if (self->weakreflist != NULL)
        PyObject_ClearWeakRefs((PyObject *)self);
    sem_clear(self);
    tp->tp_free((PyObject *)self);
}

static PyObject *
sem_tp_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    SemObject *self = (SemObject *)type->tp_alloc(type, 0);
    if (self == NULL)
        return NULL;
    self->permits = 0;
    self->limit = MAX_PERMITS;
    self->bounded = 0;
    self->waiting = 0;
    self->head = self->tail = NULL;
    self->granted = NULL;
    self->ngranted = 0;
    self->home = NULL;
    self->many = 0;
    self->name = Py_NewRef(Py_None);
    self->tracer = NULL;
    self->debug = NULL;
    self->closed = 0;
    self->weakreflist = NULL;
    return (PyObject *)self;
}

static int debug_default = -1; /* BATCHSEM_DEBUG, read once (as the Python core does) */

static int
sem_init_common(SemObject *self, PyObject *args, PyObject *kwds, const char *cls)
{
    /* Parsed by hand so that errors read as the Python core's ("Semaphore.__init__()
     * got an unexpected keyword argument 'loop'", which CPython's tests check). */
    PyObject *value = NULL, *name = Py_None, *tracer = Py_None, *debug = Py_None;
    Py_ssize_t nargs = PyTuple_GET_SIZE(args);
    if (nargs > 1) {
        PyErr_Format(PyExc_TypeError,
                     "%s.__init__() takes from 1 to 2 positional arguments but %zd were given",
                     cls, nargs + 1);
        return -1;
    }
    if (nargs == 1)
        value = PyTuple_GET_ITEM(args, 0);
    if (kwds != NULL) {
        PyObject *key, *item;
        Py_ssize_t pos = 0;
        while (PyDict_Next(kwds, &pos, &key, &item)) {
            if (PyUnicode_Check(key) && PyUnicode_CompareWithASCIIString(key, "value") == 0) {
                if (value != NULL) {
                    PyErr_Format(PyExc_TypeError,
                                 "%s.__init__() got multiple values for argument 'value'", cls);
                    return -1;
                }
                value = item;
            }
            else if (PyUnicode_Check(key) && PyUnicode_CompareWithASCIIString(key, "name") == 0)
                name = item;
            else if (PyUnicode_Check(key) &&
                     PyUnicode_CompareWithASCIIString(key, "tracer") == 0)
                tracer = item;
            else if (PyUnicode_Check(key) && PyUnicode_CompareWithASCIIString(key, "debug") == 0)
                debug = item;
            else {
                PyErr_Format(PyExc_TypeError,
                             "%s.__init__() got an unexpected keyword argument '%S'", cls, key);
                return -1;
            }
        }
    }
    int64_t n = 1;
    if (value != NULL && parse_count(value, "value", &n) < 0)
        return -1;
    LOCK(self);
    int in_use = self->head != NULL || self->granted != NULL;
    UNLOCK(self);
    if (in_use) {
        PyErr_SetString(PyExc_RuntimeError, "cannot re-initialise a semaphore in use");
        return -1;
    }
    int want_debug;
    if (debug == Py_None) {
        GLOBALS_LOCK();
        if (debug_default < 0) {
            const char *env = Py_GETENV("BATCHSEM_DEBUG");
            debug_default = env != NULL && env[0] != '\0' && strcmp(env, "0") != 0;
        }
        want_debug = debug_default;
        GLOBALS_UNLOCK();
    }
    else if ((want_debug = PyObject_IsTrue(debug)) < 0) {
        return -1;
    }
    PyObject *ledger = NULL;
    if (want_debug) {
        PyObject *cls_ledger = NULL, *finalize = NULL, *report = NULL, *fin = NULL;
        PyObject *mod = PyImport_ImportModule("batchsem._debug");
        if (mod != NULL) {
            cls_ledger = PyObject_GetAttrString(mod, "DebugLedger");
            Py_DECREF(mod);
        }
        if (cls_ledger != NULL)
            ledger = PyObject_CallOneArg(cls_ledger, name);
        if (ledger != NULL)
            finalize = import_attr_any("weakref", "finalize");
        if (finalize != NULL)
            report = PyObject_GetAttrString(ledger, "report");
        if (report != NULL)
            fin = PyObject_CallFunctionObjArgs(finalize, (PyObject *)self, report, NULL);
        Py_XDECREF(cls_ledger);
        Py_XDECREF(finalize);
        Py_XDECREF(report);
        if (fin == NULL) {
            Py_XDECREF(ledger);
            return -1;
        }
        Py_DECREF(fin);
    }
    Py_INCREF(name);
    if (tracer != Py_None)
        Py_INCREF(tracer);
    char bounded = PyObject_TypeCheck(self, &BoundedSemaphore_Type) ? 1 : 0;
    LOCK(self);
    if (self->head != NULL || self->granted != NULL) { /* queued meanwhile (threads) */
        UNLOCK(self);
        Py_DECREF(name);
        if (tracer != Py_None)
            Py_DECREF(tracer);
        Py_XDECREF(ledger);
        PyErr_SetString(PyExc_RuntimeError, "cannot re-initialise a semaphore in use");
        return -1;
    }
    PyObject *old_name = self->name, *old_tracer = self->tracer, *old_debug = self->debug;
    self->name = name;
    self->tracer = tracer == Py_None ? NULL : tracer;
    self->debug = ledger;
    self->permits = n;
    self->bounded = bounded;
    self->limit = bounded ? n : MAX_PERMITS;
    self->closed = 0;
    UNLOCK(self);
    Py_XDECREF(old_name);
    Py_XDECREF(old_tracer);
    Py_XDECREF(old_debug);
    return 0;
}

static int
sem_init(SemObject *self, PyObject *args, PyObject *kwds)
{
    return sem_init_common(self, args, kwds, "Semaphore");
}

static int
bsem_init(SemObject *self, PyObject *args, PyObject *kwds)
{
    return sem_init_common(self, args, kwds, "BoundedSemaphore");
}

static PyObject *
sem_available(SemObject *self, void *Py_UNUSED(c))
{
    if (self->ngranted)
        reclaim(self);
    LOCK(self);
    int64_t v = self->permits;
    UNLOCK(self);
    return PyLong_FromLongLong(v);
}

static PyObject *
sem_get_closed(SemObject *self, void *Py_UNUSED(c))
{
    return PyBool_FromLong(self->closed);
}

static PyObject *
sem_get_waiting(SemObject *self, void *Py_UNUSED(c))
{
    LOCK(self);
    Py_ssize_t v = self->waiting;
    UNLOCK(self);
    return PyLong_FromSsize_t(v);
}

static PyObject *
sem_get_name(SemObject *self, void *Py_UNUSED(c))
{
    LOCK(self); /* __init__ again may swap it */
    PyObject *name = Py_NewRef(self->name ? self->name : Py_None);
    UNLOCK(self);
    return name;
}

static PyObject *
sem_get_tracer(SemObject *self, void *Py_UNUSED(c))
{
    LOCK(self); /* the setter may drop the old one right after its swap */
    PyObject *tracer = Py_NewRef(self->tracer ? self->tracer : Py_None);
    UNLOCK(self);
    return tracer;
}

static int
sem_set_tracer(SemObject *self, PyObject *value, void *Py_UNUSED(c))
{
    if (value == NULL) {
        PyErr_SetString(PyExc_AttributeError, "cannot delete the tracer; set it to None");
        return -1;
    }
    Py_XINCREF(value);
    LOCK(self);
    PyObject *old = self->tracer; /* read in the swap: two setters drop it once */
    self->tracer = value == Py_None ? NULL : value;
    UNLOCK(self);
    if (value == Py_None)
        Py_DECREF(value);
    Py_XDECREF(old); /* after the swap (R1) */
    return 0;
}

static PyObject *
sem_repr(SemObject *self)
{
    PyObject *cls = PyType_GetName(Py_TYPE(self));
    if (cls == NULL)
        return NULL;
    LOCK(self);
    const char *state = self->closed ? "closed" : "open";
    long long permits = (long long)self->permits, limit = (long long)self->limit;
    Py_ssize_t waiting = self->waiting;
    PyObject *own_name = Py_XNewRef(self->name); /* __init__ again may swap it */
    UNLOCK(self);
    PyObject *cap = self->bounded ? PyUnicode_FromFormat("/%lld", limit)
                                  : PyUnicode_FromString("");
    PyObject *name = own_name != NULL && own_name != Py_None
                         ? PyUnicode_FromFormat(" %R", own_name)
                         : PyUnicode_FromString("");
    Py_XDECREF(own_name);
    PyObject *res = NULL;
    if (cap != NULL && name != NULL)
        res = PyUnicode_FromFormat("<batchsem.%U%U [%s, permits:%lld%U, waiters:%zd]>", cls,
                                   name, state, permits, cap, waiting);
    Py_DECREF(cls);
    Py_XDECREF(cap);
    Py_XDECREF(name);
    return res;
}

/* A request above a BoundedSemaphore's capacity could never be served. */
static int
check_capacity(SemObject *self, int64_t n)
{
    if (n > self->limit) {
        PyObject *cls = PyType_GetName(Py_TYPE(self));
        if (cls != NULL) {
            PyErr_Format(PyExc_ValueError,
                         "cannot acquire %lld permits from a %U with capacity %lld",
                         (long long)n, cls, (long long)self->limit);
            Py_DECREF(cls);
        }
        return -1;
    }
    return 0;
}

static const char *const names_n[] = {"n"};

static int
parse_n(const char *fname, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames,
        int required, int64_t *n)
{
    PyObject *obj = NULL;
    if (nargs == 1 && kwnames == NULL) {
        obj = args[0];
    }
    else if (nargs != 0 || kwnames != NULL) {
        if (parse_args(fname, args, nargs, kwnames, names_n, 1, required, &obj) < 0)
            return -1;
    }
    else if (required) {
        PyErr_Format(PyExc_TypeError, "%s() missing required argument 'n'", fname);
        return -1;
    }
    if (obj == NULL) {
        *n = 1;
        return 0;
    }
    if (PyLong_CheckExact(obj)) {
        int overflow;
        long long v = PyLong_AsLongLongAndOverflow(obj, &overflow);
        if (!overflow && v >= 0 && v <= MAX_PERMITS) {
            *n = v;
            return 0;
        }
    }
    return parse_count(obj, "permits", n);
}

/* sem.release(n): no Permit says which acquisition ends; in debug mode the
 * ledger closes the releaser's own records first. */
static PyObject *
sem_put_anonymous(SemObject *self, int64_t n)
{
    if (put(self, n, NULL) < 0)
        return NULL;
    if (self->debug != NULL) {
        PyObject *r = PyObject_CallMethod(self->debug, "cover", "L", (long long)n);
        if (r == NULL)
            return NULL;
        Py_DECREF(r);
    }
    Py_RETURN_NONE;
}

static PyObject *
sem_add_permits(SemObject *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    int64_t n;
    if (parse_n("add_permits", args, nargs, kwnames, 1, &n) < 0)
        return NULL;
    return sem_put_anonymous(self, n);
}

static PyObject *
sem_release(SemObject *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    int64_t n;
    if (parse_n("release", args, nargs, kwnames, 0, &n) < 0)
        return NULL;
    return sem_put_anonymous(self, n);
}

static PyObject *
sem_forget_permits(SemObject *self, PyObject *arg)
{
    int64_t n;
    if (parse_count(arg, "permits", &n) < 0)
        return NULL;
    LOCK(self);
    int64_t taken = n < self->permits ? n : self->permits;
    self->permits -= taken;
    if (self->bounded)
        self->limit -= taken;
    int64_t available = self->permits;
    Py_ssize_t waiting = self->waiting;
    UNLOCK(self);
    if (self->tracer != NULL)
        trace(self, "forget", taken, available, waiting);
    return PyLong_FromLongLong(taken);
}

static PyObject *
sem_close(SemObject *self, PyObject *Py_UNUSED(a))
{
    LOCK(self);
    if (self->closed) {
        UNLOCK(self);
        Py_RETURN_NONE;
    }
    self->closed = 1;
    AcqObject *failed_chain = self->head;
    for (AcqObject *node = failed_chain; node != NULL; node = node->next) {
        self->permits += node->assigned;
        node->assigned = 0;
        node->queued = 0;
        node->prev = NULL;
    }
    self->head = self->tail = NULL;
    self->waiting = 0;
    int64_t available = self->permits;
    UNLOCK(self);
    int rc = wake(self, failed_chain);
    if (self->tracer != NULL)
        trace(self, "close", 0, available, 0);
    if (rc < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *
sem_locked(SemObject *self, PyObject *Py_UNUSED(a))
{
    if (self->ngranted)
        reclaim(self);
    LOCK(self);
    int locked = self->permits == 0; /* permits >= 1 implies nobody queued (I1) */
    UNLOCK(self);
    return PyBool_FromLong(locked);
}

static PyObject *
sem_acquire(SemObject *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    int64_t n;
    if (parse_n("acquire", args, nargs, kwnames, 0, &n) < 0)
        return NULL;
    if (check_capacity(self, n) < 0)
        return NULL;
    return (PyObject *)acq_new(self, n, K_PERMIT);
}

static PyObject *
sem_try_acquire(SemObject *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    int64_t n;
    if (parse_n("try_acquire", args, nargs, kwnames, 0, &n) < 0)
        return NULL;
    if (check_capacity(self, n) < 0)
        return NULL;
    PermitObject *p = permit_new(self, 0);
    if (p == NULL)
        return NULL;
    int r;
    for (int attempt = 0;; attempt++) {
        LOCK(self);
        if (self->closed) {
            r = -1;
        }
        else if (self->permits >= n) {
            self->permits -= n;
            p->n = n;
            r = 1;
        }
        else {
            r = 0;
        }
        int retry = r == 0 && attempt == 0 && self->ngranted > 0;
        UNLOCK(self);
        if (!retry)
            break;
        reclaim(self); /* a woken waiter whose loop closed may hold them */
    }
    if (r <= 0) {
        Py_DECREF(p);
        PyErr_SetNone(r < 0 ? ClosedError : NoPermitsError);
        return NULL;
    }
    if (self->tracer != NULL)
        trace_now(self, "granted", n);
    permit_track(p);
    return (PyObject *)p;
}

/* Block (GIL released) until node->event is released or the deadline passes.
 * 1 woken, 0 timed out, -1 error (a signal handler raised). */
static int
wait_event(AcqObject *node, double timeout)
{
    double deadline = timeout < 0 ? 0.0 : monotonic_now() + timeout;
    /* (S): wait in slices of RECHECK_FIRST doubling to RECHECK_MAX, reclaiming
     * what stranded nodes hold between them. */
    double slice = RECHECK_FIRST;
    for (;;) {
        double wait = slice;
        int last = 0; /* this slice ends at the deadline */
        if (timeout >= 0) {
            double remaining = deadline - monotonic_now();
            if (remaining <= slice) {
                wait = remaining > 0 ? remaining : 0.0;
                last = 1;
            }
        }
        PY_TIMEOUT_T us = (PY_TIMEOUT_T)(wait * 1e6); /* <= RECHECK_MAX: no overflow */
        PyLockStatus r = PyThread_acquire_lock_timed(node->event, 0, 0);
        if (r != PY_LOCK_ACQUIRED && us != 0) {
            Py_BEGIN_ALLOW_THREADS
            r = PyThread_acquire_lock_timed(node->event, us, 1);
            Py_END_ALLOW_THREADS
        }
        if (r == PY_LOCK_ACQUIRED)
            return 1;
        if (r == PY_LOCK_INTR) {
            if (Py_MakePendingCalls() < 0)
                return -1;
            continue;
        }
        if (last)
            return 0;
        if (node->sem->ngranted)
            reclaim(node->sem);
        reap_dead_head(node->sem);
        slice += slice;
        if (slice > RECHECK_MAX)
            slice = RECHECK_MAX;
    }
}

static PyObject *
sem_acquire_blocking(SemObject *self, PyObject *const *args, Py_ssize_t nargs,
                     PyObject *kwnames)
{
    static const char *const names[] = {"n", "timeout"};
    PyObject *objs[2] = {NULL, NULL};
    if (parse_args("acquire_blocking", args, nargs, kwnames, names, 2, 0, objs) < 0)
        return NULL;
    int64_t n = 1;
    if (objs[0] != NULL && parse_count(objs[0], "permits", &n) < 0)
        return NULL;
    if (check_capacity(self, n) < 0)
        return NULL;
    double timeout = -1.0;
    if (objs[1] != NULL && objs[1] != Py_None) {
        timeout = PyFloat_AsDouble(objs[1]);
        if (timeout == -1.0 && PyErr_Occurred())
            return NULL;
        if (isnan(timeout)) {
            PyErr_SetString(PyExc_ValueError, "timeout must be a number, got nan");
            return NULL;
        }
        if (timeout < 0) {
            PyErr_Format(PyExc_ValueError, "timeout must be >= 0, got %S", objs[1]);
            return NULL;
        }
        if (isinf(timeout))
            timeout = -1.0;
    }
    PyObject *loop = PyObject_CallNoArgs(get_running_loop);
    if (loop == NULL)
        return NULL;
    int running = loop != Py_None;
    Py_DECREF(loop);
    if (running) {
        PyErr_SetString(PyExc_RuntimeError,
                        "acquire_blocking() called from a thread with a running event loop; "
                        "use 'await sem.acquire(n)' there");
        return NULL;
    }
    AcqObject *node = acq_new(self, n, K_BLOCKING);
    if (node == NULL)
        return NULL;
    int r = begin(node);
    if (r == 0) {
        node->state = ST_WAITING;
        int w = wait_event(node, timeout);
        if (w < 0) {
            node->state = ST_DONE;
            failed(self, node);
            r = -1;
        }
        else {
            /* Woken, or timed out: decide under the lock (it may have been served
             * or failed between the timeout and now). */
            LOCK(self);
            int still_queued = node->queued;
            UNLOCK(self);
            if (w == 0 && still_queued && !self->closed) {
                node->state = ST_DONE;
                if (failed(self, node) == 0) {
                    if (timeout >= 0)
                        PyErr_Format(PyExc_TimeoutError, "no %lld permits within %S s",
                                     (long long)n, objs[1]);
                }
                r = -1;
            }
            else {
                r = resume(node);
                node->state = ST_DONE;
            }
        }
    }
    else if (r == 1 && self->tracer != NULL) {
        trace_now(self, "granted", n);
    }
    if (r == 1)
        permit_track(node->permit);
    node->state = ST_DONE;
    PyObject *result = NULL;
    if (r == 1)
        result = Py_NewRef(node->permit);
    Py_DECREF(node);
    return result;
}

/* async with sem: take one permit. The uncontended case returns a completed
 * awaitable and allocates nothing; otherwise an Acquire whose result is None. */
static PyObject *
sem_aenter(SemObject *self, PyObject *Py_UNUSED(a))
{
    int fast = 0;
    if (self->tracer == NULL && self->debug == NULL) {
        LOCK(self);
        if (!self->closed && self->head == NULL && self->permits > 0) {
            self->permits--;
            fast = 1;
        }
        UNLOCK(self);
    }
    if (fast)
        return Py_NewRef(ready_none);
    return (PyObject *)acq_new(self, 1, K_NONE);
}

static PyObject *
sem_aexit(SemObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (put(self, 1, NULL) < 0)
        return NULL;
    return Py_NewRef(ready_none);
}

static PyObject *
sem_statistics(SemObject *self, PyObject *Py_UNUSED(a))
{
    if (self->ngranted)
        reclaim(self);
    LOCK(self);
    int64_t available = self->permits;
    Py_ssize_t waiting = self->waiting;
    int64_t needed = 0;
    for (AcqObject *node = self->head; node != NULL; node = node->next)
        needed += node->needed - node->assigned;
    int closed = self->closed;
    int64_t capacity = self->limit;
    UNLOCK(self);
    PyObject *mod = support();
    if (mod == NULL)
        return NULL;
    PyObject *cls = PyObject_GetAttrString(mod, "SemaphoreStatistics");
    if (cls == NULL)
        return NULL;
    PyObject *kw = Py_BuildValue("{s:L,s:n,s:L,s:O,s:O}", "available_permits",
                                 (long long)available, "tasks_waiting", waiting,
                                 "permits_wanted", (long long)needed, "closed",
                                 closed ? Py_True : Py_False, "capacity", Py_None);
    if (kw != NULL && self->bounded) { /* as the reference: even below 0 */
        PyObject *c = PyLong_FromLongLong(capacity);
        if (c == NULL || PyDict_SetItemString(kw, "capacity", c) < 0)
            Py_CLEAR(kw);
        Py_XDECREF(c);
    }
    PyObject *empty = PyTuple_New(0);
    PyObject *res = NULL;
    if (kw != NULL && empty != NULL)
        res = PyObject_Call(cls, empty, kw);
    Py_XDECREF(empty);
    Py_XDECREF(kw);
    Py_DECREF(cls);
    return res;
}

/* Test hook: the queue as [(needed, assigned)], head first, after checking the
 * invariants (I1)-(I4) on the way. AssertionError if one is broken. The queue
 * is checked and copied in one locked region (no allocation in it (R1): the
 * copy goes to a buffer sized before; if the queue grew meanwhile, again). */
static PyObject *
sem_queue_snapshot(SemObject *self, PyObject *Py_UNUSED(a))
{
    const char *broken = NULL;
    int64_t *pairs = NULL;
    Py_ssize_t count, room = 0;
    for (;;) {
        LOCK(self);
        Py_ssize_t waiting = self->waiting;
        UNLOCK(self);
        if (waiting >= room) {
            room = waiting + 8;
            PyMem_Free(pairs);
            pairs = PyMem_New(int64_t, 2 * (size_t)room);
            if (pairs == NULL)
                return PyErr_NoMemory();
        }
        count = 0;
        broken = NULL;
        AcqObject *prev = NULL;
        LOCK(self);
        for (AcqObject *node = self->head; node != NULL && count < room; node = node->next) {
            if (node->prev != prev)
                broken = "broken prev link";
            else if (!node->queued)
                broken = "linked node not flagged queued";
            else if (node->assigned < 0 || node->assigned > node->needed)
                broken = "assigned outside 0..needed";
            else if (count > 0 && node->assigned != 0)
                broken = "only the head may hold a partial reservation";
            if (broken)
                break;
            pairs[2 * count] = node->needed;
            pairs[2 * count + 1] = node->assigned;
            prev = node;
            count++;
        }
        int grew = 0;
        if (!broken && count == room && prev->next != NULL) {
            if (self->waiting >= room)
                grew = 1; /* queued meanwhile: a bigger buffer */
            else
                broken = "waiting count disagrees with the list";
        }
        else if (!broken) {
            if (self->tail != prev)
                broken = "tail does not point at the last node";
            else if (count != self->waiting)
                broken = "waiting count disagrees with the list";
            else if (count && self->permits != 0)
                broken = "free permits while someone is queued";
        }
        UNLOCK(self);
        if (!grew)
            break;
    }
    PyObject *list = NULL;
    if (broken)
        PyErr_SetString(PyExc_AssertionError, broken);
    else
        list = PyList_New(count);
    for (Py_ssize_t i = 0; list != NULL && i < count; i++) {
        PyObject *item = Py_BuildValue("(LL)", (long long)pairs[2 * i],
                                       (long long)pairs[2 * i + 1]);
        if (item == NULL)
            Py_CLEAR(list);
        else
            PyList_SET_ITEM(list, i, item);
    }
    PyMem_Free(pairs);
    return list;
}

static PyMethodDef sem_methods[] = {
    {"add_permits", (PyCFunction)(void (*)(void))sem_add_permits,
     METH_FASTCALL | METH_KEYWORDS,
     "Add n permits: to the queue oldest first (partially to the head), then the counter."},
    {"release", (PyCFunction)(void (*)(void))sem_release, METH_FASTCALL | METH_KEYWORDS,
     "release(n=1): add_permits with asyncio's default of one permit."},
    {"forget_permits", (PyCFunction)sem_forget_permits, METH_O,
     "Remove up to n permits from the free counter (never from waiters); return how many."},
    {"close", (PyCFunction)sem_close, METH_NOARGS,
     "Close the semaphore: every queued waiter fails with AcquireError. Idempotent."},
    {"locked", (PyCFunction)sem_locked, METH_NOARGS,
     "True when acquire() would wait right now (asyncio's meaning)."},
    {"acquire", (PyCFunction)(void (*)(void))sem_acquire, METH_FASTCALL | METH_KEYWORDS,
     "Request n permits: await the result for a Permit, or use it as async with."},
    {"try_acquire", (PyCFunction)(void (*)(void))sem_try_acquire,
     METH_FASTCALL | METH_KEYWORDS,
     "Take n permits now, or raise Closed (checked first) or NoPermits."},
    {"acquire_blocking", (PyCFunction)(void (*)(void))sem_acquire_blocking,
     METH_FASTCALL | METH_KEYWORDS,
     "Block the calling thread until n permits are granted (FIFO with async waiters)."},
    {"statistics", (PyCFunction)sem_statistics, METH_NOARGS,
     "A snapshot of the semaphore's state for debugging."},
    {"_queue_snapshot", (PyCFunction)sem_queue_snapshot, METH_NOARGS,
     "Test hook: [(needed, assigned)] head first, invariants checked."},
    {"__aenter__", (PyCFunction)sem_aenter, METH_NOARGS, NULL},
    {"__aexit__", (PyCFunction)(void (*)(void))sem_aexit, METH_FASTCALL, NULL},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef sem_getset[] = {
    {"available_permits", (getter)sem_available, NULL,
     "Permits free in the counter (permits handed to queued waiters are not in it).", NULL},
    {"closed", (getter)sem_get_closed, NULL, "True once close() has been called.", NULL},
    {"waiting", (getter)sem_get_waiting, NULL, "The number of queued acquire calls.", NULL},
    {"name", (getter)sem_get_name, NULL, "The name given at construction.", NULL},
    {"tracer", (getter)sem_get_tracer, (setter)sem_set_tracer,
     "The callable that receives TraceEvent; may be replaced at any time.", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject Semaphore_Type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "Semaphore", /* __module__ is set to "batchsem" at import */
    .tp_basicsize = sizeof(SemObject),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_BASETYPE,
    .tp_doc = "A counting semaphore where a task may wait for many permits at once, "
              "strictly FIFO (compiled core; see batchsem._semaphore for the reference).",
    .tp_dealloc = (destructor)sem_dealloc,
    .tp_traverse = (traverseproc)sem_traverse,
    .tp_clear = (inquiry)sem_clear,
    .tp_repr = (reprfunc)sem_repr,
    .tp_weaklistoffset = offsetof(SemObject, weakreflist),
    .tp_methods = sem_methods,
    .tp_getset = sem_getset,
    .tp_init = (initproc)sem_init,
    .tp_new = sem_tp_new,
};

static PyTypeObject BoundedSemaphore_Type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "BoundedSemaphore", /* __module__ is set to "batchsem" at import */
    .tp_basicsize = sizeof(SemObject),
    /* Py_TPFLAGS_HAVE_GC, traverse and clear are inherited from Semaphore */
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE,
    .tp_doc = "A Semaphore that knows its capacity: releasing beyond it raises ValueError "
              "and changes nothing; a request for more than it fails at once.",
    .tp_init = (initproc)bsem_init,
};

/* ------------------------------------------------------------------ module */

static PyMethodDef module_methods[] = {
    {"_resolve", (PyCFunction)resolve, METH_O,
     "Set a future's result to None unless it is done (a cross-thread wake-up)."},
    {"_recheck", (PyCFunction)(void (*)(void))recheck, METH_FASTCALL,
     "Timer callback: re-check for stranded waiters ahead of a queued request."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT,
    .m_name = "batchsem._cbatchsem",
    .m_doc = "The compiled core of batchsem: Semaphore, BoundedSemaphore, Permit and the "
             "acquire awaitable. Same semantics as batchsem._semaphore.",
    .m_size = -1,
    .m_methods = module_methods,
};

static int
add_max_permits(PyObject *m)
{
    PyObject *v = PyLong_FromLongLong(MAX_PERMITS);
    if (v == NULL)
        return -1;
    int rc = PyModule_AddObjectRef(m, "MAX_PERMITS", v);
    Py_DECREF(v);
    return rc;
}

#define INTERN(var, s)                                                                     \
    do {                                                                                   \
        var = PyUnicode_InternFromString(s);                                               \
        if (var == NULL)                                                                   \
            return NULL;                                                                   \
    } while (0)

PyMODINIT_FUNC
PyInit__cbatchsem(void)
{
    BoundedSemaphore_Type.tp_base = &Semaphore_Type;
    if (PyType_Ready(&Semaphore_Type) < 0 || PyType_Ready(&BoundedSemaphore_Type) < 0 ||
        PyType_Ready(&Permit_Type) < 0 || PyType_Ready(&Acquire_Type) < 0 ||
        PyType_Ready(&Ready_Type) < 0)
        return NULL;
    INTERN(str_set_result, "set_result");
    INTERN(str_create_future, "create_future");
    INTERN(str_call_soon_threadsafe, "call_soon_threadsafe");
    INTERN(str_blocking, "_asyncio_future_blocking");
    INTERN(str_done, "done");
    INTERN(str_is_closed, "is_closed");
    INTERN(str_call_later, "call_later");
    if ((AcquireError = import_attr_any("batchsem._errors", "AcquireError")) == NULL ||
        (ClosedError = import_attr_any("batchsem._errors", "Closed")) == NULL ||
        (NoPermitsError = import_attr_any("batchsem._errors", "NoPermits")) == NULL ||
        (InvalidStateError = import_attr_any("asyncio", "InvalidStateError")) == NULL ||
        (get_running_loop = import_attr_any("asyncio.events", "_get_running_loop")) == NULL ||
        (future_type = import_attr_any("asyncio", "Future")) == NULL)
        return NULL;
    PyObject *base_loop = import_attr_any("asyncio.base_events", "BaseEventLoop");
    if (base_loop == NULL)
        return NULL;
    base_create_future = PyObject_GetAttr(base_loop, str_create_future);
    Py_DECREF(base_loop);
    if (base_create_future == NULL || (kwnames_loop = Py_BuildValue("(s)", "loop")) == NULL)
        return NULL;
    ReadyObject *r = PyObject_GC_New(ReadyObject, &Ready_Type);
    if (r == NULL)
        return NULL;
    r->value = Py_NewRef(Py_None);
    ready_none = (PyObject *)r; /* immortal for the module's life; never tracked */

    /* The public classes present themselves as batchsem's, like the Python ones
     * (type errors then say "object Semaphore ...", as with the Python core). */
    PyTypeObject *public_types[] = {&Semaphore_Type, &BoundedSemaphore_Type, &Permit_Type,
                                    &Acquire_Type};
    for (size_t i = 0; i < sizeof(public_types) / sizeof(public_types[0]); i++) {
        PyObject *mod_name = PyUnicode_FromString("batchsem");
        if (mod_name == NULL ||
            PyDict_SetItemString(public_types[i]->tp_dict, "__module__", mod_name) < 0) {
            Py_XDECREF(mod_name);
            return NULL;
        }
        Py_DECREF(mod_name);
        PyType_Modified(public_types[i]);
    }
    PyObject *m = PyModule_Create(&module_def);
    if (m == NULL)
        return NULL;
#ifdef Py_GIL_DISABLED
    PyUnstable_Module_SetGIL(m, Py_MOD_GIL_NOT_USED);
#endif
    resolve_fn = PyObject_GetAttrString(m, "_resolve");
    recheck_fn = PyObject_GetAttrString(m, "_recheck");
    if (resolve_fn == NULL || recheck_fn == NULL || PyModule_AddObjectRef(m, "Semaphore", (PyObject *)&Semaphore_Type) < 0 ||
        PyModule_AddObjectRef(m, "BoundedSemaphore", (PyObject *)&BoundedSemaphore_Type) < 0 ||
        PyModule_AddObjectRef(m, "Permit", (PyObject *)&Permit_Type) < 0 ||
        PyModule_AddObjectRef(m, "Acquire", (PyObject *)&Acquire_Type) < 0 ||
        add_max_permits(m) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
