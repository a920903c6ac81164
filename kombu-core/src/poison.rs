//! The poison policy: what a consumer does with a message it cannot handle (undecodable, refused by its
//! accept list, unreadable by the backend, or redelivered too often) when no error handler takes it.

use crate::error::Error;
use crate::message::Message;
use crate::transport::DeadLetter;

/// The default [`PoisonPolicy::max_redeliveries`]: as RabbitMQ's quorum queues' default delivery limit.
pub const DEFAULT_MAX_REDELIVERIES: u32 = 20;

/// What a [`Consumer`](crate::Consumer) does with a message it cannot handle, the same on every backend.
///
/// A message that does not decode, that the accept list refuses, or that the backend cannot read goes
/// to the consumer's [`on_error`](crate::Consumer::on_error) handler; with none, it is dead-lettered.
/// A message delivered more than [`max_redeliveries`](PoisonPolicy::max_redeliveries) times (where the
/// backend counts deliveries, see [`DeliveryInfo::redeliveries`](crate::DeliveryInfo::redeliveries)) is
/// dead-lettered before the callback sees it. Dead-lettering never drops a message: it goes to the
/// queue's dead-letter queue, `<queue>.dlq` unless [`dead_letter_suffix`](PoisonPolicy::dead_letter_suffix)
/// says otherwise, an ordinary queue that Python Kombu can read (on AMQP, to the queue's own
/// dead-letter exchange when it was declared with one). Every dead-lettering is logged at error level.
///
/// ```
/// use kombu_core::PoisonPolicy;
/// let p = PoisonPolicy::default();
/// assert_eq!(p.max_redeliveries(), Some(20));
/// assert_eq!(p.dead_letter_queue("jobs"), "jobs.dlq");
/// let p = PoisonPolicy::default().with_max_redeliveries(None).dead_letter_suffix(".poison");
/// assert_eq!((p.max_redeliveries(), p.dead_letter_queue("jobs").as_str()), (None, "jobs.poison"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoisonPolicy {
    max_redeliveries: Option<u32>,
    suffix: String,
}

impl Default for PoisonPolicy {
    fn default() -> Self {
        PoisonPolicy { max_redeliveries: Some(DEFAULT_MAX_REDELIVERIES), suffix: ".dlq".into() }
    }
}

impl PoisonPolicy {
    /// Dead-letters messages delivered more than `n` times before (`None`: never for that reason).
    pub fn with_max_redeliveries(mut self, n: Option<u32>) -> Self {
        self.max_redeliveries = n;
        self
    }

    /// The dead-letter queue of a queue is its name followed by `suffix` (default `.dlq`).
    pub fn dead_letter_suffix(mut self, suffix: impl Into<String>) -> Self {
        self.suffix = suffix.into();
        self
    }

    /// The redelivery limit.
    pub fn max_redeliveries(&self) -> Option<u32> {
        self.max_redeliveries
    }

    /// The dead-letter queue of `queue`.
    pub fn dead_letter_queue(&self, queue: &str) -> String {
        format!("{queue}{}", self.suffix)
    }

    /// Why `message` must not reach the callback because it came back too often, if it must not.
    pub(crate) fn over_limit(&self, message: &Message) -> Option<String> {
        let (max, n) = (self.max_redeliveries?, message.delivery_info.redeliveries?);
        (n > max).then(|| format!("delivered {} times, more than max_redeliveries ({max})", n + 1))
    }

    /// Dead-letters `message`, taken from `queue`, for `reason`; logs where it went. On failure the
    /// message stays unacknowledged (it is redelivered) and the error is returned.
    pub(crate) fn dead_letter(&self, message: &Message, queue: &str, reason: &str) -> Result<(), Error> {
        let to = self.dead_letter_queue(queue);
        let tag = &message.delivery_info.delivery_tag;
        match message.dead_letter(&DeadLetter::new(queue, &to, reason)) {
            Ok(()) => {
                tracing::error!("message {tag} from queue '{queue}' dead-lettered to '{to}': {reason}");
                Ok(())
            }
            Err(e) => {
                tracing::error!("message {tag} from queue '{queue}' could not be dead-lettered ({reason}): {e:#}");
                Err(e)
            }
        }
    }
}
