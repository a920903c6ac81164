//! The broker on disk: exchanges, bindings and queues under one root directory, shared by every
//! connection (of any process) that names it.
//!
//! ```text
//! <root>/queues/<queue>/ready/<message>.msg       waiting messages, in name order
//! <root>/queues/<queue>/claimed/<owner>~<message>  delivered, not yet acknowledged
//! <root>/queues/<queue>/bad/                       files that are not messages, set aside
//! <root>/queues/<queue>/meta.json                  max priority and message TTL, if any
//! <root>/exchanges/<exchange>/kind                 direct, topic, fanout or headers
//! <root>/exchanges/<exchange>/bindings/<queue>~<hash>.json
//! <root>/tmp/                                      files being written
//! ```
//!
//! Every file appears by an atomic rename from `tmp/`, a consumer claims a message by renaming it from
//! `ready/` to `claimed/` (only one rename can win), an ack deletes the claimed file, and a requeue
//! renames it back to `ready/` marked redelivered.

use std::collections::BTreeSet;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use kombu_core::envelope::Envelope;
use kombu_core::routing::binding_matches;
use kombu_core::virtual_transport::Entities;
use kombu_core::{Error, ErrorKind, Exchange, ExchangeKind, FieldTable, Message, Queue, QueueInfo, Result};
use serde_json::{json, Value};

use crate::names::{self, MessageName};
use crate::notify;

/// A disk error, with what was being done.
fn io_error(what: impl std::fmt::Display, e: io::Error) -> Error {
    Error::with_source(ErrorKind::Connection, what.to_string(), e)
}

fn not_found(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::NotFound
}

fn no_queue(name: &str) -> Error {
    Error::not_found(format!("no queue '{name}'"))
}

fn no_exchange(name: &str) -> Error {
    Error::not_found(format!("no exchange '{name}'"))
}

/// A message taken from a queue by one channel.
#[derive(Debug)]
pub(crate) struct Claim {
    /// The queue it came from.
    pub(crate) queue: String,
    /// Its file under `claimed/`.
    pub(crate) path: PathBuf,
    /// Its name in `ready/`.
    pub(crate) name: MessageName,
}

/// What a queue was declared with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct QueueMeta {
    max_priority: Option<u8>,
    message_ttl_ms: Option<u64>,
}

impl QueueMeta {
    fn of(queue: &Queue) -> QueueMeta {
        QueueMeta { max_priority: queue.max_priority, message_ttl_ms: queue.message_ttl.map(|t| t.as_millis() as u64) }
    }

    fn to_json(self) -> Vec<u8> {
        json!({"max_priority": self.max_priority, "message_ttl_ms": self.message_ttl_ms}).to_string().into_bytes()
    }

    fn parse(bytes: &[u8]) -> Option<QueueMeta> {
        let v: Value = serde_json::from_slice(bytes).ok()?;
        let max_priority = match &v["max_priority"] {
            Value::Null => None,
            p => Some(u8::try_from(p.as_u64()?).ok()?),
        };
        let message_ttl_ms = match &v["message_ttl_ms"] {
            Value::Null => None,
            t => Some(t.as_u64()?),
        };
        Some(QueueMeta { max_priority, message_ttl_ms })
    }
}

/// One binding, as stored in its file.
struct StoredBinding {
    queue: String,
    routing_key: String,
    arguments: FieldTable,
}

impl StoredBinding {
    fn parse(bytes: &[u8]) -> Option<StoredBinding> {
        let v: Value = serde_json::from_slice(bytes).ok()?;
        Some(StoredBinding {
            queue: v.get("queue")?.as_str()?.to_owned(),
            routing_key: v.get("routing_key")?.as_str()?.to_owned(),
            arguments: v.get("arguments").and_then(Value::as_object).cloned().unwrap_or_default().into(),
        })
    }
}

/// The broker under one root directory, as one connection sees it.
#[derive(Debug)]
pub(crate) struct Store {
    root: PathBuf,
    /// Names this connection's claims: `<pid>.<connection number>`.
    owner: String,
}

impl Store {
    pub(crate) fn open(root: &Path) -> Result<Store> {
        for sub in ["queues", "exchanges", "tmp"] {
            let dir = root.join(sub);
            fs::create_dir_all(&dir).map_err(|e| io_error(format!("cannot create {}", dir.display()), e))?;
        }
        let root = fs::canonicalize(root).map_err(|e| io_error(format!("cannot resolve {}", root.display()), e))?;
        static NEXT: AtomicU64 = AtomicU64::new(1);
        let owner = format!("{}.{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed));
        Ok(Store { root, owner })
    }

    /// The owner this connection's claims are named for.
    pub(crate) fn owner(&self) -> &str {
        &self.owner
    }

    /// The root directory (canonical).
    pub(crate) fn root(&self) -> &Path {
        &self.root
    }

    fn queue_dir(&self, queue: &str) -> Result<PathBuf> {
        Ok(self.root.join("queues").join(names::encode("queue", queue)?))
    }

    fn exchange_dir(&self, exchange: &str) -> Result<PathBuf> {
        Ok(self.root.join("exchanges").join(names::encode("exchange", exchange)?))
    }

    fn tmp_path(&self) -> PathBuf {
        self.root.join("tmp").join(format!("{}-{}.tmp", std::process::id(), names::next_seq()))
    }

    /// Writes a file under `tmp/`; the caller renames or links it into place.
    fn stage(&self, bytes: &[u8]) -> Result<PathBuf> {
        let tmp = self.tmp_path();
        fs::write(&tmp, bytes).map_err(|e| io_error(format!("cannot write {}", tmp.display()), e))?;
        Ok(tmp)
    }

    /// Makes `dest` hold `bytes` at once (readers see the old file or the new one).
    fn write_atomic(&self, dest: &Path, bytes: &[u8]) -> Result<()> {
        let tmp = self.stage(bytes)?;
        fs::rename(&tmp, dest).map_err(|e| {
            let _ = fs::remove_file(&tmp);
            if not_found(&e) {
                Error::not_found(format!("{} is gone", dest.parent().unwrap_or(dest).display()))
            } else {
                io_error(format!("cannot write {}", dest.display()), e)
            }
        })
    }

    /// Creates `dest` with `bytes` unless it exists (atomically); returns whether it created it.
    fn create_once(&self, dest: &Path, bytes: &[u8]) -> Result<bool> {
        let tmp = self.stage(bytes)?;
        let linked = fs::hard_link(&tmp, dest);
        let _ = fs::remove_file(&tmp);
        match linked {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(false),
            Err(e) => Err(io_error(format!("cannot create {}", dest.display()), e)),
        }
    }

    fn exchange_kind(&self, name: &str) -> Result<ExchangeKind> {
        let file = self.exchange_dir(name)?.join("kind");
        match fs::read_to_string(&file) {
            Ok(kind) => kind.trim().parse(),
            Err(e) if not_found(&e) => Err(no_exchange(name)),
            Err(e) => Err(io_error(format!("cannot read {}", file.display()), e)),
        }
    }

    /// The file names and contents of an exchange's bindings.
    fn bindings(&self, exchange: &str) -> Result<Vec<StoredBinding>> {
        let dir = self.exchange_dir(exchange)?.join("bindings");
        let mut out = Vec::new();
        for name in
            list(&dir).map_err(|e| if not_found(&e) { no_exchange(exchange) } else { io_error("bindings", e) })?
        {
            if !name.ends_with(".json") {
                continue;
            }
            match fs::read(dir.join(&name)) {
                Ok(bytes) => match StoredBinding::parse(&bytes) {
                    Some(b) => out.push(b),
                    None => tracing::warn!("ignoring malformed binding file {}", dir.join(&name).display()),
                },
                Err(e) if not_found(&e) => {}
                Err(e) => return Err(io_error(format!("cannot read binding {name}"), e)),
            }
        }
        Ok(out)
    }

    fn binding_path(&self, queue: &str, exchange: &str, key: &str, args: &FieldTable) -> Result<PathBuf> {
        let args_json = Value::from(args).to_string();
        let hash = names::fnv(&[key.as_bytes(), args_json.as_bytes()]);
        let file = format!("{}~{hash:016x}.json", names::encode("queue", queue)?);
        Ok(self.exchange_dir(exchange)?.join("bindings").join(file))
    }

    fn queue_exists(&self, queue: &str) -> Result<bool> {
        Ok(self.queue_dir(queue)?.join("ready").is_dir())
    }

    fn queue_meta(&self, dir: &Path) -> QueueMeta {
        match fs::read(dir.join("meta.json")) {
            Ok(bytes) => QueueMeta::parse(&bytes).unwrap_or_else(|| {
                tracing::warn!("ignoring malformed {}", dir.join("meta.json").display());
                QueueMeta::default()
            }),
            Err(_) => QueueMeta::default(),
        }
    }

    /// Puts back the messages claimed by processes that died before settling them.
    fn restore_orphans(&self, queue: &str, dir: &Path) {
        let claimed = dir.join("claimed");
        let Ok(files) = list(&claimed) else { return };
        for file in files {
            let Some((pid, name)) = names::parse_claimed(&file) else { continue };
            if pid != std::process::id() && !process_alive(pid) {
                let back = dir.join("ready").join(MessageName { redelivered: true, ..name }.file_name());
                if fs::rename(claimed.join(&file), back).is_ok() {
                    tracing::info!("queue '{queue}': restored a message claimed by dead process {pid}");
                }
            }
        }
    }

    /// Routes a message to its queues and writes one file in each. A message no queue takes is dropped.
    /// Returns how many queues took it.
    pub(crate) fn route(&self, message: &Message, exchange: &str, routing_key: &str) -> Result<usize> {
        let targets: BTreeSet<String> = if exchange.is_empty() {
            BTreeSet::from([routing_key.to_owned()])
        } else {
            let kind = self.exchange_kind(exchange)?;
            self.bindings(exchange)?
                .into_iter()
                .filter(|b| binding_matches(kind, &b.routing_key, &b.arguments, routing_key, &message.headers))
                .map(|b| b.queue)
                .collect()
        };
        let seq = names::next_seq().to_string();
        let mut bytes = Vec::new();
        Envelope::write_message(message, exchange, routing_key, &seq, &mut bytes)?;
        let now = names::now_ms();
        let mut taken = 0;
        for queue in targets {
            let dir = self.queue_dir(&queue)?;
            if !dir.join("ready").is_dir() {
                continue;
            }
            let meta = self.queue_meta(&dir);
            let band = match meta.max_priority {
                Some(max) => max - message.properties.priority.unwrap_or(0).min(max),
                None => 0,
            };
            let ttl = match (message.properties.expiration, meta.message_ttl_ms.map(Duration::from_millis)) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            let name = MessageName::new(band, ttl.map(|t| now + t.as_millis() as u64));
            match self.write_atomic(&dir.join("ready").join(name.file_name()), &bytes) {
                Ok(()) => taken += 1,
                Err(e) if e.kind() == ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        Ok(taken)
    }

    /// The waiting messages of a queue, in delivery order.
    pub(crate) fn ready(&self, queue: &str) -> Result<Vec<MessageName>> {
        let dir = self.queue_dir(queue)?.join("ready");
        let mut names: Vec<MessageName> = list(&dir)
            .map_err(|e| if not_found(&e) { no_queue(queue) } else { io_error("cannot list messages", e) })?
            .iter()
            .filter_map(|n| MessageName::parse(n))
            .collect();
        names.sort_by_key(|n| (n.band, n.seq, n.pid));
        Ok(names)
    }

    /// Tries to take one waiting message for `owner`: None when another consumer took it first, or when it
    /// expired (it is then deleted) or is not a message (it is set aside in `bad/`).
    pub(crate) fn claim(&self, queue: &str, name: &MessageName, owner: &str) -> Result<Option<(Claim, Message)>> {
        let dir = self.queue_dir(queue)?;
        let ready = dir.join("ready").join(name.file_name());
        if name.expired(names::now_ms()) {
            let _ = fs::remove_file(&ready);
            return Ok(None);
        }
        let claimed = dir.join("claimed").join(names::claimed_name(owner, name));
        match fs::rename(&ready, &claimed) {
            Ok(()) => {}
            Err(e) if not_found(&e) => return Ok(None),
            Err(e) => return Err(io_error(format!("cannot claim {}", ready.display()), e)),
        }
        let parsed = fs::read(&claimed)
            .map_err(|e| Error::serialization(format!("cannot read: {e}")))
            .and_then(|bytes| Envelope::parse(&bytes))
            .and_then(Envelope::into_message);
        match parsed {
            Ok(mut message) => {
                if name.redelivered {
                    // The file name says "redelivered" but counts nothing.
                    message.delivery_info.redelivered = true;
                    message.delivery_info.redeliveries = None;
                }
                Ok(Some((Claim { queue: queue.to_owned(), path: claimed, name: *name }, message)))
            }
            Err(e) => {
                let bad = dir.join("bad");
                let _ = fs::create_dir_all(&bad);
                let _ = fs::rename(&claimed, bad.join(name.file_name()));
                tracing::warn!("queue '{queue}': set aside {} ({e:#})", name.file_name());
                Ok(None)
            }
        }
    }

    /// Acknowledges (deletes) a claimed message.
    pub(crate) fn ack(&self, claim: &Claim) -> Result<()> {
        match fs::remove_file(&claim.path) {
            Err(e) if !not_found(&e) => Err(io_error(format!("cannot remove {}", claim.path.display()), e)),
            _ => Ok(()),
        }
    }

    /// Puts a claimed message back in its queue, marked redelivered, in its original place.
    pub(crate) fn requeue(&self, claim: &Claim) -> Result<()> {
        let back = self
            .queue_dir(&claim.queue)?
            .join("ready")
            .join(MessageName { redelivered: true, ..claim.name }.file_name());
        match fs::rename(&claim.path, &back) {
            Err(e) if !not_found(&e) => Err(io_error(format!("cannot requeue {}", claim.path.display()), e)),
            _ => Ok(()),
        }
    }
}

impl Entities for Store {
    fn declare_exchange(&self, exchange: &Exchange, passive: bool) -> Result<()> {
        if exchange.is_default() {
            return Ok(());
        }
        let dir = self.exchange_dir(&exchange.name)?;
        if passive {
            return self.exchange_kind(&exchange.name).map(|_| ());
        }
        let bindings = dir.join("bindings");
        fs::create_dir_all(&bindings).map_err(|e| io_error(format!("cannot create {}", bindings.display()), e))?;
        if !self.create_once(&dir.join("kind"), exchange.kind.as_str().as_bytes())? {
            let kind = self.exchange_kind(&exchange.name)?;
            if kind != exchange.kind {
                return Err(Error::precondition(format!(
                    "exchange '{}' exists with type {kind}, not {}",
                    exchange.name, exchange.kind
                )));
            }
        }
        Ok(())
    }

    fn delete_exchange(&self, name: &str, if_unused: bool) -> Result<()> {
        self.exchange_kind(name)?;
        let dir = self.exchange_dir(name)?;
        if if_unused && !self.bindings(name)?.is_empty() {
            return Err(Error::precondition(format!("exchange '{name}' is in use")));
        }
        remove_tree(&dir)
    }

    /// Routes a message (see [`Store::route`]) and wakes this process's connections to the root.
    fn publish(&self, message: Message, exchange: &str, routing_key: &str) -> Result<()> {
        if self.route(&message, exchange, routing_key)? > 0 {
            notify::wake_root(self.root());
        }
        Ok(())
    }

    fn declare_queue(&self, queue: &Queue, passive: bool) -> Result<QueueInfo> {
        let dir = self.queue_dir(&queue.name)?;
        if !passive {
            for sub in ["ready", "claimed"] {
                let d = dir.join(sub);
                fs::create_dir_all(&d).map_err(|e| io_error(format!("cannot create {}", d.display()), e))?;
            }
            let meta = QueueMeta::of(queue);
            if meta != QueueMeta::default() && !self.create_once(&dir.join("meta.json"), &meta.to_json())? {
                let existing = self.queue_meta(&dir);
                if existing != meta {
                    return Err(Error::precondition(format!(
                        "queue '{}' exists with other arguments (max priority {:?}, message ttl {:?} ms)",
                        queue.name, existing.max_priority, existing.message_ttl_ms
                    )));
                }
            }
            self.restore_orphans(&queue.name, &dir);
        }
        let count = self.ready(&queue.name)?.len() as u64;
        Ok(QueueInfo::new(queue.name.clone(), count, 0))
    }

    fn purge_queue(&self, queue: &str) -> Result<u64> {
        let ready = self.queue_dir(queue)?.join("ready");
        let mut n = 0;
        for name in self.ready(queue)? {
            if fs::remove_file(ready.join(name.file_name())).is_ok() {
                n += 1;
            }
        }
        Ok(n)
    }

    fn delete_queue(&self, name: &str, if_unused: bool, if_empty: bool) -> Result<u64> {
        if if_unused {
            return Err(Error::unsupported(
                "the filesystem transport cannot see consumers of other processes: delete_queue(if_unused) is not supported",
            ));
        }
        let count = self.ready(name)?.len() as u64;
        if if_empty && count > 0 {
            return Err(Error::precondition(format!("queue '{name}' is not empty")));
        }
        let prefix = format!("{}~", names::encode("queue", name)?);
        let exchanges = self.root.join("exchanges");
        for ex in list(&exchanges).map_err(|e| io_error("cannot list exchanges", e))? {
            let bindings = exchanges.join(ex).join("bindings");
            for b in list(&bindings).unwrap_or_default() {
                if b.starts_with(&prefix) {
                    let _ = fs::remove_file(bindings.join(b));
                }
            }
        }
        remove_tree(&self.queue_dir(name)?)?;
        Ok(count)
    }

    fn bind_queue(&self, queue: &str, exchange: &str, key: &str, args: &FieldTable) -> Result<()> {
        if !self.queue_exists(queue)? {
            return Err(no_queue(queue));
        }
        self.exchange_kind(exchange)?;
        let body = json!({"queue": queue, "routing_key": key, "arguments": args}).to_string();
        self.write_atomic(&self.binding_path(queue, exchange, key, args)?, body.as_bytes())
    }

    fn unbind_queue(&self, queue: &str, exchange: &str, key: &str, args: &FieldTable) -> Result<()> {
        self.exchange_kind(exchange)?;
        match fs::remove_file(self.binding_path(queue, exchange, key, args)?) {
            Err(e) if !not_found(&e) => Err(io_error("cannot remove binding", e)),
            _ => Ok(()),
        }
    }
}

/// The names in a directory (skipping names that are not UTF-8, which this transport never writes).
fn list(dir: &Path) -> io::Result<Vec<String>> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir)? {
        if let Ok(name) = entry?.file_name().into_string() {
            out.push(name);
        }
    }
    Ok(out)
}

/// Removes a directory tree; files appearing meanwhile (a publish racing the delete) are retried.
fn remove_tree(dir: &Path) -> Result<()> {
    let mut last = None;
    for _ in 0..5 {
        match fs::remove_dir_all(dir) {
            Ok(()) => return Ok(()),
            Err(e) if not_found(&e) => return Ok(()),
            Err(e) => last = Some(e),
        }
    }
    Err(match last {
        Some(e) => io_error(format!("cannot remove {}", dir.display()), e),
        None => Error::connection(format!("cannot remove {}", dir.display())),
    })
}

/// Whether a process is running (on Linux, by `/proc`; elsewhere assumed, so nothing is taken from it).
fn process_alive(pid: u32) -> bool {
    let proc = Path::new("/proc");
    if cfg!(target_os = "linux") && proc.join("self").exists() {
        proc.join(pid.to_string()).exists()
    } else {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A store in a directory of its own, removed when dropped.
    struct Temp(Store);

    impl Temp {
        fn new(what: &str) -> Temp {
            let dir =
                std::env::temp_dir().join(format!("kombu-fs-unit-{what}-{}-{}", std::process::id(), names::next_seq()));
            Temp(Store::open(&dir).unwrap())
        }
    }

    impl Drop for Temp {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(self.0.root());
        }
    }

    fn one_message(store: &Store, queue: &str) -> MessageName {
        store.declare_queue(&Queue::new(queue), false).unwrap();
        assert_eq!(store.route(&Message::new("m"), "", queue).unwrap(), 1);
        let ready = store.ready(queue).unwrap();
        assert_eq!(ready.len(), 1);
        ready[0]
    }

    #[test]
    fn only_one_claim_wins() {
        let t = Temp::new("claim");
        let name = one_message(&t.0, "q");
        let (claim, message) = t.0.claim("q", &name, "1.1").unwrap().expect("first claim");
        assert_eq!(&message.body[..], b"m");
        assert!(t.0.claim("q", &name, "1.2").unwrap().is_none(), "a second claim of the same file won");
        t.0.requeue(&claim).unwrap();
        let back = t.0.ready("q").unwrap();
        assert_eq!(back.len(), 1);
        assert!(back[0].redelivered && back[0].seq == name.seq);
        let (claim, message) = t.0.claim("q", &back[0], "1.2").unwrap().unwrap();
        assert!(message.delivery_info.redelivered);
        t.0.ack(&claim).unwrap();
        assert!(t.0.ready("q").unwrap().is_empty());
        assert_eq!(list(&t.0.queue_dir("q").unwrap().join("claimed")).unwrap().len(), 0);
    }

    #[test]
    fn messages_claimed_by_a_dead_process_come_back() {
        let t = Temp::new("orphans");
        let name = one_message(&t.0, "q");
        // No process has this id (Linux pids stay below 2^22).
        let (claim, _) = t.0.claim("q", &name, "99999999.1").unwrap().unwrap();
        let mine = one_message(&t.0, "other");
        let (mine_claim, _) = t.0.claim("other", &mine, &format!("{}.1", std::process::id())).unwrap().unwrap();
        t.0.declare_queue(&Queue::new("q"), false).unwrap();
        t.0.declare_queue(&Queue::new("other"), false).unwrap();
        assert!(t.0.ready("other").unwrap().is_empty(), "a claim of this live process was taken back");
        let ready = t.0.ready("q").unwrap();
        if cfg!(target_os = "linux") {
            assert_eq!(ready.len(), 1, "the dead process's message is not back");
            assert!(ready[0].redelivered && ready[0].seq == name.seq);
            assert!(!claim.path.exists() && mine_claim.path.exists());
        }
    }

    #[test]
    fn a_file_that_is_not_a_message_is_set_aside() {
        let t = Temp::new("bad");
        let name = one_message(&t.0, "q");
        let dir = t.0.queue_dir("q").unwrap();
        fs::write(dir.join("ready").join(name.file_name()), "{not json").unwrap();
        assert!(t.0.claim("q", &name, "1.1").unwrap().is_none());
        assert!(t.0.ready("q").unwrap().is_empty());
        assert_eq!(list(&dir.join("bad")).unwrap(), vec![name.file_name()]);
    }

    #[test]
    fn routing_follows_bindings_on_disk() {
        let t = Temp::new("routing");
        let ex = Exchange::topic("logs");
        t.0.declare_exchange(&ex, false).unwrap();
        t.0.declare_queue(&Queue::new("all"), false).unwrap();
        t.0.declare_queue(&Queue::new("errors"), false).unwrap();
        let none = FieldTable::new();
        t.0.bind_queue("all", "logs", "#", &none).unwrap();
        t.0.bind_queue("errors", "logs", "*.error", &none).unwrap();
        assert_eq!(t.0.route(&Message::new("x"), "logs", "db.error").unwrap(), 2);
        assert_eq!(t.0.route(&Message::new("y"), "logs", "db.info").unwrap(), 1);
        t.0.unbind_queue("all", "logs", "#", &none).unwrap();
        assert_eq!(t.0.route(&Message::new("z"), "logs", "db.info").unwrap(), 0);
        assert_eq!(t.0.delete_queue("errors", false, false).unwrap(), 1);
        assert_eq!(t.0.route(&Message::new("w"), "logs", "db.error").unwrap(), 0);
        let e = t.0.declare_exchange(&Exchange::direct("logs"), false).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Precondition);
        assert_eq!(t.0.route(&Message::new("v"), "nowhere", "k").unwrap_err().kind(), ErrorKind::NotFound);
    }
}
