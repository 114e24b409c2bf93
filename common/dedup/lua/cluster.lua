-- Redis Cluster, phase 2: the posts of one batch that chose this cluster, in batch order, on
-- the cluster's three keys (one hash slot through the {cluster} tag).
-- KEYS: tw:c:{cluster} tw:c:{cluster}:m tw:c:{cluster}:a
-- ARGV: window n min_authors nms milestone_1..milestone_nms, then per post:
-- post_id author ts sig
local window, n = tonumber(ARGV[1]), tonumber(ARGV[2])
local min_authors, nms = tonumber(ARGV[3]), tonumber(ARGV[4])
local ms, sigcache = {}, {}
for k = 1, nms do ms[k] = tonumber(ARGV[4 + k]) end
-- @include cluster_update.lua
local out, i = {}, 5 + nms
for p = 1, n do
  out[p] = update(KEYS[1], '', ARGV[i], ARGV[i+1], tonumber(ARGV[i+2]), ARGV[i+3])
  i = i + 4
end
for k = 1, 3 do redis.call('EXPIRE', KEYS[k], window) end
return out
