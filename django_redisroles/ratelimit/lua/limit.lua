-- django-redisroles rate limiter: every policy of one request, in one call.
--
-- KEYS[i]      one key per policy (all keys of one request share a hash tag)
-- ARGV[3i-2]   algorithm: 1 fixed window, 2 sliding window counter, 3 GCRA
-- ARGV[3i-1]   limit (requests per period, >= 1)
-- ARGV[3i]     period in microseconds
-- ARGV[3n+1]   optional: "0" = report only, count nothing (the request was
--              refused by policies in another cluster slot: ratelimit/slots.py)
--
-- All or nothing: the request is counted against every policy only when
-- every policy has room; a rejected request consumes nothing. The clock is
-- Redis' own (TIME), so app servers with skewed clocks agree.
--
-- Returns 4 integers per policy: allowed (1/0), remaining after this
-- request, milliseconds until more quota is available (the RateLimit
-- header's t: until `remaining` grows by one, for the sliding window at most
-- until its window ends; 0 when the quota is full), milliseconds until a
-- request would be allowed (0 when allowed). For a policy that refused the
-- request the last two are equal.

local call, tonumber, floor, ceil, max, fmt = redis.call, tonumber, math.floor, math.ceil, math.max, string.format

local t = call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local n = #KEYS
local algo, limit, period, st, allow = {}, {}, {}, {}, {}
local ok = ARGV[3 * n + 1] ~= '0'

for i = 1, n do
  local a = tonumber(ARGV[3 * i - 2])
  local l = tonumber(ARGV[3 * i - 1])
  local p = tonumber(ARGV[3 * i])
  algo[i], limit[i], period[i] = a, l, p
  if a == 3 then
    -- GCRA: theoretical arrival time; a burst of `l` from idle, then one per p/l.
    local tat = tonumber(call('GET', KEYS[i])) or now
    if tat < now then tat = now end
    st[i] = tat
    -- 1 microsecond of slack absorbs float rounding of p/l.
    allow[i] = tat + p / l - now <= p + 1
  else
    local win = floor(now / p)
    local v = call('HMGET', KEYS[i], 'w', 'c', 'p')
    local w, c, prev = tonumber(v[1]), tonumber(v[2]) or 0, tonumber(v[3]) or 0
    if w == nil then
      c, prev = 0, 0
    elseif w == win - 1 then
      prev, c = c, 0
    elseif w ~= win then
      c, prev = 0, 0
    end
    st[i] = { win, c, prev }
    if a == 1 then
      allow[i] = c + 1 <= l
    else
      local elapsed = now - win * p
      allow[i] = prev * (p - elapsed) / p + c + 1 <= l
    end
  end
  if not allow[i] then ok = false end
end

local out = {}
for i = 1, n do
  local a, l, p = algo[i], limit[i], period[i]
  local remaining, more, retry
  if a == 3 then
    local T = p / l
    local tat = st[i]
    if ok then
      tat = tat + T
      call('SET', KEYS[i], fmt('%.17g', tat), 'PX', ceil((tat - now) / 1000) + 1)
      retry = 0
    elseif allow[i] then
      retry = 0
    else
      retry = tat + T - p - now
    end
    remaining = floor((p - (tat - now)) / T + 1e-6)
    -- one more request's worth is back when (tat - now') <= p - (remaining + 1) * T
    more = (remaining + 1) * T - p + tat - now
  else
    local win, c, prev = st[i][1], st[i][2], st[i][3]
    local window_end = (win + 1) * p
    if ok then
      c = c + 1
      local ttl = window_end - now
      if a == 2 then ttl = ttl + p end
      call('HSET', KEYS[i], 'w', win, 'c', c, 'p', prev)
      call('PEXPIRE', KEYS[i], ceil(ttl / 1000) + 1)
    end
    if a == 1 then
      -- the whole quota comes back when the window ends
      remaining = l - c
      more = window_end - now
      if allow[i] then retry = 0 else retry = window_end - now end
    else
      -- The estimate prev * (p - elapsed) / p + c falls as the previous window
      -- slides out, then as this one does (it becomes the previous one): the
      -- first moment it is <= l - (remaining + 1) is when one more request fits.
      local elapsed = now - win * p
      local est = prev * (p - elapsed) / p + c
      remaining = max(0, floor(l - est + 1e-6))
      local room = l - remaining - 1 - c  -- what the previous window may still weigh
      if prev > 0 and room >= 0 then
        more = p * (1 - room / prev) - elapsed
      elseif c > 0 then
        more = window_end - now + max(0, p * (1 - (l - remaining - 1) / c))
      else
        more = window_end - now
      end
      if allow[i] then
        -- at most until this window ends: from then on its requests slide out
        -- too (r grows as they do), and t stays within the window
        retry = 0
        if more > window_end - now then more = window_end - now end
      else
        retry = more
      end
    end
  end
  if remaining < 0 then remaining = 0 end
  if remaining >= l then remaining = l; more = 0 end
  if more < 0 then more = 0 end
  if retry < 0 then retry = 0 end
  out[4 * i - 3] = (allow[i] and 1) or 0
  out[4 * i - 2] = remaining
  out[4 * i - 1] = ceil(more / 1000)
  out[4 * i] = ceil(retry / 1000)
end
return out
