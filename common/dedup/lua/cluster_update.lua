-- Steps 2, 3 and 5 of dedup.h for one post joining the cluster whose hash is ckey (members
-- ckey:m, authors ckey:a). One HMGET reads everything the post needs (count, first/last, the
-- cached author count, the signature, the five sample ids, the milestone holders) and one HSET
-- writes what changed, so a new post costs SADD, HMGET, PFADD, HSET (+ PFCOUNT only when PFADD
-- changed the HyperLogLog). Included by batch.lua and cluster.lua (cmake/embed_lua.cmake), which
-- define window, min_authors, nms, ms and sigcache (cluster -> signature or false) before it.
-- update() returns {count, authors, first, last, replay, claimed, samples}.
local fields = {'count', 'first', 'last', 'na', 'sig', 's1', 's2', 's3', 's4', 's5'}
for k = 1, nms do fields[10 + k] = 'm:' .. ms[k] end
local function update(ckey, cluster, pid, author, ts, sig)
  local added = redis.call('SADD', ckey .. ':m', pid)
  local h = redis.call('HMGET', ckey, unpack(fields))
  local count, first, last = tonumber(h[1]) or 0, tonumber(h[2]), tonumber(h[3])
  local na = tonumber(h[4])
  local set = {}
  if h[5] then sigcache[cluster] = h[5]
  elseif sig ~= '' then
    set[#set + 1] = 'sig' set[#set + 1] = sig sigcache[cluster] = sig
  end
  if added == 1 then
    count = count + 1
    set[#set + 1] = 'count' set[#set + 1] = count
    if count <= 5 then
      set[#set + 1] = 's' .. count set[#set + 1] = pid h[5 + count] = pid
    end
    -- PFADD answers 1 when the estimate may have changed: only then is it counted again
    if author ~= '' and redis.call('PFADD', ckey .. ':a', author) == 1 then na = nil end
    if count == 1 or first == nil or ts < first then
      first = ts set[#set + 1] = 'first' set[#set + 1] = ts
    end
    if count == 1 or last == nil or ts > last then
      last = ts set[#set + 1] = 'last' set[#set + 1] = ts
    end
  end
  if na == nil then
    na = redis.call('PFCOUNT', ckey .. ':a')
    set[#set + 1] = 'na' set[#set + 1] = na
  end
  -- milestone k is claimed once, atomically (this script), by the post id stored in
  -- m:<k>; a replay of that post finds its own id there and claims it again
  local claimed, bit = 0, 1
  for k = 1, nms do
    if count < ms[k] then break end
    local holder = h[10 + k]
    if added == 1 then
      if na >= min_authors and not holder then
        set[#set + 1] = fields[10 + k] set[#set + 1] = pid claimed = claimed + bit
      end
    elseif holder == pid then claimed = claimed + bit end
    bit = bit * 2
  end
  if #set > 0 then redis.call('HSET', ckey, unpack(set)) end
  local samples = {}
  if claimed > 0 then
    for j = 1, 5 do
      if not h[5 + j] then break end
      samples[j] = h[5 + j]
    end
  end
  return {count, na, first or 0, last or 0, 1 - added, claimed, samples}
end
