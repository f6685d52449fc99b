# Augmenting declarations for _semaphore.py (Cython "pure Python mode"): the semaphore's
# hot fields become C fields with C-typed counters; the .py file is unchanged. Acquire
# and Permit stay Python classes: the hot paths build them with object.__new__, which a
# cdef class refuses.
import cython

from ._waitlist cimport Waiter, WaitList


cdef class Semaphore:
    cdef object __weakref__
    cdef public bint _closed
    cdef public object _debug
    cdef public bint _fast
    cdef public set _granted
    cdef public object _hold
    cdef public long long _limit
    cdef public object _lock
    cdef public object _name
    cdef public long long _permits
    cdef public object _tracer
    cdef public WaitList _waiters

    cpdef _wake(self, Waiter chain)
    cpdef _give_back(self, Waiter node)

    @cython.locals(waiters=WaitList, woken=Waiter, head=Waiter, free="long long", over=bint)
    cpdef _put(self, long long n)

    @cython.locals(node=Waiter, waiters=WaitList, free="long long", closed=bint, wait=bint,
                   scan=bint)
    cpdef Waiter _begin(self, long long n, object event=*)


cdef class BoundedSemaphore(Semaphore):
    pass
