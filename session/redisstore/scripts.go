package redisstore

import "github.com/redis/go-redis/v9"

// The Lua scripts: the user-record writes and the counters, each run
// atomically by Redis (all keys of one user share a hash tag, so the
// user-record scripts are legal in a Cluster).
var (
	// KEYS: record, index. ARGV: value, ttl ms, index member.
	putUserScript = redis.NewScript(`
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
redis.call('SADD', KEYS[2], ARGV[3])
local ttl = tonumber(ARGV[2])
if redis.call('PTTL', KEYS[2]) < ttl then redis.call('PEXPIRE', KEYS[2], ttl) end
return 1
`)
	// Like putUserScript, but only when the record exists.
	updateUserScript = redis.NewScript(`
if not redis.call('SET', KEYS[1], ARGV[1], 'XX', 'PX', ARGV[2]) then return 0 end
redis.call('SADD', KEYS[2], ARGV[3])
local ttl = tonumber(ARGV[2])
if redis.call('PTTL', KEYS[2]) < ttl then redis.call('PEXPIRE', KEYS[2], ttl) end
return 1
`)
	// KEYS: index, then the records of ARGV's members. Removes a member
	// only while its record does not exist, so a record written meanwhile
	// keeps its index entry.
	pruneScript = redis.NewScript(`
local n = 0
for i, m in ipairs(ARGV) do
  if redis.call('EXISTS', KEYS[i + 1]) == 0 then n = n + redis.call('SREM', KEYS[1], m) end
end
return n
`)
	// KEYS: counter. ARGV: window ms. A counter without a TTL (which only
	// a foreign writer could make) gets one too.
	incrScript = redis.NewScript(`
local n = redis.call('INCR', KEYS[1])
if n == 1 or redis.call('PTTL', KEYS[1]) < 0 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return n
`)

	// decrScript takes one from a live counter, never below zero, without
	// touching its TTL; a missing counter stays missing.
	decrScript = redis.NewScript(`
local v = redis.call('GET', KEYS[1])
if not v then return 0 end
local n = tonumber(v)
if not n then return redis.error_reply('not a counter') end
if n <= 0 then return 0 end
return redis.call('DECR', KEYS[1])
`)
)
