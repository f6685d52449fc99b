# Augmenting declarations for _waitlist.py (Cython "pure Python mode"): the queue node and
# the queue become cdef classes with C-typed counts; the .py file is unchanged.
import cython


cdef class Waiter:
    cdef public Waiter prev
    cdef public Waiter next
    cdef public long long needed
    cdef public long long assigned
    cdef public bint queued
    cdef public object waker
    cdef public object thread


cdef class WaitList:
    cdef public Waiter head
    cdef public Waiter tail
    cdef public Py_ssize_t count
    cdef public long long leftover

    cpdef push(self, Waiter node, long long assigned=*)

    @cython.locals(prev=Waiter, nxt=Waiter, n="long long")
    cpdef long long withdraw(self, Waiter node)

    @cython.locals(node=Waiter, nxt=Waiter, last=Waiter, served=Waiter, want="long long")
    cpdef Waiter assign(self, long long rem)

    @cython.locals(node=Waiter, failed=Waiter, total="long long")
    cpdef Waiter fail_all(self)

    cpdef long long head_assigned(self)


@cython.locals(node=Waiter, nxt=Waiter)
cpdef list wake(Waiter chain, set granted)

cpdef bint stranded(Waiter node)
