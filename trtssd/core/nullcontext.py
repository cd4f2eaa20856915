"""A context manager that does nothing (``contextlib.nullcontext`` is Python 3.7+)."""


class NullContext(object):
    """``with NULL_CONTEXT:`` runs the block with nothing entered or left."""
    __slots__ = ()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


NULL_CONTEXT = NullContext()
