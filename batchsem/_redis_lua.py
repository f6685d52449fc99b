"""The Lua scripts behind :class:`batchsem.redis.RedisSemaphore` (all state changes happen here).

Every script starts with :data:`PRELUDE`, which reads the server clock
(``TIME``), reaps expired leases and releases withheld permits whose
quarantine is over, so that expiry is processed server-side, atomically, by
whichever process touches the semaphore next. Scripts never trust a client
clock and never let a client read-modify-write.

Keys (``P`` is ``<prefix>:{<name>}``, the hash tag keeps them in one slot):

* ``P:m``      hash: ``cap`` (the configured total), ``free``, ``closed`` (0/1),
  ``seq`` (the global request/grant sequence; it stays far below 10^14, so Lua's
  ``%.14g`` number-to-string conversion keeps it exact), ``debt`` (permits still to
  forget: a shrink by ``resize`` that the free counter could not cover),
  ``withheld`` and ``admit`` (permits held back until the server time
  ``admit``, see ``open``).
* ``P:q``      sorted set: queued waiter id -> request sequence (FIFO order).
* ``P:need``, ``P:asg``, ``P:own``: hashes waiter id -> permits requested,
  permits handed to it so far, owner (the process-side instance).
* ``P:held``   hash owner -> permits held (granted, not yet released).
* ``P:lease``  sorted set owner -> lease deadline (server ms).
* ``P:lost``   sorted set owner -> when its lease was found expired (kept one day).
* ``P:w:<owner>`` set of the owner's queued waiter ids.
* ``P:g:<owner>`` hash waiter id -> permits: grants made while queued that the
  owner has not yet confirmed (so a cancel racing a grant can give them back);
  ``P:gs:<owner>`` the same ids -> their grant sequence numbers.
* ``P:i:<owner>`` list: the owner's inbox, ``"g <wid> <grant seq>"`` (granted)
  or ``"c <wid>"`` (failed: closed). Its process pops it with BLPOP.

Invariants (checked by the tests through ``stats``):

* ``cap + debt == free + withheld + sum(asg) + sum(held)``: permits are
  conserved; they only change hands.
* queue non-empty => ``free == 0`` (no barging), and only the head has
  ``asg > 0`` (partial hand-off goes to the head only).
"""

from __future__ import annotations

from typing import Final

# Lua detail: ``-x`` of a zero is ``-0``, which Redis rejects as an integer argument
# ("value is not an integer"); the scripts write ``0 - x`` instead.
PRELUDE: Final = r"""
local P = KEYS[1]
local M, Q = P .. ':m', P .. ':q'
local NEED, ASG, OWN = P .. ':need', P .. ':asg', P .. ':own'
local HELD, LEASE, LOST = P .. ':held', P .. ':lease', P .. ':lost'
local function W(o) return P .. ':w:' .. o end
local function G(o) return P .. ':g:' .. o end
local function GS(o) return P .. ':gs:' .. o end
local function INBOX(o) return P .. ':i:' .. o end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local function num(v) return tonumber(v) or 0 end
local function mget(f) return num(redis.call('HGET', M, f)) end

-- A waiter is fully served: its permits become its owner's, its process is told.
local function serve(wid, need)
  local owner = redis.call('HGET', OWN, wid)
  redis.call('ZREM', Q, wid)
  redis.call('HDEL', NEED, wid)
  redis.call('HDEL', ASG, wid)
  redis.call('HDEL', OWN, wid)
  redis.call('SREM', W(owner), wid)
  redis.call('HINCRBY', HELD, owner, need)
  redis.call('HSET', G(owner), wid, need)
  local gseq = redis.call('HINCRBY', M, 'seq', 1)
  redis.call('HSET', GS(owner), wid, gseq)
  redis.call('RPUSH', INBOX(owner), 'g ' .. wid .. ' ' .. gseq)
end

-- Tokio's assign_permits: head first, a partial grant to a head that needs more,
-- the remainder to the free counter only once the queue is empty.
local function assign(rem)
  while rem > 0 do
    local head = redis.call('ZRANGE', Q, 0, 0)[1]
    if not head then break end
    local need = num(redis.call('HGET', NEED, head))
    local asg = num(redis.call('HGET', ASG, head))
    if rem < need - asg then
      redis.call('HSET', ASG, head, asg + rem)
      rem = 0
    else
      rem = rem - (need - asg)
      serve(head, need)
    end
  end
  if rem > 0 then redis.call('HINCRBY', M, 'free', rem) end
end

-- Permits coming back: first pay any debt left by a shrinking resize.
local function put(n)
  local debt = mget('debt')
  if debt > 0 and n > 0 then
    local pay = math.min(debt, n)
    redis.call('HSET', M, 'debt', debt - pay)
    n = n - pay
  end
  if n > 0 then assign(n) end
end

local function drop_waiter(wid, owner)
  redis.call('ZREM', Q, wid)
  redis.call('HDEL', NEED, wid)
  redis.call('HDEL', ASG, wid)
  redis.call('HDEL', OWN, wid)
  redis.call('SREM', W(owner), wid)
end

-- Everything an owner had, held or queued (partial grants included); returns the permits.
local function evict(owner)
  local freed = num(redis.call('HGET', HELD, owner))
  redis.call('HDEL', HELD, owner)
  for _, wid in ipairs(redis.call('SMEMBERS', W(owner))) do
    freed = freed + num(redis.call('HGET', ASG, wid))
    drop_waiter(wid, owner)
  end
  redis.call('DEL', W(owner), G(owner), GS(owner), INBOX(owner))
  redis.call('ZREM', LEASE, owner)
  return freed
end

local exists = redis.call('EXISTS', M) == 1
if exists then
  local dead = redis.call('ZRANGEBYSCORE', LEASE, '-inf', now)
  if #dead > 0 then
    local freed = 0
    for _, o in ipairs(dead) do
      freed = freed + evict(o)
      redis.call('ZADD', LOST, now, o)
    end
    redis.call('ZREMRANGEBYSCORE', LOST, '-inf', now - 86400000)
    put(freed)
  end
  local withheld = mget('withheld')
  if withheld > 0 and now >= mget('admit') then
    redis.call('HSET', M, 'withheld', 0)
    put(withheld)
  end
end

-- The caller's lease: nil if fine, else the error reply.
local function check_owner(owner)
  if not exists then return {'NOSEM'} end
  if not redis.call('ZSCORE', LEASE, owner) then return {'LOST'} end
  return nil
end
"""

#: ARGV: owner, permits, lease_ms, server uptime (s), resize (0/1).
#: Creates the semaphore if missing and registers the owner's lease. A
#: semaphore created less than one lease after the server started withholds
#: its permits until a lease has passed since then: the server may have
#: restarted and lost the state while holders of the old state still run.
OPEN: Final = PRELUDE + r"""
local owner, permits, lease = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local uptime_ms, resize = tonumber(ARGV[4]) * 1000, ARGV[5] == '1'
if not exists then
  local admit = now - uptime_ms + lease
  if admit > now then
    redis.call('HSET', M, 'cap', permits, 'free', 0, 'withheld', permits, 'admit', admit,
               'closed', 0, 'seq', 0, 'debt', 0)
  else
    redis.call('HSET', M, 'cap', permits, 'free', permits, 'withheld', 0, 'admit', 0,
               'closed', 0, 'seq', 0, 'debt', 0)
  end
else
  local cap = mget('cap')
  if cap ~= permits then
    if not resize then return {'MISMATCH', cap} end
    local delta = permits - cap
    redis.call('HSET', M, 'cap', permits)
    if delta > 0 then
      put(delta)
    else
      local free = mget('free')
      local take = math.min(free, -delta)
      redis.call('HSET', M, 'free', free - take, 'debt', mget('debt') + (-delta - take))
    end
  end
end
redis.call('ZADD', LEASE, now + lease, owner)
return {'OK', mget('closed'), math.max(0, mget('withheld') > 0 and mget('admit') - now or 0)}
"""

#: ARGV: owner, wid, n. Replies OK <req seq> <grant seq> | WAIT <req seq> | CLOSED | errors.
ACQUIRE: Final = PRELUDE + r"""
local owner, wid, n = ARGV[1], ARGV[2], tonumber(ARGV[3])
local bad = check_owner(owner)
if bad then return bad end
if mget('closed') == 1 then return {'CLOSED'} end
local seq = redis.call('HINCRBY', M, 'seq', 1)
local queued = redis.call('ZCARD', Q) > 0
local free = mget('free')
if n == 0 or (not queued and free >= n) then
  redis.call('HSET', M, 'free', free - n)
  redis.call('HINCRBY', HELD, owner, n)
  return {'OK', seq, redis.call('HINCRBY', M, 'seq', 1)}
end
local asg = 0
if not queued then
  asg = free
  redis.call('HSET', M, 'free', 0)
end
redis.call('ZADD', Q, seq, wid)
redis.call('HSET', NEED, wid, n)
redis.call('HSET', ASG, wid, asg)
redis.call('HSET', OWN, wid, owner)
redis.call('SADD', W(owner), wid)
return {'WAIT', seq}
"""

#: ARGV: owner, n. Replies OK | NOPERMITS | CLOSED | errors. Never barges past the queue.
TRY_ACQUIRE: Final = PRELUDE + r"""
local owner, n = ARGV[1], tonumber(ARGV[2])
local bad = check_owner(owner)
if bad then return bad end
if mget('closed') == 1 then return {'CLOSED'} end
local free = mget('free')
if free < n or (n > 0 and redis.call('ZCARD', Q) > 0) then return {'NOPERMITS'} end
redis.call('HSET', M, 'free', free - n)
redis.call('HINCRBY', HELD, owner, n)
return {'OK'}
"""

#: ARGV: owner, wid. Withdraws a request: from the queue (its partial grant goes to
#: the next waiter), or, if it was served but not yet confirmed, gives the grant back.
#: Replies OK <permits given back> <'q' | 'g' | '-'> (where it was found).
CANCEL: Final = PRELUDE + r"""
local owner, wid = ARGV[1], ARGV[2]
local bad = check_owner(owner)
if bad then return bad end
if redis.call('ZSCORE', Q, wid) then
  local asg = num(redis.call('HGET', ASG, wid))
  drop_waiter(wid, owner)
  put(asg)
  return {'OK', asg, 'q'}
end
local granted = num(redis.call('HGET', G(owner), wid))
if granted > 0 then
  redis.call('HDEL', G(owner), wid)
  redis.call('HDEL', GS(owner), wid)
  redis.call('HINCRBY', HELD, owner, 0 - granted)
  put(granted)
  return {'OK', granted, 'g'}
end
return {'OK', 0, '-'}
"""

#: ARGV: owner, n, forget (0/1). Gives back (or, with forget, drops for good: the
#: capacity shrinks) n of the owner's held permits. Replies OK | OVER <held> | errors.
RELEASE: Final = PRELUDE + r"""
local owner, n, forget = ARGV[1], tonumber(ARGV[2]), ARGV[3] == '1'
local bad = check_owner(owner)
if bad then return bad end
local held = num(redis.call('HGET', HELD, owner))
if held < n then return {'OVER', held} end
redis.call('HINCRBY', HELD, owner, 0 - n)
if forget then
  redis.call('HINCRBY', M, 'cap', 0 - n)
else
  put(n)
end
return {'OK'}
"""

#: ARGV: owner, lease_ms, k, k confirmed wids, then pending wids. Extends the lease,
#: forgets confirmed grants, and reports each pending wid: "g <grant seq>" (granted),
#: q (queued), x (gone: failed by close). Replies OK <status>... | errors.
RENEW: Final = PRELUDE + r"""
local owner, lease, k = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local bad = check_owner(owner)
if bad then return bad end
redis.call('ZADD', LEASE, now + lease, owner)
for i = 4, 3 + k do
  redis.call('HDEL', G(owner), ARGV[i])
  redis.call('HDEL', GS(owner), ARGV[i])
end
local out = {'OK'}
for i = 4 + k, #ARGV do
  local wid = ARGV[i]
  if redis.call('HEXISTS', G(owner), wid) == 1 then
    out[#out + 1] = 'g ' .. redis.call('HGET', GS(owner), wid)
  elseif redis.call('ZSCORE', Q, wid) then
    out[#out + 1] = 'q'
  else
    out[#out + 1] = 'x'
  end
end
return out
"""

#: ARGV: owner, n. Adds n permits (the capacity grows). Replies OK | errors.
ADD: Final = PRELUDE + r"""
local bad = check_owner(ARGV[1])
if bad then return bad end
redis.call('HINCRBY', M, 'cap', tonumber(ARGV[2]))
put(tonumber(ARGV[2]))
return {'OK'}
"""

#: ARGV: owner, n. Removes up to n free permits (never from waiters). Replies OK <taken>.
FORGET: Final = PRELUDE + r"""
local bad = check_owner(ARGV[1])
if bad then return bad end
local free = mget('free')
local take = math.min(free, tonumber(ARGV[2]))
redis.call('HSET', M, 'free', free - take)
redis.call('HINCRBY', M, 'cap', 0 - take)
return {'OK', take}
"""

#: ARGV: owner. Closes: every queued waiter, in every process, fails; what they had
#: been handed goes to the free counter. Replies OK | errors.
CLOSE: Final = PRELUDE + r"""
local bad = check_owner(ARGV[1])
if bad then return bad end
if mget('closed') == 1 then return {'OK'} end
redis.call('HSET', M, 'closed', 1)
local back = 0
for _, wid in ipairs(redis.call('ZRANGE', Q, 0, -1)) do
  local owner = redis.call('HGET', OWN, wid)
  back = back + num(redis.call('HGET', ASG, wid))
  drop_waiter(wid, owner)
  redis.call('RPUSH', INBOX(owner), 'c ' .. wid)
end
redis.call('HINCRBY', M, 'free', back)
return {'OK'}
"""

#: ARGV: owner. This instance leaves: its waiters are withdrawn, its held permits
#: given back, its lease dropped (not marked lost). Replies OK <permits given back>.
LEAVE: Final = PRELUDE + r"""
if not exists then return {'OK', 0} end
local freed = evict(ARGV[1])
put(freed)
return {'OK', freed}
"""

#: ARGV: owner. Replies OK cap free waiting waiting_need closed held holders debt
#: withheld mine asg_total.
STATS: Final = PRELUDE + r"""
if not exists then return {'NOSEM'} end
local waiting_need, asg_total = 0, 0
for _, wid in ipairs(redis.call('ZRANGE', Q, 0, -1)) do
  local asg = num(redis.call('HGET', ASG, wid))
  waiting_need = waiting_need + num(redis.call('HGET', NEED, wid)) - asg
  asg_total = asg_total + asg
end
local held, holders = 0, 0
local vals = redis.call('HVALS', HELD)
for _, v in ipairs(vals) do
  held = held + num(v)
  if num(v) > 0 then holders = holders + 1 end
end
return {'OK', mget('cap'), mget('free'), redis.call('ZCARD', Q), waiting_need, mget('closed'),
        held, holders, mget('debt'), mget('withheld'),
        num(redis.call('HGET', HELD, ARGV[1])), asg_total}
"""

SCRIPTS: Final = {
    "open": OPEN,
    "acquire": ACQUIRE,
    "try_acquire": TRY_ACQUIRE,
    "cancel": CANCEL,
    "release": RELEASE,
    "renew": RENEW,
    "add": ADD,
    "forget": FORGET,
    "close": CLOSE,
    "leave": LEAVE,
    "stats": STATS,
}
