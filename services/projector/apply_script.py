"""The apply script: one partition batch's writes and its offset move, atomically, in Redis.

KEYS: the partition's offset, progress and stream (`PartitionSpace.offset`, `.progress`,
`.stream`), then every key the plan touches. ARGV: the offset the batch starts from ('' when
nothing is applied), the offset it moves to, the log's high watermark, the time (ms), the
stream's approximate maximum length, then the plan's operations (one JSON array) and its
blobs (see `plan`).

The script first checks that the partition's stored offset still equals what the batch
starts from: a zombie whose partition was reassigned is fenced, having written nothing.

Redis does not roll back a script that fails half-way, so the script cannot be allowed to
fail once it has written:
- it declares itself with a shebang (`#!lua`, no `allow-oom`): Redis refuses it whole, before
  it runs, when it is out of memory, instead of failing its first write;
- it checks the whole plan (that it decodes to an array of strings and numbers, operation
  names, argument counts, key and blob indices) before its first write, and answers an
  error, having written nothing, if the plan is malformed;
- the planner emits only operations that cannot fail on keys of the right type that only
  the projector writes (no empty variadic command, counters only ever written by HINCRBY);
- stream ids must grow: an XADD whose id is not above the stream's last one (possible only
  if someone removed the offset key by hand) is skipped and counted, never an error.

Field names and the stream's entry ids are `chancery.keyspace`'s, put into the text below.
Its answer: `{1, new offset, stream entries skipped}`, or `{0, the stored offset ('' when
none)}` when fenced.
"""

from __future__ import annotations

from string import Template

from chancery.keyspace import PLACE_FIELD_FORMAT, STREAM_FIELD, STREAM_ID_SUFFIX, ProgressField

_TEMPLATE = Template(
    """#!lua
local stored = redis.call('GET', KEYS[1])
if (stored or '') ~= ARGV[1] then
  return {0, stored or '', 0}
end
local ops = cjson.decode(ARGV[6])
if type(ops) ~= 'table' then return redis.error_reply('plan: not an array') end
local n = #ops
local nkeys = #KEYS
local nblobs = #ARGV - 6
for j = 1, n do
  local t = type(ops[j])
  if t ~= 'string' and t ~= 'number' then return redis.error_reply('plan: bad argument') end
end
local function key_index(v)
  local k = tonumber(v)
  return k ~= nil and k >= 4 and k <= nkeys and k % 1 == 0
end
local function blob(v)
  if type(v) == 'number' then return ARGV[6 + v] end
  return v
end
local function blob_index(v)
  return type(v) ~= 'number' or (v >= 1 and v <= nblobs and v % 1 == 0)
end
local arity = {I = 4, T = 3, K = 2}
local variadic = {H = 'HSET', D = 'HDEL', R = 'ZREM', S = 'SADD', Z = 'ZADD'}
local i = 1
while i <= n do
  local op = ops[i]
  if op == 'X' then
    if not key_index(ops[i + 1]) then return redis.error_reply('plan: bad key index') end
    local count = tonumber(ops[i + 2])
    if count == nil or count < 1 or count > nblobs then
      return redis.error_reply('plan: bad stream entries')
    end
    for j = i + 3, i + 2 + count do
      if not tonumber(ops[j]) then return redis.error_reply('plan: bad stream offset') end
    end
    i = i + 3 + count
  elseif op == 'M' then
    local nk = tonumber(ops[i + 1])
    if nk == nil or nk < 1 then return redis.error_reply('plan: bad key count') end
    for j = i + 2, i + 1 + nk do
      if not key_index(ops[j]) then return redis.error_reply('plan: bad key index') end
    end
    local count = tonumber(ops[i + 2 + nk])
    if count == nil or count < 1 or count > 1000 then
      return redis.error_reply('plan: bad member count')
    end
    i = i + 3 + nk + count
  else
    if not key_index(ops[i + 1]) then return redis.error_reply('plan: bad key index') end
    if op == 'T' then
      if type(ops[i + 2]) ~= 'number' or not blob_index(ops[i + 2]) then
        return redis.error_reply('plan: bad value')
      end
    end
    if arity[op] then
      i = i + arity[op]
    elseif variadic[op] then
      local count = tonumber(ops[i + 2])
      local paired = op == 'Z' or op == 'H'
      if count == nil or count < 1 or count > 1000 or (paired and count % 2 == 1) then
        return redis.error_reply('plan: bad member count')
      end
      if op == 'H' then
        for j = i + 4, i + 2 + count, 2 do
          if not blob_index(ops[j]) then return redis.error_reply('plan: bad value') end
        end
      end
      i = i + 3 + count
    else
      return redis.error_reply('plan: unknown operation')
    end
  end
end
if i ~= n + 1 then return redis.error_reply('plan: truncated') end

local top = -1
local last = redis.call('XREVRANGE', KEYS[3], '+', '-', 'COUNT', 1)
if last[1] ~= nil then top = tonumber(string.match(last[1][1], '^%d+')) end
local added = false
local skipped = 0
local gathered = {}
local gathered_n = {}
local gathered_keys = {}
i = 1
while i <= n do
  local op = ops[i]
  if op == 'X' then
    local key = KEYS[tonumber(ops[i + 1])]
    local first = i + 3
    local final = i + 2 + tonumber(ops[i + 2])
    local stored = {}
    for j = first, final do
      local offset = tonumber(ops[j])
      local place = string.format('${place_field_format}', offset)  -- keyspace.place_field
      if offset > top then
        redis.call('XADD', KEYS[3], place .. '${stream_id_suffix}', '${stream_field}', '')
        top = offset
        added = true
      else
        skipped = skipped + 1
      end
      stored[#stored + 1] = place
      stored[#stored + 1] = ARGV[7 + j - first]
      if #stored >= 1000 then
        redis.call('HSET', key, unpack(stored))
        stored = {}
      end
    end
    if #stored > 0 then redis.call('HSET', key, unpack(stored)) end
    i = final + 1
  elseif op == 'M' then
    local nk = tonumber(ops[i + 1])
    local first = i + 3 + nk
    local final = first - 1 + tonumber(ops[first - 1])
    for j = i + 2, i + 1 + nk do
      local k = tonumber(ops[j])
      local members = gathered[k]
      local at = gathered_n[k]
      if members == nil then
        members = {}
        at = 0
        gathered[k] = members
        gathered_keys[#gathered_keys + 1] = k
      end
      for m = first, final do
        -- the score as a string: redis.call formats a Lua number (%.17g) every time it passes one
        members[at + 1] = '0'
        members[at + 2] = ops[m]
        at = at + 2
      end
      gathered_n[k] = at
    end
    i = final + 1
  elseif op == 'I' then
    local key = KEYS[tonumber(ops[i + 1])]
    if redis.call('HINCRBY', key, ops[i + 2], ops[i + 3]) == 0 then
      redis.call('HDEL', key, ops[i + 2])
    end
    i = i + 4
  elseif op == 'T' then
    redis.call('SET', KEYS[tonumber(ops[i + 1])], blob(ops[i + 2]))
    i = i + 3
  elseif op == 'K' then
    redis.call('DEL', KEYS[tonumber(ops[i + 1])])
    i = i + 2
  elseif op == 'H' then
    local final = i + 2 + tonumber(ops[i + 2])
    local pairs = {}
    for j = i + 3, final, 2 do
      pairs[#pairs + 1] = ops[j]
      pairs[#pairs + 1] = blob(ops[j + 1])
    end
    redis.call('HSET', KEYS[tonumber(ops[i + 1])], unpack(pairs))
    i = final + 1
  else
    local final = i + 2 + tonumber(ops[i + 2])
    redis.call(variadic[op], KEYS[tonumber(ops[i + 1])], unpack(ops, i + 3, final))
    i = final + 1
  end
end
for _, k in ipairs(gathered_keys) do
  local members = gathered[k]
  local count = gathered_n[k]
  for s = 1, count, 1000 do
    redis.call('ZADD', KEYS[k], unpack(members, s, math.min(s + 999, count)))
  end
end
if added then
  redis.call('XTRIM', KEYS[3], 'MAXLEN', '~', ARGV[5])
end
redis.call('SET', KEYS[1], ARGV[2])
redis.call('HSET', KEYS[2],
  '${applied}', ARGV[2], '${high_watermark}', ARGV[3], '${updated_ms}', ARGV[4])
if tonumber(ARGV[2]) + 1 >= tonumber(ARGV[3]) then
  redis.call('HSET', KEYS[2], '${caught_up}', '1')
end
return {1, ARGV[2], skipped}
"""
)

APPLY_SCRIPT = _TEMPLATE.substitute(
    stream_id_suffix=STREAM_ID_SUFFIX,
    stream_field=STREAM_FIELD.decode(),
    place_field_format=PLACE_FIELD_FORMAT,
    applied=ProgressField.APPLIED,
    high_watermark=ProgressField.HIGH_WATERMARK,
    updated_ms=ProgressField.UPDATED_MS,
    caught_up=ProgressField.CAUGHT_UP,
)
