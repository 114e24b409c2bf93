-- Single-server store: a whole batch in one call, atomic. Per post one MGET of the exact and
-- band keys; each key of the batch is written once (SET EX when absent, else EXPIRE: an
-- existing key keeps its cluster) and each cluster's three keys get one EXPIRE each per batch.
-- ARGV: prefix window n min_authors verify nms milestone_1..milestone_nms, then per post:
-- post_id author ts exact nbands sig exact_key band_key_0..band_key_{nbands-1}
-- (key names are built by the caller: no string work here)
local prefix, window, n = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local min_authors, verify, nms = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local ms, sigcache = {}, {}
for k = 1, nms do ms[k] = tonumber(ARGV[6 + k]) end
-- @include cluster_update.lua
-- equal 16-bit entries of two signatures
local function agree(a, b)
  local eq = 0
  for k = 1, #a - 1, 2 do
    local x1, x2 = string.byte(a, k, k + 1)
    local y1, y2 = string.byte(b, k, k + 1)
    if x1 == y1 and x2 == y2 then eq = eq + 1 end
  end
  return eq
end
local out, touched, seen, ckeys, i = {}, {}, {}, {}, 7 + nms
for p = 1, n do
  local pid, author, ts, exact = ARGV[i], ARGV[i+1], tonumber(ARGV[i+2]), ARGV[i+3]
  local nb, sig = tonumber(ARGV[i+4]), ARGV[i+5]
  local k0 = i + 6
  i = k0 + 1 + nb
  local vals = redis.call('MGET', unpack(ARGV, k0, k0 + nb))
  local cluster = vals[1]
  if not cluster then
    for b = 2, nb + 1 do
      local cand = vals[b]
      if cand then
        local ok = verify == 0
        if not ok then
          local csig = sigcache[cand]
          if csig == nil then
            csig = redis.call('HGET', prefix .. 'c:' .. cand, 'sig')
            sigcache[cand] = csig
          end
          ok = (not csig) or #csig ~= #sig or agree(sig, csig) >= verify
        end
        if ok then cluster = cand break end
      end
    end
  end
  if not cluster then cluster = exact end
  local ckey = prefix .. 'c:' .. cluster
  local row = update(ckey, cluster, pid, author, ts, sig)
  table.insert(row, 1, cluster)
  out[p] = row
  if not seen[ckey] then seen[ckey] = true ckeys[#ckeys + 1] = ckey end
  for k = 1, nb + 1 do
    local key = ARGV[k0 + k - 1]
    if not touched[key] then
      touched[key] = true
      if vals[k] then redis.call('EXPIRE', key, window)
      else redis.call('SET', key, cluster, 'EX', window) end
    end
  end
end
for _, ckey in ipairs(ckeys) do
  redis.call('EXPIRE', ckey, window)
  redis.call('EXPIRE', ckey .. ':m', window)
  redis.call('EXPIRE', ckey .. ':a', window)
end
return out
