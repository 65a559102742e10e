"""The circuit breakers' Lua scripts (``tds_daemon.guard.breakers`` runs them): every transition of a
breaker happens inside one of these, so two processes can never both move a breaker.

Keys (``<ns>`` is ``redis.namespace``):

- ``<ns>:breaker:<name>`` (an app's: ``<ns>:breaker:zoho:<app>@<digest of its URL and organization>``) —
  a hash: ``state`` (closed | open | half_open; absent means closed),
  ``since`` (ms of the last transition), ``opened_at`` and ``retry_at`` (ms; while open or half-open),
  ``reason`` (what opened it: the failure rate, or an operator), ``trials`` / ``trial_ok`` / ``trial_failed`` and
  ``round_at`` (half-open permits given out, their results, when the round began).
- ``<ns>:breaker:<name>:window`` — a hash of per-second buckets of the closed state: ``c<second>``
  calls and ``f<second>`` failures, seconds of the Redis server's clock; buckets older than the window
  are deleted as calls arrive, and the key expires one second after the window.

Every time is the Redis server's clock (``TIME``), so processes on different hosts agree.
"""

# Shared by the scripts: the server clock in ms, the moves to open and closed, the window's count.
_COMMON = """
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function to_open(key, window, now, open_ms, reason)
  redis.call('HSET', key, 'state', 'open', 'since', now, 'opened_at', now, 'retry_at', now + open_ms,
             'reason', reason)
  redis.call('HDEL', key, 'trials', 'trial_ok', 'trial_failed', 'round_at')
  redis.call('DEL', window)
end
local function to_closed(key, window, now)
  redis.call('HSET', key, 'state', 'closed', 'since', now)
  redis.call('HDEL', key, 'opened_at', 'retry_at', 'reason', 'trials', 'trial_ok', 'trial_failed', 'round_at')
  redis.call('DEL', window)
end
-- the calls and failures in a window's buckets of the last window_s seconds before second; with
-- prune, older buckets are deleted on the way
local function count_window(window, second, window_s, prune)
  local calls, failures = 0, 0
  local buckets = redis.call('HGETALL', window)
  for i = 1, #buckets, 2 do
    local at = tonumber(string.sub(buckets[i], 2))
    if at <= second - window_s then
      if prune then
        redis.call('HDEL', window, buckets[i])
      end
    elseif string.sub(buckets[i], 1, 1) == 'c' then
      calls = calls + tonumber(buckets[i + 1])
    else
      failures = failures + tonumber(buckets[i + 1])
    end
  end
  return calls, failures
end
"""

# KEYS[1] the breaker's hash, KEYS[2] its window; ARGV[1] open_s in ms, ARGV[2] half_open_calls.
# Returns {allowed 0|1, state after, from state, retry_at ms (0 when allowed)}; "from" differs from
# the state after only when this call moved the breaker (open -> half_open).
ACQUIRE = _COMMON + """
local now = now_ms()
local state = redis.call('HGET', KEYS[1], 'state') or 'closed'
if state == 'closed' then
  return {1, 'closed', 'closed', 0}
end
local open_ms, trials = tonumber(ARGV[1]), tonumber(ARGV[2])
if state == 'open' then
  local retry_at = tonumber(redis.call('HGET', KEYS[1], 'retry_at') or '0')
  if now < retry_at then
    return {0, 'open', 'open', retry_at}
  end
  redis.call('HSET', KEYS[1], 'state', 'half_open', 'since', now, 'trials', 1, 'trial_ok', 0, 'trial_failed', 0,
             'round_at', now)
  return {1, 'half_open', 'open', 0}
end
local given = tonumber(redis.call('HGET', KEYS[1], 'trials') or '0')
if given < trials then
  redis.call('HINCRBY', KEYS[1], 'trials', 1)
  return {1, 'half_open', 'half_open', 0}
end
local round_at = tonumber(redis.call('HGET', KEYS[1], 'round_at') or '0')
if now - round_at >= open_ms then
  -- every permit is out and none came back in time: their callers died; a new round
  redis.call('HSET', KEYS[1], 'trials', 1, 'trial_ok', 0, 'trial_failed', 0, 'round_at', now)
  return {1, 'half_open', 'half_open', 0}
end
return {0, 'half_open', 'half_open', round_at + open_ms}
"""

# KEYS[1] the breaker's hash, KEYS[2] its window; ARGV[1] 1 success | 0 failure, ARGV[2] failure_rate
# (percent), ARGV[3] window_s, ARGV[4] min_calls, ARGV[5] open_s in ms, ARGV[6] half_open_calls.
# Returns {state after, from state, failure rate (text, percent), calls, failures, retry_at ms}.
RECORD = _COMMON + """
local now = now_ms()
local ok = ARGV[1] == '1'
local threshold, window_s, min_calls = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local open_ms, trials = tonumber(ARGV[5]), tonumber(ARGV[6])
local state = redis.call('HGET', KEYS[1], 'state') or 'closed'
if state == 'open' then
  -- a call allowed before the breaker opened: its result changes nothing
  return {'open', 'open', '', 0, 0, tonumber(redis.call('HGET', KEYS[1], 'retry_at') or '0')}
end
if state == 'half_open' then
  local good = redis.call('HINCRBY', KEYS[1], 'trial_ok', ok and 1 or 0)
  local bad = redis.call('HINCRBY', KEYS[1], 'trial_failed', ok and 0 or 1)
  local rate = tostring(math.floor(bad * 10000 / (good + bad)) / 100)
  -- decided as soon as the failure rate over all the trials is certain either way
  if bad * 100 >= threshold * trials then
    to_open(KEYS[1], KEYS[2], now, open_ms, 'failure rate ' .. rate .. '% of ' .. (good + bad) .. ' trial calls')
    return {'open', 'half_open', rate, good + bad, bad, now + open_ms}
  end
  if (trials - good) * 100 < threshold * trials then
    to_closed(KEYS[1], KEYS[2], now)
    return {'closed', 'half_open', rate, good + bad, bad, 0}
  end
  return {'half_open', 'half_open', rate, good + bad, bad, 0}
end
local second = math.floor(now / 1000)
redis.call('HINCRBY', KEYS[2], 'c' .. second, 1)
if not ok then
  redis.call('HINCRBY', KEYS[2], 'f' .. second, 1)
end
redis.call('PEXPIRE', KEYS[2], (window_s + 1) * 1000)
local calls, failures = count_window(KEYS[2], second, window_s, true)
local rate = tostring(math.floor(failures * 10000 / calls) / 100)
if calls >= min_calls and failures * 100 >= threshold * calls then
  to_open(KEYS[1], KEYS[2], now, open_ms, 'failure rate ' .. rate .. '% of ' .. calls .. ' calls')
  return {'open', 'closed', rate, calls, failures, now + open_ms}
end
return {'closed', 'closed', rate, calls, failures, 0}
"""

# KEYS[1] the breaker's hash. Gives back a half-open permit whose caller made no call (a 429, a
# permanent error): the trial was not made. Returns the number of permits now out.
RELEASE = """
if redis.call('HGET', KEYS[1], 'state') == 'half_open' then
  local given = tonumber(redis.call('HGET', KEYS[1], 'trials') or '0')
  if given > 0 then
    return redis.call('HINCRBY', KEYS[1], 'trials', -1)
  end
end
return 0
"""

# KEYS[1] the breaker's hash, KEYS[2] its window; ARGV[1] 'closed' or 'open', ARGV[2] open_s in ms,
# ARGV[3] the reason kept while it is open. An operator's reset (closed) or trip (open). Returns the state before.
FORCE = _COMMON + """
local now = now_ms()
local before = redis.call('HGET', KEYS[1], 'state') or 'closed'
if ARGV[1] == 'open' then
  to_open(KEYS[1], KEYS[2], now, tonumber(ARGV[2]), ARGV[3])
else
  to_closed(KEYS[1], KEYS[2], now)
end
return before
"""

# KEYS[1] the breaker's hash, KEYS[2] its window; ARGV[1] window_s. Read only.
# Returns {now ms, the hash as a flat list, calls, failures in the window}.
SNAPSHOT = _COMMON + """
local now = now_ms()
local calls, failures = count_window(KEYS[2], math.floor(now / 1000), tonumber(ARGV[1]), false)
return {now, redis.call('HGETALL', KEYS[1]), calls, failures}
"""
