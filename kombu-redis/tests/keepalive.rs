//! `socket_keepalive` reaches the sockets: with it (the default) every connection of the process to the
//! server has TCP keepalive on (`ss` shows a keepalive timer), without it none has.

use std::process::Command;

use kombu_core::{Connection, Queue};

kombu_core::register_transport!(kombu_redis::DESCRIPTOR);

/// For each of this process's established connections to port 6379: whether it has a keepalive timer.
fn keepalive_of_our_sockets() -> Vec<bool> {
    let out = Command::new("ss").args(["-tnpo", "state", "established", "( dport = :6379 )"]).output().expect("ss");
    let me = format!("pid={},", std::process::id());
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.contains(&me))
        .map(|l| l.contains("timer:(keepalive"))
        .collect()
}

fn open(keepalive: bool) -> Connection {
    let conn = Connection::open(&format!("redis://127.0.0.1:6379/0?socket_keepalive={keepalive}")).expect("open");
    let ch = conn.channel().expect("channel");
    let q = Queue::new(format!("keepalive.{}.{keepalive}", std::process::id())).durable(false);
    ch.declare(&q).expect("declare");
    ch.delete_queue(&q.name, false, false).expect("delete");
    conn
}

#[test]
fn socket_keepalive_is_set_on_the_sockets_or_not() {
    let off = open(false);
    let seen = keepalive_of_our_sockets();
    assert!(!seen.is_empty(), "no connection of this process to redis found with ss");
    assert!(seen.iter().all(|k| !k), "socket_keepalive=false, yet a socket has keepalive: {seen:?}");
    off.close().expect("close");
    drop(off);
    let _on = open(true);
    let seen = keepalive_of_our_sockets();
    assert!(!seen.is_empty(), "no connection of this process to redis found with ss");
    assert!(seen.iter().all(|k| *k), "socket_keepalive=true, yet a socket has no keepalive: {seen:?}");
}
