# The "cdef" variant only (build.py appends this to typed/_semaphore.pxd): the request
# object becomes a cdef class too, so that its __await__ reads the semaphore's C fields.
from ._permit cimport Permit


cdef class Acquire:
    cdef public object _gen
    cdef public long long _n
    cdef public object _permit
    cdef public Semaphore _sem
