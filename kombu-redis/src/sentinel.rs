//! Redis Sentinel: the master a set of sentinels monitors, asked of each known sentinel in turn
//! (`SENTINEL get-master-addr-by-name`) every time a socket is dialed, with the other sentinels learnt
//! from their answers (`SENTINEL sentinels`); a poller's background look-up of where the master is; and
//! the pure readers of those replies and of `ROLE`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kombu_core::{Error, ErrorKind, Result};

use crate::connection::Shared;
use crate::dial::{address, dial};
use crate::options::SentinelOptions;
use crate::resp::{pack, Frame};
use crate::socket::exchange;
use crate::tls;

/// A host and a port.
type Addr = (String, u16);

/// Most sentinels remembered (the configured ones and those learnt).
const MAX_KNOWN: usize = 32;

/// The sentinels of one connection and how to talk to them.
#[derive(Debug)]
pub(crate) struct Sentinels {
    master_name: String,
    /// Every sentinel known, the last one that answered first.
    known: Mutex<Vec<(String, u16)>>,
    /// AUTH to a sentinel, if it has a password.
    auth: Option<Vec<u8>>,
    tls: Option<tls::Config>,
    timeout: Duration,
    /// The master's address last found, for messages.
    last: Mutex<Option<String>>,
}

impl Sentinels {
    /// The sentinels at `host:port` (the URL's), for the options' master.
    pub(crate) fn new(o: &SentinelOptions, host: &str, port: u16, timeout: Duration) -> Result<Sentinels> {
        let auth = match (&o.username, &o.password) {
            (Some(u), Some(p)) => Some(pack("AUTH", &[u.as_str(), p.as_str()])),
            (None, Some(p)) => Some(pack("AUTH", &[p.as_str()])),
            _ => None,
        };
        Ok(Sentinels {
            master_name: o.master_name.clone(),
            known: Mutex::new(vec![(host.to_owned(), port)]),
            auth,
            tls: o.tls.as_ref().map(tls::Config::new).transpose()?,
            timeout,
            last: Mutex::new(None),
        })
    }

    /// `master 'name' at host:port (via Sentinel)`, for messages.
    pub(crate) fn describe(&self) -> String {
        match &*crate::connection::lock(&self.last) {
            Some(at) => format!("master '{}' at {at} (via Sentinel)", self.master_name),
            None => format!("master '{}' (via Sentinel)", self.master_name),
        }
    }

    /// The master's address, from the first known sentinel that answers. When none does, the error a
    /// retry cannot help if any sentinel gave one (refused credentials, no such master), else the first.
    pub(crate) fn master(&self) -> Result<(String, u16)> {
        let known = crate::connection::lock(&self.known).clone();
        let mut first: Option<Error> = None;
        let mut fatal: Option<Error> = None;
        for (host, port) in &known {
            match self.ask(host, *port) {
                Ok((master, others)) => {
                    self.learn((host.clone(), *port), others);
                    *crate::connection::lock(&self.last) = Some(address(&master.0, master.1));
                    return Ok(master);
                }
                Err(e) => {
                    tracing::debug!("sentinel at {}: {e:#}", address(host, *port));
                    if !e.is_recoverable() && fatal.is_none() {
                        fatal = Some(e);
                    } else if first.is_none() {
                        first = Some(e);
                    }
                }
            }
        }
        let e = fatal.or(first).unwrap_or_else(|| Error::connection("no sentinel"));
        let list: Vec<String> = known.iter().map(|(h, p)| address(h, *p)).collect();
        Err(e.context(format!("finding master '{}' through the sentinels {}", self.master_name, list.join(", "))))
    }

    /// Asks one sentinel for the master and the other sentinels.
    fn ask(&self, host: &str, port: u16) -> Result<(Addr, Vec<Addr>)> {
        let addr = address(host, port);
        let mut stream = dial(host, port, self.timeout, self.tls.as_ref())?;
        let mut commands: Vec<Vec<u8>> = self.auth.iter().cloned().collect();
        commands.push(pack("SENTINEL", &["get-master-addr-by-name", self.master_name.as_str()]));
        commands.push(pack("SENTINEL", &["sentinels", self.master_name.as_str()]));
        let n = commands.len();
        let replies = exchange(&mut stream, &addr, &commands, &[n - 2, n - 1])?;
        let master = match &replies[n - 2] {
            Frame::Error(e) => {
                return Err(Error::invalid(format!("{addr} does not answer as a sentinel: {e}")));
            }
            reply => master_addr(reply).ok_or_else(|| {
                Error::new(
                    ErrorKind::InvalidArgument,
                    format!(
                        "the sentinel at {addr} monitors no master named '{}' (check master_name)",
                        self.master_name
                    ),
                )
            })?,
        };
        Ok((master, sentinel_addrs(&replies[n - 1])))
    }

    /// Puts the sentinel that answered first and adds the ones it knows (as redis-py moves the sentinel
    /// that answered to the front).
    fn learn(&self, answered: (String, u16), others: Vec<(String, u16)>) {
        let mut known = crate::connection::lock(&self.known);
        known.retain(|s| *s != answered);
        known.insert(0, answered);
        for s in others {
            if known.len() < MAX_KNOWN && !known.contains(&s) {
                known.push(s);
            }
        }
    }
}

/// A poller's look-ups of the master: at most one at a time, on a thread of its own; what it found when
/// the master is no longer where the poller's sockets are.
#[derive(Debug, Default)]
pub(crate) struct MasterWatch {
    running: AtomicBool,
    moved: Mutex<Option<String>>,
}

impl MasterWatch {
    /// The master's new address, once, if a look-up found it moved.
    pub(crate) fn moved(&self) -> Option<String> {
        crate::connection::lock(&self.moved).take()
    }
}

/// Asks the sentinels where the master is, on a thread of its own; if not at `at`, records it in `watch`
/// and wakes the poller (which then reports its link lost, and the driver connects to the new master).
pub(crate) fn watch_in_background(shared: &Arc<Shared>, at: String, watch: &Arc<MasterWatch>) {
    if watch.running.swap(true, Ordering::AcqRel) {
        return;
    }
    let (sh, w) = (shared.clone(), watch.clone());
    let spawned = std::thread::Builder::new().name("kombu-redis-sentinel".into()).spawn(move || {
        match sh.dialer.master() {
            Some(Ok(now)) if now != at => {
                tracing::info!("the sentinels name {now} as the master, no longer {at}");
                *crate::connection::lock(&w.moved) = Some(now);
                sh.waker.wake();
            }
            Some(Err(e)) => tracing::debug!("asking the sentinels where the master is: {e:#}"),
            _ => {}
        }
        w.running.store(false, Ordering::Release);
    });
    if let Err(e) = spawned {
        watch.running.store(false, Ordering::Release);
        tracing::warn!("cannot start a sentinel look-up: {e}");
    }
}

fn text(frame: &Frame) -> Option<String> {
    match frame {
        Frame::BulkString(b) | Frame::SimpleString(b) => String::from_utf8(b.clone()).ok(),
        _ => None,
    }
}

/// `SENTINEL get-master-addr-by-name`'s reply: `[host, port]`, or nil for a name it does not monitor.
pub(crate) fn master_addr(reply: &Frame) -> Option<(String, u16)> {
    match reply {
        Frame::Array(items) if items.len() == 2 => {
            let host = text(&items[0])?;
            let port = text(&items[1])?.parse().ok()?;
            Some((host, port))
        }
        _ => None,
    }
}

/// `SENTINEL sentinels`' reply: one flat `[field, value, ...]` array per other sentinel; their `ip` and `port`.
pub(crate) fn sentinel_addrs(reply: &Frame) -> Vec<(String, u16)> {
    let Frame::Array(entries) = reply else { return Vec::new() };
    entries
        .iter()
        .filter_map(|entry| {
            let Frame::Array(fields) = entry else { return None };
            let field = |name: &str| {
                fields
                    .chunks(2)
                    .find(|kv| kv.len() == 2 && text(&kv[0]).as_deref() == Some(name))
                    .and_then(|kv| text(&kv[1]))
            };
            Some((field("ip")?, field("port")?.parse().ok()?))
        })
        .collect()
}

/// `ROLE`'s reply: `master`, `slave` or `sentinel` (the first element).
pub(crate) fn role(reply: &Frame) -> Option<String> {
    match reply {
        Frame::Array(items) => items.first().and_then(text),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(s: &str) -> Frame {
        Frame::BulkString(s.as_bytes().to_vec())
    }

    #[test]
    fn replies_are_read_and_odd_ones_ignored() {
        let reply = Frame::Array(vec![bulk("10.0.0.5"), bulk("6380")]);
        assert_eq!(master_addr(&reply), Some(("10.0.0.5".into(), 6380)));
        assert_eq!(master_addr(&Frame::Null), None);
        assert_eq!(master_addr(&Frame::Array(vec![bulk("h"), bulk("port")])), None);
        assert_eq!(master_addr(&Frame::Array(vec![bulk("h"), bulk("99999")])), None);
        let s = |ip: &str, port: &str| {
            Frame::Array(vec![bulk("name"), bulk("x"), bulk("ip"), bulk(ip), bulk("port"), bulk(port)])
        };
        let reply = Frame::Array(vec![s("127.0.0.1", "26380"), s("127.0.0.1", "bad"), bulk("junk"), s("::1", "26381")]);
        assert_eq!(sentinel_addrs(&reply), [("127.0.0.1".into(), 26380), ("::1".into(), 26381)]);
        assert!(sentinel_addrs(&Frame::Error("ERR".into())).is_empty());
        let master = Frame::Array(vec![bulk("master"), Frame::Integer(0), Frame::Array(vec![])]);
        assert_eq!(role(&master).as_deref(), Some("master"));
        assert_eq!(role(&Frame::Array(vec![bulk("slave"), bulk("127.0.0.1")])).as_deref(), Some("slave"));
        assert_eq!(role(&Frame::Error("NOPERM".into())), None);
    }

    #[test]
    fn the_sentinel_that_answered_goes_first_and_others_are_learnt_once() {
        let o = SentinelOptions { master_name: "m".into(), ..SentinelOptions::default() };
        let s = Sentinels::new(&o, "a", 1, Duration::from_secs(1)).unwrap();
        s.learn(("b".into(), 2), vec![("a".into(), 1), ("c".into(), 3), ("c".into(), 3)]);
        assert_eq!(*s.known.lock().unwrap(), [("b".into(), 2), ("a".into(), 1), ("c".into(), 3)]);
        let many = (0..100).map(|i| ("x".to_owned(), i)).collect();
        s.learn(("a".into(), 1), many);
        assert_eq!(s.known.lock().unwrap().len(), MAX_KNOWN);
        assert!(s.describe().contains("master 'm'"));
    }
}
