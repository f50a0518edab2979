"""Plain-Python core of Palaver: no I/O, no HTTP, no SQL.

Everything here can be unit-tested by constructing objects and calling functions.
"""
