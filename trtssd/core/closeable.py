"""The context-manager half of everything that owns a resource: ``with x:`` calls ``x.close()``."""


class Closeable(object):
    """Mixin: ``__enter__`` returns the object, ``__exit__`` closes it (exceptions propagate).
    The class defines ``close()``; it must be safe to call more than once."""
    __slots__ = ()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False
