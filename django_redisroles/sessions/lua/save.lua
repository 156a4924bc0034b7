-- SAVE: one session write, and its user-index update, atomically (sessions/store.py).
--
-- KEYS: session, old session (cycle_key) or session, user index or session, meta or session,
--       then the session keys of the MAX_SESSIONS candidates (oldest first)
-- ARGV: mode ("c" create | "u" update), data, ttl, now, key, old key ("" = none),
--       index ("1" | "0"), login metadata JSON ("" = keep), index score (the
--       session's expiry time), grace (INDEX_REFRESH seconds), MAX_SESSIONS ("0" = no cap),
--       then per candidate: index member, SHA1 of its session as read ("" = missing),
--       "1" if it belonged to this user
-- Returns 1 saved, 0 create failed (key taken), -1 update failed (session gone),
-- -2 cycle_key failed (the old session is gone), -3 too few of the candidates are
-- still there unchanged (read again and retry: nothing was written).
--
-- cycle_key() is this script with an old key: the new key is written and the old
-- one removed (its index entry and metadata moved) in the same step, so a
-- concurrent logout_everywhere finds the session under one key or the other.
local ttl = tonumber(ARGV[3])
local now = tonumber(ARGV[4])
local sk, old, indexed = ARGV[5], ARGV[6], ARGV[7] == '1'
if ttl <= 0 then
  -- Already expired (an expiry date in the past): the session ends now,
  -- under its old key too (cycle_key).
  redis.call('UNLINK', KEYS[1])
  if old ~= '' then
    redis.call('UNLINK', KEYS[2])
  end
  if indexed then
    redis.call('ZREM', KEYS[3], sk)
    redis.call('HDEL', KEYS[4], sk, sk .. '|seen')
    if old ~= '' then
      redis.call('ZREM', KEYS[3], old)
      redis.call('HDEL', KEYS[4], old, old .. '|seen')
    end
  end
  return 1
end
if old ~= '' and redis.call('EXISTS', KEYS[2]) == 0 then
  -- A retry of this very call (the reply to the first one was lost): done.
  if redis.call('GET', KEYS[1]) == ARGV[2] then return 1 end
  -- cycle_key() of a session deleted meanwhile (a logout elsewhere): do not
  -- bring it back under a new key.
  return -2
end
-- MAX_SESSIONS: the user's oldest sessions beyond the cap end with this save,
-- atomically. They were read (and their owner checked) before; they must not
-- have changed since, or nothing is written and the caller reads again.
local cap = tonumber(ARGV[11] or '0')
local victims = {}
if indexed and cap > 0 then
  local grace = tonumber(ARGV[10])
  local others = {}
  for _, m in ipairs(redis.call('ZRANGEBYSCORE', KEYS[3], now - grace, '+inf')) do
    if m ~= sk and m ~= old then others[#others + 1] = m end
  end
  local excess = #others + 1 - cap
  if excess > 0 then
    local declared = {}
    for i = 12, #ARGV, 3 do
      declared[ARGV[i]] = {4 + (i - 9) / 3, ARGV[i + 1], ARGV[i + 2]}
    end
    -- Oldest first, among the entries read and unchanged since: one added by a
    -- concurrent login, or saved since, is passed over (the cap is what must
    -- hold; "oldest" among entries of the same second is arbitrary anyway).
    for _, m in ipairs(others) do
      if #victims == excess then break end
      local d = declared[m]
      if d then
        local value = redis.call('GET', KEYS[d[1]])
        local sha = ''
        if value then sha = redis.sha1hex(value) end
        if sha == d[2] then
          victims[#victims + 1] = {m, d[1], d[3] == '1' and value}
        end
      end
    end
    if #victims < excess then return -3 end
  end
end
local ok
if ARGV[1] == 'c' then
  ok = redis.call('SET', KEYS[1], ARGV[2], 'NX', 'EX', ttl)
else
  ok = redis.call('SET', KEYS[1], ARGV[2], 'XX', 'EX', ttl)
end
if not ok then
  if ARGV[1] == 'c' then
    -- A re-sent create whose first send did run: ours, not a collision.
    if redis.call('GET', KEYS[1]) == ARGV[2] then return 1 end
    return 0
  end
  return -1
end
local moved = false
if old ~= '' then
  redis.call('UNLINK', KEYS[2])
end
if indexed then
  if old ~= '' then
    redis.call('ZREM', KEYS[3], old)
    local m = redis.call('HGET', KEYS[4], old)
    if m and ARGV[8] == '' then
      redis.call('HSET', KEYS[4], sk, m)
      moved = true
    end
    redis.call('HDEL', KEYS[4], old, old .. '|seen')
  end
  local grace = tonumber(ARGV[10])
  for _, v in ipairs(victims) do
    if v[3] then redis.call('UNLINK', KEYS[v[2]]) end
    redis.call('ZREM', KEYS[3], v[1])
    redis.call('HDEL', KEYS[4], v[1], v[1] .. '|seen')
  end
  redis.call('ZADD', KEYS[3], ARGV[9], sk)
  if ARGV[8] ~= '' then
    redis.call('HSET', KEYS[4], sk, ARGV[8], sk .. '|seen', ARGV[4])
  else
    redis.call('HSET', KEYS[4], sk .. '|seen', ARGV[4])
  end
  -- Lazy trimming: entries whose session has surely expired (a score may
  -- lag the real expiry by up to `grace` seconds, see INDEX_REFRESH).
  local dead = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', now - grace)
  if #dead > 0 then
    redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now - grace)
    for _, d in ipairs(dead) do
      redis.call('HDEL', KEYS[4], d, d .. '|seen')
    end
  end
  -- The index lives as long as its longest-lived session.
  local top = redis.call('ZRANGE', KEYS[3], -1, -1, 'WITHSCORES')
  local at = math.ceil(tonumber(top[2])) + grace
  redis.call('EXPIREAT', KEYS[3], at)
  redis.call('EXPIREAT', KEYS[4], at)
end
return 1
