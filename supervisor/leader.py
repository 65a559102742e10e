"""The scheduler's leader lease in Redis: exactly one ``tds run`` sharing a Redis schedules jobs.

The lease is one key, ``<namespace>:scheduler:leader``, whose value is the holder's instance id and
whose TTL is the lease time. Acquiring is ``SET key id NX PX lease_ms`` (pipelined with ``PTTL``, so that a
follower knows when the holder's lease runs out and tries again right then); renewing and releasing are
the Lua scripts below, which act only while the key still holds our id, so an instance whose lease
ran out can never extend or delete the lease of the instance that took over.

Never two leaders: an instance counts itself leader only until ``lease time × SAFETY`` after it
*sent* its last successful acquire or renew. Redis started the key's TTL when it received the command,
later than that, so our own belief always ends before the key can expire and be taken by another.
A Redis error changes nothing here: the belief simply runs out, and the caller stops scheduling.
"""

from __future__ import annotations

import os
import secrets
import socket
import time

import redis

SAFETY = 0.9  # margin for clock-rate differences between this host and Redis

# renew.lua
#   KEYS[1]: the lease key
#   ARGV[1]: this instance's id
#   ARGV[2]: the lease time in milliseconds
# Extends the lease to ARGV[2] ms if this instance holds it. Returns 1 if extended, 0 if not ours.
RENEW = """
if redis.call("get", KEYS[1]) == ARGV[1] then
    return redis.call("pexpire", KEYS[1], ARGV[2])
end
return 0
"""

# release.lua
#   KEYS[1]: the lease key
#   ARGV[1]: this instance's id
# Deletes the lease if this instance holds it, so another takes over at once instead of after the
# TTL. Returns 1 if deleted, 0 if not ours (expired, or already taken over).
RELEASE = """
if redis.call("get", KEYS[1]) == ARGV[1] then
    return redis.call("del", KEYS[1])
end
return 0
"""


def new_instance_id() -> str:
    """hostname:pid:random — unique even for two processes that reuse a pid on different hosts."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"


class Lease:
    """One instance's view of the lease. Redis errors propagate; ``held()`` never raises."""

    def __init__(self, client: redis.Redis, key: str, owner: str, lease_s: float):
        self.client, self.key, self.owner = client, key, owner
        self.lease_s = lease_s  # may be changed on reload; the next acquire or renew uses it
        self._until = 0.0  # monotonic time our belief of holding the lease ends
        self.free_in_s = 0.0  # after a failed acquire: when the holder's lease ends unless renewed
        self._renew = client.register_script(RENEW)
        self._release = client.register_script(RELEASE)

    def acquire(self) -> bool:
        """Take the lease if nobody holds it; True if we hold it now."""
        sent = time.monotonic()
        self.free_in_s = self.lease_s  # unknown until Redis answers
        pipe = self.client.pipeline(transaction=False)
        pipe.set(self.key, self.owner, nx=True, px=self._ms())
        pipe.pttl(self.key)
        got, ttl_ms = pipe.execute()
        if got:
            self._until = sent + self.lease_s * SAFETY
            return True
        # -2: the key went away since the SET, try again at once; -1: a key without TTL (not ours to fix)
        self.free_in_s = ttl_ms / 1000 if ttl_ms > 0 else 0.0 if ttl_ms == -2 else self.lease_s
        return False

    def renew(self) -> bool:
        """Extend the lease we hold; False (and no longer held) if it is not ours any more."""
        sent = time.monotonic()
        if self._renew(keys=[self.key], args=[self.owner, self._ms()]):
            self._until = sent + self.lease_s * SAFETY
            return True
        self._until = 0.0
        return False

    def release(self) -> bool:
        """Give the lease up; we stop counting ourselves leader before Redis is even asked."""
        self._until = 0.0
        return bool(self._release(keys=[self.key], args=[self.owner]))

    def held(self) -> bool:
        return time.monotonic() < self._until

    def remaining_s(self) -> float:
        return max(0.0, self._until - time.monotonic())

    def leader(self) -> str | None:
        """The id of the instance holding the lease now, as Redis says, or None."""
        value = self.client.get(self.key)
        return value.decode() if isinstance(value, bytes) else value

    def _ms(self) -> int:
        return int(self.lease_s * 1000)
