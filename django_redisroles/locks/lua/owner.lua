-- OWNER: who holds a lock, read at one instant (locks/operations.py).
--
-- KEYS: lock -> {value or false, pttl, {seconds, microseconds}}
-- One script rather than a MULTI with TIME: TIME has no key, and a Redis
-- Cluster pipeline would send it to whichever node, not the lock's.
return {redis.call('GET', KEYS[1]), redis.call('PTTL', KEYS[1]), redis.call('TIME')}
