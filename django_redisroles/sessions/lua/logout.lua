-- LOGOUT: one round of logout_everywhere (sessions/index.py).
--
-- Ends the sessions given in KEYS[3..] and forgets the index entries given in
-- ARGV[2..], then answers the index's other members (but ARGV[1], the session
-- to keep): sessions that appeared since the caller read the index. cycle_key()
-- moves an entry to its new key in the same script as the rename, so a session
-- is always either among those given or among those answered. Idempotent: a
-- re-sent call ends nothing more.
-- KEYS: user index, meta, then the sessions to end; ARGV: key to keep ("" = none),
-- then the index members read. Returns {ended, others}.
local ended = 0
for i = 3, #KEYS do
  ended = ended + redis.call('UNLINK', KEYS[i])
end
local given = {}
for i = 2, #ARGV do
  local m = ARGV[i]
  given[m] = true
  redis.call('ZREM', KEYS[1], m)
  redis.call('HDEL', KEYS[2], m, m .. '|seen')
end
local others = {}
for _, m in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  if m ~= ARGV[1] and not given[m] then others[#others + 1] = m end
end
return {ended, others}
