-- Upsert rows of one feature view, never over a row whose order is newer or equal.
-- KEYS[1]: the view's set of stored keys; KEYS[2..]: one hash per row.
-- ARGV: ttl seconds (0: none), n features, n feature names, then per row
--       _e _c _f _r and n values ("" + NUL byte marks a null).
-- Returns the number of rows written.
local ttl = tonumber(ARGV[1])
local n = tonumber(ARGV[2])
local width = 4 + n
local base = 3 + n
local NULL = "\0"

-- byte-wise, like SQLite's BINARY collation (Lua's own '<' follows the locale)
local function cmp(a, b)
    if a == b then return 0 end
    local m = math.min(#a, #b)
    for i = 1, m do
        local x, y = string.byte(a, i), string.byte(b, i)
        if x ~= y then return (x < y) and -1 or 1 end
    end
    return (#a < #b) and -1 or 1
end

local function newer(e, c, f, r, cur)
    if not cur[1] then return true end
    local ce, cc = tonumber(cur[1]), tonumber(cur[2])
    if e ~= ce then return e > ce end
    if c ~= cc then return c > cc end
    local d = cmp(f, cur[3])
    if d ~= 0 then return d > 0 end
    return r > tonumber(cur[4])
end

local changed = 0
for k = 2, #KEYS do
    local o = base + (k - 2) * width
    local e, c, f, r = ARGV[o], ARGV[o + 1], ARGV[o + 2], ARGV[o + 3]
    local key = KEYS[k]
    local cur = redis.call('HMGET', key, '_e', '_c', '_f', '_r')
    if newer(tonumber(e), tonumber(c), f, tonumber(r), cur) then
        local fields = {'_e', e, '_c', c, '_f', f, '_r', r}
        for i = 1, n do
            local v = ARGV[o + 3 + i]
            if v ~= NULL then
                fields[#fields + 1] = ARGV[2 + i]
                fields[#fields + 1] = v
            end
        end
        redis.call('DEL', key)
        redis.call('HSET', key, unpack(fields))
        if ttl > 0 then redis.call('EXPIRE', key, ttl) end
        redis.call('SADD', KEYS[1], key)
        changed = changed + 1
    end
end
return changed
