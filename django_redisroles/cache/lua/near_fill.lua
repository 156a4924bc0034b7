-- A near-cache fill: the value and its PTTL in one round trip (one command, so
-- no write can fall between the two). {false, -2} when the key is missing.
local value = redis.call('GET', KEYS[1])
if not value then
    return {false, -2}
end
return {value, redis.call('PTTL', KEYS[1])}
