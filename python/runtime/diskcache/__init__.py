"""A stand-in for `diskcache` inside the sandbox, in memory.

Dash apps make `diskcache.Cache("./cache")` at import for `DiskcacheManager`; on Tessera the
platform runs background callbacks as jobs, so the manager is ignored, and there is no
writable disk (nor SQLite) in the sandbox. This `Cache` keeps what an app stores in it in
the instance's memory, with expiry, for the few apps that use it beyond the manager; use
`tessera.cache` for a cache shared between instances and replicas.
"""
import functools
import time

__all__ = ["Cache", "FanoutCache", "ENOVAL"]
__version__ = "5.6.3"

ENOVAL = object()


class Cache:
    """`diskcache.Cache`'s common methods over a dictionary; `directory` is only recorded."""

    def __init__(self, directory=None, timeout=60, disk=None, **settings):
        self.directory = directory
        self._items = {}

    def _live(self, key):
        item = self._items.get(key)
        if item is None:
            return None
        value, expires = item
        if expires is not None and expires <= time.monotonic():
            del self._items[key]
            return None
        return item

    def set(self, key, value, expire=None, read=False, tag=None, retry=False):
        expires = None if expire is None else time.monotonic() + expire
        self._items[key] = (value, expires)
        return True

    def add(self, key, value, expire=None, read=False, tag=None, retry=False):
        if self._live(key) is not None:
            return False
        return self.set(key, value, expire)

    def get(self, key, default=None, read=False, expire_time=False, tag=False, retry=False):
        item = self._live(key)
        return default if item is None else item[0]

    def pop(self, key, default=None, expire_time=False, tag=False, retry=False):
        item = self._live(key)
        if item is None:
            return default
        del self._items[key]
        return item[0]

    def delete(self, key, retry=False):
        return self._items.pop(key, None) is not None

    def incr(self, key, delta=1, default=0, retry=False):
        item = self._live(key)
        if item is None and default is None:
            raise KeyError(key)
        value = (default if item is None else item[0]) + delta
        self._items[key] = (value, None if item is None else item[1])
        return value

    def decr(self, key, delta=1, default=0, retry=False):
        return self.incr(key, -delta, default)

    def touch(self, key, expire=None, retry=False):
        item = self._live(key)
        if item is None:
            return False
        return self.set(key, item[0], expire)

    def clear(self, retry=False):
        count = len(self._items)
        self._items.clear()
        return count

    def expire(self, now=None, retry=False):
        before = len(self._items)
        for key in list(self._items):
            self._live(key)
        return before - len(self._items)

    def memoize(self, name=None, typed=False, expire=None, tag=None, ignore=()):
        """Memoizes a function in this cache, as `diskcache.Cache.memoize`."""
        if callable(name):
            raise TypeError("name cannot be callable: write @cache.memoize()")

        def decorator(func):
            base = name or f"{func.__module__}.{func.__qualname__}"

            @functools.wraps(func)
            def wrapper(*args, **kwargs):
                kept = tuple(a for i, a in enumerate(args) if i not in ignore)
                key = (base, kept, tuple(sorted((k, v) for k, v in kwargs.items() if k not in ignore)))
                if typed:
                    key += tuple(type(a) for a in kept)
                value = self.get(key, ENOVAL)
                if value is ENOVAL:
                    value = func(*args, **kwargs)
                    self.set(key, value, expire)
                return value

            return wrapper

        return decorator

    def volume(self):
        return 0

    def close(self):
        pass

    def __contains__(self, key):
        return self._live(key) is not None

    def __getitem__(self, key):
        value = self.get(key, ENOVAL)
        if value is ENOVAL:
            raise KeyError(key)
        return value

    def __setitem__(self, key, value):
        self.set(key, value)

    def __delitem__(self, key):
        if not self.delete(key):
            raise KeyError(key)

    def __len__(self):
        self.expire()
        return len(self._items)

    def __iter__(self):
        self.expire()
        return iter(list(self._items))

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class FanoutCache(Cache):
    """`diskcache.FanoutCache`: one shard is enough in memory."""

    def __init__(self, directory=None, shards=8, timeout=0.010, disk=None, **settings):
        super().__init__(directory)
