-- Single-server store: a whole batch in one call, atomic (docs/DEDUP.md, "Layout").
--
-- The exact and band keys of every post live as fields of one hash per time bucket (epoch),
-- tw:i:<epoch>, instead of one string key + EXPIRE each: field = 8-byte key id (the exact hash
-- itself for the exact key, a hash of band number and value for a band key), value = the 8-byte
-- id of the cluster it names. The epoch hash expires as a whole (EXPIREAT), window seconds after
-- the end of its epoch, so an entry lives between window and window + epoch seconds after its
-- last write; every field a post touches is written again into the current epoch. Lookups read
-- the live epochs newest first.
--
-- No cluster structures for singletons: a post that starts a cluster stores its own record in
-- the value of its exact field (cluster id .. msgpack{ts, author, signature, post id}). The
-- cluster's hash, members set and author HyperLogLog (tw:c:<id>, :m, :a, shared with
-- cluster_update.lua) are created when a second post joins; from then on the cluster's exact
-- field holds the 8-byte id alone, refreshed with the cluster, so a missing field means no
-- live cluster.
--
-- ARGV: prefix window epoch n min_authors verify nms milestone_1..milestone_nms, then per post:
-- post_id author ts sig nfields field_1..field_nfields (field_1: the exact hash, big-endian).
-- Returns per post {cluster (8 bytes), count, authors, first, last, replay, claimed, samples}.
local prefix, window, epoch, n = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local min_authors, verify, nms = tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7])
local ms, sigcache = {}, {}
for k = 1, nms do ms[k] = tonumber(ARGV[7 + k]) end
-- @include cluster_update.lua
-- equal entries of the post's signature a (one byte per entry) and a stored one b: the same
-- form, or the 16-bit little-endian entries of records written before it (compared on their low
-- bytes); nil when b has another length (it cannot be checked)
local function agree(a, b)
  local n, stride = #a, nil
  if #b == n then stride = 1 elseif #b == 2 * n then stride = 2 else return nil end
  local x, y, eq = {string.byte(a, 1, n)}, {string.byte(b, 1, #b)}, 0
  for k = 1, n do
    if x[k] == y[(k - 1) * stride + 1] then eq = eq + 1 end
  end
  return eq
end

-- Lua's unpack() is bounded by the C stack: long argument lists go in chunks
local CHUNK = 3000 -- (HSET: field-value pairs; HMGET: fields)

local now = tonumber(redis.call('TIME')[1])
local cur = math.floor(now / epoch)
local epochs, e = {}, cur
while (e + 1) * epoch + window > now do
  epochs[#epochs + 1] = prefix .. 'i:' .. e
  e = e - 1
end

-- Every field of the batch in batch order (a field of two posts is asked twice: cheaper than
-- a set of them), in chunks that end at a post's end. The decision loop below walks the fields
-- in this same order, so a field's values are read by position, vals[e][chunk][j]: no table
-- keyed by field is built for the ~94 % of fields that are nowhere. Each live epoch gets one
-- HMGET per chunk (a hit is rare, so asking an older epoch for a field the newer one had costs
-- little); the newest value wins. exact_at: a post's exact field -> its chunk and position, for
-- record() of a cluster id.
local chunks, exact_at, i = {{}}, {}, 8 + nms
for p = 1, n do
  local nf = tonumber(ARGV[i + 4])
  local want = chunks[#chunks]
  if #want + nf > CHUNK then want = {} chunks[#chunks + 1] = want end
  exact_at[ARGV[i + 5]] = {#chunks, #want + 1}
  for k = i + 5, i + 4 + nf do want[#want + 1] = ARGV[k] end
  i = i + 5 + nf
end
local vals = {}
for e, key in ipairs(epochs) do
  local per = {}
  for c, want in ipairs(chunks) do
    per[c] = #want > 0 and redis.call('HMGET', key, unpack(want)) or {}
  end
  vals[e] = per
end
local nepochs = #epochs

-- batch: field -> value put by this batch (in the current epoch with its final value, and
-- what later posts of the batch see); other: cluster id -> value fetched by record()
local batch, other = {}, {}
-- field f at position j of chunk c: its value and whether it is in the current epoch already
-- ("fresh": no write needed)
local function at(f, c, j)
  local v = batch[f]
  if v ~= nil then return v, true end
  v = vals[1][c][j]
  if v then return v, true end
  for e = 2, nepochs do
    v = vals[e][c][j]
    if v then return v, false end
  end
  return nil, false
end

-- the singleton record (or the 8-byte marker of a cluster with a hash) of cluster id c
local function record(c)
  local v = batch[c]
  if v == nil then
    local cj = exact_at[c]
    if cj then
      v = at(c, cj[1], cj[2])
    else
      v = other[c]
      if v == nil then
        for _, key in ipairs(epochs) do
          v = redis.call('HGET', key, c)
          if v then break end
        end
        other[c] = v or false
      end
      v = v or nil
    end
  end
  -- the exact field of a post that joined another cluster names that cluster: not a record
  if v and string.sub(v, 1, 8) ~= c then return nil end
  return v
end
local function single(v)
  if not v or #v <= 8 then return nil end
  local ts, author, sig, pid = cmsgpack.unpack(string.sub(v, 9))
  return {ts = ts, author = author, sig = sig, pid = pid}
end
local function signature(c)
  local s = sigcache[c]
  if s ~= nil then return s end
  local v = record(c)
  local one = single(v)
  if one then s = one.sig ~= '' and one.sig or false
  elseif v then s = redis.call('HGET', prefix .. 'c:' .. c, 'sig') or false
  else s = false end
  sigcache[c] = s
  return s
end

-- the HSET of the current epoch, in order: a field put twice takes its later value
local writes, nwrites, ckeys, seen = {}, 0, {}, {}
local function put(f, v)
  writes[nwrites + 1] = f writes[nwrites + 2] = v nwrites = nwrites + 2
  batch[f] = v
end
-- milestone 1 is claimed by a cluster's first post: those need the cluster hash at once
local eager = nms > 0 and ms[1] <= 1

local out, chunk, j0 = {}, 1, 0
i = 8 + nms
for p = 1, n do
  local pid, author, ts, sig = ARGV[i], ARGV[i + 1], tonumber(ARGV[i + 2]), ARGV[i + 3]
  local nf = tonumber(ARGV[i + 4])
  local f0 = i + 5
  i = f0 + nf
  -- the post's fields are chunks[chunk][j0 + 1 .. j0 + nf] (the chunks were cut as here)
  if j0 + nf > #chunks[chunk] then chunk, j0 = chunk + 1, 0 end
  local exact = ARGV[f0]
  local ev = at(exact, chunk, j0 + 1)
  local cluster = ev and string.sub(ev, 1, 8)
  if not cluster then
    for k = 1, nf - 1 do
      local v = at(ARGV[f0 + k], chunk, j0 + 1 + k)
      if v then
        local cand = string.sub(v, 1, 8)
        local ok = verify == 0
        if not ok then
          local csig = signature(cand)
          local eq = csig and agree(sig, csig)
          ok = (not eq) or eq >= verify
        end
        if ok then cluster = cand break end
      end
    end
  end
  if not cluster then cluster = exact end
  local v = record(cluster)
  local one = single(v)
  local row, has_hash = nil, false
  if one and one.pid == pid then
    -- replay of a singleton's post
    row = {cluster, 1, one.author ~= '' and 1 or 0, one.ts, one.ts, 1, 0, {}}
  elseif (v and not one) or one or eager then
    -- a cluster with a hash; or the second post (with milestone 1, the first), which creates it
    local ckey = prefix .. 'c:' .. cluster
    if one then update(ckey, cluster, one.pid, one.author, one.ts, one.sig) end
    row = update(ckey, cluster, pid, author, ts, sig)
    table.insert(row, 1, cluster)
    has_hash = true
    if not seen[ckey] then seen[ckey] = cluster ckeys[#ckeys + 1] = ckey end
  else
    -- a new singleton: its record is its exact field's value
    put(cluster, cluster .. cmsgpack.pack(ts, author, sig, pid))
    sigcache[cluster] = sig ~= '' and sig or false
    row = {cluster, 1, author ~= '' and 1 or 0, ts, ts, 0, 0, {}}
  end
  -- the exact field of a cluster with a hash is its 8-byte id alone, refreshed with the hash,
  -- so a missing field means no live cluster
  if has_hash then
    local cv, cfresh = nil, false
    local cj = exact_at[cluster]
    if cj then cv, cfresh = at(cluster, cj[1], cj[2])
    else cv = batch[cluster] cfresh = cv ~= nil end
    if not (cfresh and #cv == 8) then put(cluster, cluster) end
  end
  out[p] = row
  -- every field of the post into the current epoch: an existing one keeps its cluster
  for k = 0, nf - 1 do
    local f = ARGV[f0 + k]
    local fv, ffresh = at(f, chunk, j0 + 1 + k)
    if not ffresh then
      writes[nwrites + 1] = f writes[nwrites + 2] = fv or cluster nwrites = nwrites + 2
      batch[f] = fv or cluster
    end
  end
  j0 = j0 + nf
end

local cur_key = epochs[1]
for s = 1, nwrites, CHUNK do
  redis.call('HSET', cur_key, unpack(writes, s, math.min(s + CHUNK - 1, nwrites)))
end
redis.call('EXPIREAT', cur_key, (cur + 1) * epoch + window)
for _, ckey in ipairs(ckeys) do
  redis.call('EXPIRE', ckey, window)
  redis.call('EXPIRE', ckey .. ':m', window)
  redis.call('EXPIRE', ckey .. ':a', window)
end
return out
