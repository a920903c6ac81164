//! The async link's reply matching, without a server.

use super::*;

#[test]
fn refusals_are_found_inside_transactions() {
    assert_eq!(refusal(&Frame::Error("WRONGTYPE x".into())).as_deref(), Some("WRONGTYPE x"));
    let exec = Frame::Array(vec![Frame::Integer(1), Frame::Error("OOM".into())]);
    assert_eq!(refusal(&exec).as_deref(), Some("OOM"));
    assert_eq!(refusal(&Frame::SimpleString(b"OK".to_vec())), None);
}

fn request(id: u64, replies: usize, awaited: bool) -> Request {
    Request { first: id, id, what: "publish", packed: Bytes::new(), replies, got: 0, refused: None, awaited }
}

#[test]
fn replies_complete_requests_in_order() {
    let mut w = Wire::default();
    w.queue.push_back(request(0, 1, true));
    w.queue.push_back(request(1, 4, false));
    w.queue.push_back(request(2, 1, true));
    w.inbuf.extend(b":1\r\n+OK\r\n+QUEUED\r\n+QUEUED\r\n*2\r\n:1\r\n-WRONGTYPE bad\r\n-ERR no\r\n");
    assert!(w.take_replies().expect("replies"));
    assert!(w.queue.is_empty());
    assert!(matches!(w.outcomes.remove(&0), Some(Ok(()))));
    let refused = w.outcomes.remove(&2).and_then(|r| r.err()).map(|e| e.to_string());
    assert!(refused.is_some_and(|t| t.contains("ERR no")), "the awaited one's refusal");
    let deferred = w.deferred.take().map(|e| e.to_string());
    assert!(deferred.is_some_and(|t| t.contains("WRONGTYPE")), "the unconfirmed one's refusal is kept");
}

#[test]
fn a_partial_reply_waits_for_the_rest() {
    let mut w = Wire::default();
    w.queue.push_back(request(0, 1, true));
    w.inbuf.extend(b"$5\r\nhel");
    assert!(w.take_replies().expect("partial"));
    assert_eq!(w.queue.len(), 1);
    w.inbuf.extend(b"lo\r\n");
    assert!(w.take_replies().expect("whole"));
    assert!(w.queue.is_empty());
}

#[test]
fn noscript_loads_the_scripts_and_sends_again() {
    let mut w = Wire::default();
    let mut r = request(0, 1, true);
    r.packed = Bytes::from_static(b"*1\r\n$4\r\nPING\r\n");
    w.queue.push_back(r);
    w.inbuf.extend(b"-NOSCRIPT No matching script\r\n");
    assert!(w.take_replies().expect("replies"));
    assert_eq!(w.queue.len(), 2, "the scripts, then the request again");
    assert_eq!(w.queue.back().map(|r| r.id), Some(0));
    assert!(w.outcomes.is_empty());
    assert!(w.out.ends_with(b"PING\r\n"));
}

#[test]
fn an_unasked_reply_is_an_error() {
    let mut w = Wire::default();
    w.inbuf.extend(b"+OK\r\n");
    assert!(w.take_replies().is_err());
}

fn lpush(payload: &str) -> Joinable {
    run::tests::lpush("q", payload)
}

#[test]
fn publishes_in_flight_share_a_command_and_each_has_its_outcome() {
    let mut w = Wire::default();
    let (first, leads) = w.join(lpush("1"), true);
    assert!(leads, "nothing else unanswered: the caller sees that it goes");
    w.seal();
    let (second, leads) = w.join(lpush("2"), true);
    assert!(!leads);
    let (third, _) = w.join(lpush("3"), true);
    assert_eq!(w.queue.len(), 1, "the second and third gather");
    // Another request closes the run first: the server sees the calls' order.
    let ack = w.push("ack", Bytes::from_static(b"*1\r\n$4\r\nPING\r\n"), 1, true);
    assert_eq!(w.queue.len(), 3);
    let joined = b"*4\r\n$5\r\nLPUSH\r\n$1\r\nq\r\n$1\r\n2\r\n$1\r\n3\r\n*1\r\n$4\r\nPING\r\n";
    assert!(w.out.ends_with(joined), "{:?}", String::from_utf8_lossy(&w.out));
    w.inbuf.extend(b":1\r\n-WRONGTYPE no\r\n+PONG\r\n");
    assert!(w.take_replies().expect("replies"));
    assert!(matches!(w.outcomes.remove(&first), Some(Ok(()))));
    for id in [second, third] {
        let refused = w.outcomes.remove(&id).and_then(|r| r.err()).map(|e| e.to_string());
        assert!(refused.is_some_and(|t| t.contains("WRONGTYPE")), "each publish the command carried");
    }
    assert!(matches!(w.outcomes.remove(&ack), Some(Ok(()))));
}

#[test]
fn a_flush_waits_for_publishes_still_gathering() {
    let mut w = Wire::default();
    w.join(lpush("1"), false);
    w.seal();
    let (gathering, _) = w.join(lpush("2"), false);
    w.inbuf.extend(b":1\r\n");
    assert!(w.take_replies().expect("reply"));
    assert!(w.reached(Until::AllUpTo(gathering)).is_none(), "the second is not sent yet");
    w.seal();
    w.inbuf.extend(b":2\r\n");
    assert!(w.take_replies().expect("reply"));
    assert!(w.reached(Until::AllUpTo(gathering)).is_some());
}

#[test]
fn a_run_on_an_idle_link_goes_once_it_is_long_enough() {
    let mut w = Wire::default();
    let (_, leads) = w.join(lpush("0"), true);
    assert!(leads);
    for i in 1..LEAD_RUN - 1 {
        let (_, leads) = w.join(lpush(&i.to_string()), true);
        assert!(leads, "still gathering on an idle link");
    }
    assert!(w.queue.is_empty());
    let (last, leads) = w.join(lpush("last"), true);
    assert!(!leads, "the run went with this one");
    assert_eq!(w.queue.len(), 1, "the first run is on its way");
    assert_eq!(w.queue.front().map(|r| (r.first, r.id)), Some((0, last)));
    let (next, leads) = w.join(lpush("next"), true);
    assert!(!leads, "behind the first, the next gather until its reply");
    assert_eq!(w.open.as_ref().map(|o| (o.first, o.count())), Some((next, 1)));
}

#[test]
fn a_run_closed_by_a_publish_elsewhere_goes_at_once() {
    use futures_util::FutureExt;
    let mut w = Wire::default();
    let (_, leads) = w.join(lpush("1"), true);
    assert!(leads);
    assert!(w.kick.notified().now_or_never().is_none(), "nothing to write yet");
    let other = run::tests::lpush("elsewhere", "2");
    let (_, leads) = w.join(other, true);
    assert!(!leads, "the first run is unanswered now");
    assert_eq!(w.queue.len(), 1);
    // No socket here: the closed run waits in `out`, and the reader task was told to write it.
    assert!(!w.out.is_empty());
    assert!(w.kick.notified().now_or_never().is_some(), "the reader task was told");
}
