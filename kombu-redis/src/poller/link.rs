//! The poller's link to the server: both sockets opened and authenticated, registered with the Hub,
//! the queue of replies they owe, and dropping them (what unanswered requests took is put back).

use std::collections::{BTreeSet, VecDeque};
use std::os::fd::AsRawFd;

use kombu_core::hub::{Interest, Sources, Token};
use kombu_core::transport::Delivery;
use kombu_core::{Error, Result};

use super::pop::Pop;
use super::RedisPoller;
use crate::dial::Stream;
use crate::resp::{error_text, pack, Frame, FrameBuf, INVALIDATE};
use crate::restore;
use crate::scripts::POP;
use crate::socket::{auth_commands, handshake, nonblocking, Sock};

/// What a reply on the command socket answers.
pub(super) enum Pending {
    Pop(Pop),
    Tracking,
    Pong,
    Ignore,
}

/// Both sockets of a live link.
pub(super) struct Link {
    pub(super) sub: Sock,
    pub(super) cmd: Sock,
    pub(super) pending: VecDeque<Pending>,
    pub(super) subscribed: BTreeSet<String>,
    pub(super) tracked: Vec<String>,
    pub(super) tracking_ok: bool,
    /// The pub/sub connection's id, where tracking invalidations are redirected.
    pub(super) client_id: i64,
    /// Health checks the command socket has not answered.
    pub(super) pongs_missing: u32,
    /// Health checks since the pub/sub socket last said anything.
    pub(super) sub_silent: u32,
    /// The server's address (with Sentinel, the master's when connected).
    pub(super) addr: String,
}

/// Sockets connected by `prepare`: pub/sub, command, and the pub/sub connection's id (where tracking
/// invalidations go) if the server told it.
pub(super) struct Prepared {
    sub: Stream,
    cmd: Stream,
    client_id: Option<i64>,
    addr: String,
}

fn sock(stream: Stream, token: Token) -> Sock {
    Sock { stream, token, rbuf: FrameBuf::new(), wbuf: Vec::new(), writable_watched: false }
}

impl RedisPoller {
    /// Opens and authenticates both sockets (blocking, with the connect timeout).
    pub(super) fn open_sockets(&self) -> Result<Prepared> {
        let o = &self.shared.opts;
        // The pub/sub socket: its id (where tracking invalidations are sent; a server or ACL that refuses
        // CLIENT ID means polling instead), then subscribed to the invalidations.
        let mut sub_cmds = auth_commands(o);
        sub_cmds.push(pack("CLIENT", &["ID"]));
        sub_cmds.push(pack("SUBSCRIBE", &[INVALIDATE]));
        let id_at = sub_cmds.len() - 2;
        let dialer = &self.shared.dialer;
        let (sub, replies, sub_addr) = handshake(dialer, &sub_cmds, &[id_at])?;
        let client_id = match replies.get(id_at) {
            Some(Frame::Integer(id)) => Some(*id),
            _ => None,
        };
        let mut cmd_cmds = auth_commands(o);
        cmd_cmds.push(pack("SELECT", &[o.db.to_string()]));
        cmd_cmds.push(pack("SCRIPT", &["LOAD", POP]));
        let load_at = cmd_cmds.len() - 1;
        let (cmd, _, addr) = handshake(dialer, &cmd_cmds, &[load_at])?;
        if addr != sub_addr {
            return Err(Error::connection(format!(
                "the master moved from {sub_addr} to {addr} while connecting (a failover under way?)"
            )));
        }
        nonblocking(&sub)?;
        nonblocking(&cmd)?;
        Ok(Prepared { sub, cmd, client_id, addr })
    }

    /// Registers the prepared sockets (preparing them here if `prepare` was not called).
    pub(super) fn connect(&mut self, sources: &mut Sources<'_>) -> Result<()> {
        let Prepared { sub, cmd, client_id, addr } = match self.prepared.take() {
            Some(p) => p,
            None => self.open_sockets()?,
        };
        let sub_token = sources.register_fd(sub.tcp().as_raw_fd(), Interest::READABLE)?;
        let cmd_token = match sources.register_fd(cmd.tcp().as_raw_fd(), Interest::READABLE) {
            Ok(t) => t,
            Err(e) => {
                let _ = sources.deregister_fd(sub.tcp().as_raw_fd(), sub_token);
                return Err(e);
            }
        };
        self.link = Some(Link {
            sub: sock(sub, sub_token),
            cmd: sock(cmd, cmd_token),
            pending: VecDeque::new(),
            subscribed: BTreeSet::new(),
            tracked: Vec::new(),
            tracking_ok: client_id.is_some() && self.shared.opts.client_tracking,
            client_id: client_id.unwrap_or(0),
            pongs_missing: 0,
            sub_silent: 0,
            addr,
        });
        self.reset_requests();
        Ok(())
    }

    /// Drops the link: unregisters its sockets and puts back what its unanswered requests took.
    pub(super) fn drop_link(&mut self, sources: &mut Sources<'_>) {
        let Some(link) = self.link.take() else { return };
        for s in [&link.sub, &link.cmd] {
            if let Err(e) = sources.deregister_fd(s.fd(), s.token) {
                tracing::debug!("deregistering a redis socket: {e:#}");
            }
        }
        let lost: Vec<String> = link
            .pending
            .iter()
            .filter_map(|p| match p {
                Pending::Pop(Pop { req, record: true, .. }) => Some(req.clone()),
                _ => None,
            })
            .collect();
        self.reset_requests();
        restore::recover_in_background(&self.shared, lost);
    }

    /// Queues a command on the command socket, with what its reply answers.
    pub(super) fn send(&mut self, bytes: Vec<u8>, pending: Pending) {
        if let Some(link) = self.link.as_mut() {
            link.cmd.wbuf.extend_from_slice(&bytes);
            link.pending.push_back(pending);
        }
    }

    /// One round of work: read both sockets, hand out deliveries, send what is due, write.
    pub(super) fn pump(&mut self, sources: &mut Sources<'_>, out: &mut Vec<Delivery>) -> Result<()> {
        self.read_sub(out)?;
        self.read_cmd(out)?;
        self.sync()?;
        if let Some(link) = self.link.as_mut() {
            link.cmd.flush(sources)?;
            link.sub.flush(sources)?;
        }
        Ok(())
    }

    /// Reads the command socket and hands each reply to what it answers.
    fn read_cmd(&mut self, out: &mut Vec<Delivery>) -> Result<()> {
        let mut frames = Vec::new();
        {
            let Some(link) = self.link.as_mut() else { return Ok(()) };
            link.cmd.fill()?;
            while let Some(frame) = link.cmd.rbuf.next_frame()? {
                let pending = link.pending.pop_front().unwrap_or(Pending::Ignore);
                frames.push((pending, frame));
            }
        }
        for (pending, frame) in frames {
            if let Some(e) = error_text(&frame).filter(|e| e.starts_with("READONLY")) {
                // A replica now (a failover moved the master): nothing it refused ran. The link is lost;
                // the driver connects again, to the master the sentinels name.
                return Err(Error::connection(format!(
                    "redis at {} refused a command as a replica now (failover?): {e}",
                    self.shared.dialer.address()
                )));
            }
            match pending {
                Pending::Pop(pop) => self.on_pop(pop, frame, out)?,
                Pending::Tracking => self.on_tracking(&frame),
                Pending::Pong => {
                    if let Some(l) = self.link.as_mut() {
                        l.pongs_missing = 0;
                    }
                }
                Pending::Ignore => {
                    if let Some(e) = error_text(&frame) {
                        tracing::warn!("redis refused a command: {e}");
                    }
                }
            }
        }
        Ok(())
    }
}
