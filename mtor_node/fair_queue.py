"""A fair queue: round-robin between users, so one user's burst cannot starve the others.

Pure data structure (no I/O, no trio): the broker decides when to take, this decides what.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from typing import Callable, Generic, Hashable, Iterator, TypeVar

T = TypeVar("T")


class QueueFull(Exception):
    pass


class FairQueue(Generic[T]):
    def __init__(self, max_size: int, key: Callable[[T], Hashable], user: Callable[[T], Hashable]):
        self.max_size = max_size
        self._key = key
        self._user = user
        # users in service order: the first user is served next, then moves to the back
        self._users: OrderedDict[Hashable, deque[T]] = OrderedDict()
        self._size = 0

    def __len__(self) -> int:
        return self._size

    def put(self, item: T) -> int:
        """Queue `item`; returns its 1-based position. Raises QueueFull."""
        if self._size >= self.max_size:
            raise QueueFull(f"the queue is full ({self.max_size} intents waiting); try again shortly")
        user = self._user(item)
        items = self._users.setdefault(user, deque())
        items.append(item)
        self._size += 1
        return self._position(user, len(items) - 1)

    def _position(self, user: Hashable, k: int) -> int:
        """Position of `user`'s k-th item without listing the whole order: everyone's first k
        items go before it, and so do the k+1-th items of users ahead in the rotation."""
        pos = 1
        ahead = True
        for u, items in self._users.items():
            if u == user:
                ahead = False
            pos += min(len(items), k) + (1 if ahead and len(items) > k else 0)
        return pos

    def take(self, can_run: Callable[[T], bool] = lambda _: True) -> T | None:
        """Remove and return the next item that can run now, in round-robin order of users.

        A user whose head item cannot run (its model is busy) is skipped this turn, so a busy
        model never blocks work for free ones.
        """
        for user, items in list(self._users.items()):
            if can_run(items[0]):
                item = items.popleft()
                self._size -= 1
                del self._users[user]
                if items:
                    self._users[user] = items  # back of the line
                return item
        return None

    def remove(self, key: Hashable) -> T | None:
        for user, items in self._users.items():
            for item in items:
                if self._key(item) == key:
                    items.remove(item)
                    self._size -= 1
                    if not items:
                        del self._users[user]
                    return item
        return None

    def order(self) -> Iterator[T]:
        """Items in the order they would be served if every one could run."""
        queues = [list(q) for q in self._users.values()]
        depth = max((len(q) for q in queues), default=0)
        for i in range(depth):
            for q in queues:
                if i < len(q):
                    yield q[i]

    def positions(self) -> dict[Hashable, int]:
        return {self._key(item): i for i, item in enumerate(self.order(), start=1)}

    def position(self, key: Hashable) -> int | None:
        return self.positions().get(key)
