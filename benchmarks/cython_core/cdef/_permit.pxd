# The "cdef" variant only (build.py): Permit becomes a cdef class with a C-typed count.
cdef class Permit:
    cdef public object _sem
    cdef public long long _n
