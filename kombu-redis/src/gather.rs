//! Confirmed publishes from several threads on one channel, sent together: while one thread waits for
//! the replies of what it wrote, the confirmed publishes other threads make gather behind it, and the
//! first of them to wake sends them all in one write and reads all their replies (a group commit).
//!
//! Without this, a channel's [`Publisher`] is held for a whole round trip per confirmed publish, so the
//! threads of a program that share a connection (and so its default channel, as `Producer::new` does)
//! took turns: 16 threads made about as many confirmed publishes as one. Each thread still returns only
//! once its own publish's reply is read, and unconfirmed publishes go straight to the publisher as before.
//!
//! A group's publishes share one outcome: when any of them fails, every thread of the group gets the
//! error, marked [`may_have_reached_broker`](kombu_core::Error::may_have_reached_broker) (others of the
//! group may have run) unless the group was that one publish alone.

use std::sync::{Condvar, Mutex, MutexGuard};

use kombu_core::{Error, Result};

use crate::connection::lock;

/// The confirmed publishes of one channel waiting to be sent (each a list of `C`, its commands), and the
/// outcomes of those sent.
pub(crate) struct Gather<C> {
    state: Mutex<Waiting<C>>,
    /// Signalled when a group's outcomes are in (and no group is being sent).
    settled: Condvar,
}

struct Waiting<C> {
    /// A thread is sending a group now.
    sending: bool,
    /// Publishes for the next group: a ticket each, with its commands.
    queue: Vec<(u64, Vec<C>)>,
    next_ticket: u64,
    /// Outcomes of sent publishes that their threads have not taken yet.
    outcomes: Vec<(u64, Result<()>)>,
}

impl<C> Default for Gather<C> {
    fn default() -> Self {
        let waiting = Waiting { sending: false, queue: Vec::new(), next_ticket: 0, outcomes: Vec::new() };
        Gather { state: Mutex::new(waiting), settled: Condvar::new() }
    }
}

impl<C> Gather<C> {
    /// Sends `commands` (one confirmed publish; none if it routes nowhere) with the other confirmed
    /// publishes waiting now, through `send_group` (which writes them all and reads their replies),
    /// and returns once that is done: by this thread, or by another that gathered this one's commands.
    pub(crate) fn send(&self, commands: Vec<C>, send_group: impl Fn(&[C]) -> Result<()>) -> Result<()> {
        let mut waiting = self.waiting();
        let ticket = waiting.next_ticket;
        waiting.next_ticket += 1;
        waiting.queue.push((ticket, commands));
        loop {
            if let Some(at) = waiting.outcomes.iter().position(|(t, _)| *t == ticket) {
                return waiting.outcomes.swap_remove(at).1;
            }
            if waiting.sending {
                waiting = self.settled.wait(waiting).unwrap_or_else(|e| e.into_inner());
                continue;
            }
            waiting.sending = true;
            let group = std::mem::take(&mut waiting.queue);
            drop(waiting);
            let tickets = group.iter().map(|(t, _)| *t).collect();
            let mut sent = Sent { gather: self, tickets, own: ticket, outcome: None };
            let commands: Vec<C> = group.into_iter().flat_map(|(_, c)| c).collect();
            sent.outcome = Some(send_group(&commands));
            drop(sent);
            waiting = self.waiting();
        }
    }

    fn waiting(&self) -> MutexGuard<'_, Waiting<C>> {
        lock(&self.state)
    }
}

/// A group being sent: when dropped, its outcome goes to each of its publishes and the threads waiting
/// are woken, also if the sending thread panicked (then each publish of the group fails).
struct Sent<'a, C> {
    gather: &'a Gather<C>,
    tickets: Vec<u64>,
    /// The sending thread's own ticket (its outcome is not kept when the thread panicked: none takes it).
    own: u64,
    outcome: Option<Result<()>>,
}

impl<C> Drop for Sent<'_, C> {
    fn drop(&mut self) {
        let outcome =
            self.outcome.take().unwrap_or_else(|| Err(Error::state("the thread sending this publish panicked")));
        let alone = self.tickets.len() == 1;
        if std::thread::panicking() {
            self.tickets.retain(|t| *t != self.own);
        }
        let mut waiting = self.gather.waiting();
        match outcome {
            Ok(()) => waiting.outcomes.extend(self.tickets.iter().map(|t| (*t, Ok(())))),
            Err(e) if alone => waiting.outcomes.extend(self.tickets.first().map(|t| (*t, Err(e)))),
            Err(e) => {
                let kind = e.kind();
                let mut text = e.message().to_owned();
                for cause in e.chain().skip(1) {
                    text = format!("{text}: {cause}");
                }
                let mut first = Some(e.with_may_have_reached_broker(true));
                for t in &self.tickets {
                    let e = first
                        .take()
                        .unwrap_or_else(|| Error::new(kind, text.clone()).with_may_have_reached_broker(true));
                    waiting.outcomes.push((*t, Err(e)));
                }
            }
        }
        waiting.sending = false;
        drop(waiting);
        self.gather.settled.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex};
    use std::time::{Duration, Instant};

    use super::*;

    impl<C> Gather<C> {
        fn queued(&self) -> usize {
            self.waiting().queue.len()
        }
    }

    /// Holds the first group's send until `n` more publishes wait behind it; records every group.
    struct Bench {
        gather: Gather<u32>,
        groups: Mutex<Vec<Vec<u32>>>,
        first: AtomicBool,
        behind: usize,
    }

    impl Bench {
        fn new(behind: usize) -> Arc<Bench> {
            let groups = Mutex::new(Vec::new());
            Arc::new(Bench { gather: Gather::default(), groups, first: AtomicBool::new(true), behind })
        }

        fn send(&self, commands: Vec<u32>, fail: bool) -> Result<()> {
            self.gather.send(commands, |group| {
                if self.first.swap(false, Ordering::SeqCst) {
                    let deadline = Instant::now() + Duration::from_secs(10);
                    while self.gather.queued() < self.behind {
                        assert!(Instant::now() < deadline, "the other publishes never queued");
                        std::thread::sleep(Duration::from_millis(1));
                    }
                } else if group.contains(&99) {
                    panic!("sending a group");
                }
                self.groups.lock().expect("groups").push(group.to_vec());
                if fail && group.len() > 1 {
                    return Err(Error::channel("publish refused by redis: WRONGTYPE"));
                }
                Ok(())
            })
        }

        /// Starts the first publish, then `others` from a thread each once it is out.
        fn run(self: &Arc<Self>, others: Vec<Vec<u32>>, fail: bool) -> Vec<std::thread::Result<Result<()>>> {
            let first = {
                let bench = self.clone();
                std::thread::spawn(move || bench.send(vec![1], fail))
            };
            while self.first.load(Ordering::SeqCst) {
                std::thread::yield_now();
            }
            let rest: Vec<_> = others
                .into_iter()
                .map(|c| {
                    let bench = self.clone();
                    std::thread::spawn(move || bench.send(c, fail))
                })
                .collect();
            let mut outcomes = vec![first.join()];
            outcomes.extend(rest.into_iter().map(|t| t.join()));
            outcomes
        }
    }

    #[test]
    fn publishes_made_while_a_group_is_out_go_together_in_the_next() {
        let bench = Bench::new(3);
        let outcomes = bench.run(vec![vec![2], vec![3, 4], vec![]], false);
        assert!(outcomes.iter().all(|o| matches!(o, Ok(Ok(())))), "{outcomes:?}");
        let mut groups = bench.groups.lock().unwrap().clone();
        assert_eq!(groups.len(), 2, "{groups:?}");
        groups[1].sort();
        assert_eq!(groups, [vec![1], vec![2, 3, 4]]);
    }

    #[test]
    fn a_failed_group_fails_each_of_its_publishes_as_maybe_sent_and_one_alone_as_it_was() {
        let bench = Bench::new(2);
        let outcomes = bench.run(vec![vec![2], vec![3]], true);
        assert!(matches!(outcomes[0], Ok(Ok(()))));
        for o in &outcomes[1..] {
            let Ok(Err(e)) = o else { panic!("{o:?}") };
            assert_eq!(e.kind(), kombu_core::ErrorKind::Channel);
            assert!(e.to_string().contains("WRONGTYPE"), "{e}");
            assert!(e.may_have_reached_broker(), "the other publish of the group ran: {e}");
        }
        let gather: Gather<u32> = Gather::default();
        let e = gather.send(vec![7], |_| Err(Error::channel("refused"))).unwrap_err();
        assert!(!e.may_have_reached_broker(), "a group of one keeps its own outcome");
    }

    #[test]
    fn a_thread_that_panics_sending_a_group_fails_the_others_of_it_and_the_next_goes_on() {
        let bench = Bench::new(2);
        let outcomes = bench.run(vec![vec![99], vec![3]], false);
        assert!(matches!(outcomes[0], Ok(Ok(()))));
        let panicked = outcomes[1..].iter().filter(|o| o.is_err()).count();
        let failed: Vec<String> =
            outcomes[1..].iter().filter_map(|o| o.as_ref().ok()?.as_ref().err()).map(|e| e.to_string()).collect();
        assert_eq!(panicked, 1, "{outcomes:?}");
        assert_eq!(failed.len(), 1, "{outcomes:?}");
        assert!(failed[0].contains("panicked"), "{failed:?}");
        assert!(matches!(bench.send(vec![5], false), Ok(())));
        assert!(bench.gather.waiting().outcomes.is_empty(), "an outcome no thread will take was kept");
    }
}
