//! The Lua scripts that make publish one round trip and consume free of a loss window (pure text).
//!
//! - [`ROUTE`]: routes a message by an exchange's binding set and pushes it, server-side, in one step.
//! - [`POP`]: takes up to N messages from a consumer's lists (bands in Kombu's order, queues round-robin
//!   or one after the other, as the queue order strategy says)
//!   and records each in `unacked`/`unacked_index` in the same atomic step, so a consumer killed at any
//!   instant leaves every message either in its queue or in `unacked`, where Kombu restores it.
//! - [`RESTORE`]: puts one unacknowledged message back, only if it is still recorded (no duplicates when
//!   two parties restore at once).
//! - [`DEAD_LETTER`]: moves one unacknowledged message to a dead-letter list, byte for byte.
//! - [`UNLOCK`]: releases `unacked_mutex` if we still hold it.

use std::sync::OnceLock;

use crate::keys;
use crate::options::RedisOptions;
use crate::payload::score;

/// Routes and pushes messages published with one routing key. A direct exchange of more than 32
/// bindings reads only the members of its key (`SSCAN … MATCH <key><sep>*`, the key's glob characters
/// escaped), not the whole set: with 1,000 queues bound, `SMEMBERS` and a Lua loop over every member
/// cost each publish about a millisecond.
///
/// KEYS\[1\]: the binding set. ARGV: kind (`direct`, `topic` or `all`), routing key, band suffix of the
/// queue names, global key prefix, the separator of binding members (Kombu's `sep`), then the payloads
/// (in publish order). Returns how many queues took them.
pub const ROUTE: &str = r#"
local kind, rkey, suffix, prefix, sep = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local function words(s)
  local t = {}
  for w in string.gmatch(s .. '.', '([^.]*)%.') do t[#t + 1] = w end
  return t
end
local function topic(p, k)
  if not string.find(p, '[*#]') then return p == k end
  local pw, kw = words(p), words(k)
  local reach = {}
  for j = 0, #kw do reach[j] = false end
  reach[0] = true
  for _, w in ipairs(pw) do
    local nxt = {}
    for j = 0, #kw do nxt[j] = false end
    if w == '#' then
      local any = false
      for j = 0, #kw do any = any or reach[j]; nxt[j] = any end
    elseif w == '*' then
      for j = 0, #kw - 1 do nxt[j + 1] = reach[j] end
    else
      for j = 0, #kw - 1 do nxt[j + 1] = reach[j] and kw[j + 1] == w end
    end
    reach = nxt
  end
  return reach[#kw]
end
local function glob(s) return (string.gsub(s, '[%*%?%[%]\\]', '\\%0')) end
local members
if kind == 'direct' and not string.find(rkey, sep, 1, true) and redis.call('SCARD', KEYS[1]) > 32 then
  -- Only the members of this key: the server matches them in C, not a Lua loop over every binding
  -- (for a few bindings, reading them all costs less). Before Redis 5 a script may write after SSCAN only
  -- when it replicates its effects, not itself.
  if redis.replicate_commands then redis.replicate_commands() end
  members = {}
  local cursor = '0'
  repeat
    local r = redis.call('SSCAN', KEYS[1], cursor, 'MATCH', glob(rkey) .. glob(sep) .. '*', 'COUNT', 10000)
    cursor = r[1]
    for _, m in ipairs(r[2]) do members[#members + 1] = m end
  until cursor == '0'
else
  members = redis.call('SMEMBERS', KEYS[1])
end
local seen = {}
local n = 0
for _, m in ipairs(members) do
  local a = string.find(m, sep, 1, true)
  local b = a and string.find(m, sep, a + #sep, true)
  if b then
    local bk = string.sub(m, 1, a - 1)
    local q = string.sub(m, b + #sep)
    local hit
    if kind == 'topic' then hit = topic(bk, rkey) elseif kind == 'all' then hit = true else hit = (bk == rkey) end
    if hit and not seen[q] then
      seen[q] = true
      redis.call('LPUSH', prefix .. q .. suffix, unpack(ARGV, 6))
      n = n + 1
    end
  end
end
return n
"#;

/// Takes and records up to N messages.
///
/// KEYS\[1\] `unacked`, KEYS\[2\] `unacked_index`, KEYS\[3\] the consumer's in-flight hash, then the
/// lists: band by band, `per` queues in each band. ARGV: N, now (seconds), `1` to record, request id
/// (empty: no in-flight entry), in-flight expiry (ms), `per`, the mode: `1` takes each list until it
/// is empty before the next (BRPOP's order: Kombu's `priority` and `sorted` queue order strategies),
/// anything else takes one from each queue of a band in turn (`round_robin`), then the `per` queue
/// names. Returns a flat array of (queue index within its band, delivery tag, payload).
///
/// A payload that is not a Kombu envelope (not JSON, or without `properties`) is recorded as a JSON
/// string with exchange `''` and its own queue as routing key, so that a restore puts it back where it
/// was (never into a list named `""`); the consumer then dead-letters it byte for byte.
pub const POP: &str = r#"
local n, now, record, req, ttl, per = tonumber(ARGV[1]), ARGV[2], ARGV[3] == '1', ARGV[4], ARGV[5], tonumber(ARGV[6])
local in_order = ARGV[7] == '1'
local out, inflight = {}, {}
local got = 0
local nkeys = #KEYS - 3
local function take(j, key, v)
  got = got + 1
  local tag, ex, rk = nil, '', ''
  local ok, m = pcall(cjson.decode, v)
  local valid = ok and type(m) == 'table' and type(m['properties']) == 'table'
  if valid then
    local p = m['properties']
    if type(p['delivery_tag']) == 'string' and p['delivery_tag'] ~= '' then tag = p['delivery_tag'] end
    local di = p['delivery_info']
    if type(di) == 'table' then
      if type(di['exchange']) == 'string' then ex = di['exchange'] end
      if type(di['routing_key']) == 'string' then rk = di['routing_key'] end
    end
  end
  if not valid then rk = ARGV[8 + j] or '' end
  if not tag then tag = req .. '.' .. got .. '.' .. now end
  if record then
    local raw = v
    if not valid then raw = cjson.encode(v) end
    redis.call('ZADD', KEYS[2], now, tag)
    redis.call('HSET', KEYS[1], tag, '[' .. raw .. ', ' .. cjson.encode(ex) .. ', ' .. cjson.encode(rk) .. ']')
    inflight[#inflight + 1] = key
    inflight[#inflight + 1] = tag
  end
  out[#out + 1] = j
  out[#out + 1] = tag
  out[#out + 1] = v
end
local base = 0
while base < nkeys and got < n do
  if in_order then
    for j = 0, per - 1 do
      local key = KEYS[4 + base + j]
      while got < n do
        local v = redis.call('RPOP', key)
        if not v then break end
        take(j, key, v)
      end
    end
  else
    local progress = true
    while progress and got < n do
      progress = false
      for j = 0, per - 1 do
        if got >= n then break end
        local key = KEYS[4 + base + j]
        local v = redis.call('RPOP', key)
        if v then
          progress = true
          take(j, key, v)
        end
      end
    end
  end
  base = base + per
end
if record and req ~= '' and #inflight > 0 then
  redis.call('HSET', KEYS[3], req, cjson.encode(inflight))
  redis.call('PEXPIRE', KEYS[3], ttl)
end
return out
"#;

/// The keys and arguments of one [`POP`] call, in the order the script reads them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PopCall {
    /// KEYS: `unacked`, `unacked_index`, the in-flight hash, then each band's list of every queue.
    pub keys: Vec<Vec<u8>>,
    /// ARGV.
    pub args: Vec<Vec<u8>>,
}

impl PopCall {
    /// A request for up to `n` messages from `queues` (in the order to take from them), at `now`
    /// (seconds), recorded in `unacked` if `record`, listed in `inflight` under `req` (empty: not listed).
    pub fn new<Q: AsRef<str>>(
        o: &RedisOptions,
        inflight: &str,
        queues: &[Q],
        n: usize,
        now: f64,
        record: bool,
        req: &str,
    ) -> Self {
        let mut keys = vec![o.unacked_key.as_bytes().to_vec(), o.unacked_index_key.as_bytes().to_vec()];
        keys.push(inflight.as_bytes().to_vec());
        for step in &o.priority_steps {
            for q in queues {
                keys.push(keys::queue_key(&o.global_keyprefix, q.as_ref(), *step, &o.sep).into_bytes());
            }
        }
        let mut args = vec![
            n.to_string().into_bytes(),
            score(now).into_bytes(),
            if record { b"1".to_vec() } else { b"0".to_vec() },
            req.as_bytes().to_vec(),
            (o.visibility_timeout.as_millis() as u64).to_string().into_bytes(),
            queues.len().to_string().into_bytes(),
            o.queue_order_strategy.pop_mode().to_vec(),
        ];
        args.extend(queues.iter().map(|q| q.as_ref().as_bytes().to_vec()));
        PopCall { keys, args }
    }

    /// The call as one command: `EVALSHA` with the script's digest, or `EVAL` with its text when
    /// `by_source` (the server's script cache was flushed).
    pub fn pack(&self, by_source: bool) -> Vec<u8> {
        let s = scripts();
        let (name, first) = if by_source { ("EVAL", POP) } else { ("EVALSHA", s.pop.get_hash()) };
        let numkeys = self.keys.len().to_string();
        let mut parts: Vec<&[u8]> = vec![first.as_bytes(), numkeys.as_bytes()];
        parts.extend(self.keys.iter().chain(&self.args).map(Vec::as_slice));
        crate::resp::pack(name, &parts)
    }
}

/// Restores one message if it is still recorded as unacknowledged.
///
/// KEYS\[1\] `unacked`, KEYS\[2\] `unacked_index`, KEYS\[3..\] the lists to push to. ARGV: tag, payload,
/// `L` (LPUSH: behind the waiting messages) or `R` (RPUSH: next to be served). Returns 1 if restored.
pub const RESTORE: &str = r#"
if redis.call('HDEL', KEYS[1], ARGV[1]) == 0 then
  redis.call('ZREM', KEYS[2], ARGV[1])
  return 0
end
redis.call('ZREM', KEYS[2], ARGV[1])
for i = 3, #KEYS do
  if ARGV[3] == 'L' then redis.call('LPUSH', KEYS[i], ARGV[2]) else redis.call('RPUSH', KEYS[i], ARGV[2]) end
end
return 1
"#;

/// Moves one unacknowledged message to a dead-letter list, byte for byte, if it is still recorded (or
/// unconditionally with ARGV\[3\] `1`, for a message never recorded).
///
/// KEYS\[1\] `unacked`, KEYS\[2\] `unacked_index`, KEYS\[3\] the dead-letter list. ARGV: tag, payload,
/// `1` if it was not recorded. Returns 1 if moved.
pub const DEAD_LETTER: &str = r#"
local held = redis.call('HDEL', KEYS[1], ARGV[1]) == 1
redis.call('ZREM', KEYS[2], ARGV[1])
if held or ARGV[3] == '1' then
  redis.call('LPUSH', KEYS[3], ARGV[2])
  return 1
end
return 0
"#;

/// Releases a lock taken with `SET key token NX PX ms` if the token is still ours.
pub const UNLOCK: &str = r#"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"#;

/// The scripts with their SHA1 digests (computed once).
#[derive(Debug)]
pub struct Scripts {
    /// [`ROUTE`].
    pub route: redis::Script,
    /// [`POP`].
    pub pop: redis::Script,
    /// [`RESTORE`].
    pub restore: redis::Script,
    /// [`UNLOCK`].
    pub unlock: redis::Script,
    /// [`DEAD_LETTER`].
    pub dead_letter: redis::Script,
}

/// The shared script table.
pub fn scripts() -> &'static Scripts {
    static S: OnceLock<Scripts> = OnceLock::new();
    S.get_or_init(|| Scripts {
        route: redis::Script::new(ROUTE),
        pop: redis::Script::new(POP),
        restore: redis::Script::new(RESTORE),
        unlock: redis::Script::new(UNLOCK),
        dead_letter: redis::Script::new(DEAD_LETTER),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_are_sha1_hex() {
        let s = scripts();
        for h in [s.route.get_hash(), s.pop.get_hash(), s.restore.get_hash(), s.unlock.get_hash()] {
            assert_eq!(h.len(), 40);
            assert!(h.chars().all(|c| c.is_ascii_hexdigit()));
        }
        assert_ne!(s.route.get_hash(), s.pop.get_hash());
    }

    #[test]
    fn pop_calls_list_bands_then_queues() {
        let o = RedisOptions { priority_steps: vec![0, 5], ..RedisOptions::default() };
        let qs = ["a".to_owned(), "b".to_owned()];
        let call = PopCall::new(&o, "infl", &qs, 7, 1.25, true, "1.2");
        let text = |v: &[Vec<u8>]| v.iter().map(|b| String::from_utf8_lossy(b).into_owned()).collect::<Vec<_>>();
        let sep = &o.sep;
        assert_eq!(
            text(&call.keys),
            ["unacked", "unacked_index", "infl", "a", "b", &format!("a{sep}5"), &format!("b{sep}5")]
        );
        let ms = o.visibility_timeout.as_millis().to_string();
        assert_eq!(text(&call.args), ["7", "1.250000", "1", "1.2", ms.as_str(), "2", "0", "a", "b"]);
        let sha = call.pack(false);
        let by_source = call.pack(true);
        assert!(sha.windows(40).any(|w| w == scripts().pop.get_hash().as_bytes()));
        assert!(by_source.windows(POP.len()).any(|w| w == POP.as_bytes()));
        assert!(sha.ends_with(b"$1\r\nb\r\n") && by_source.ends_with(b"$1\r\nb\r\n"));
    }
}
