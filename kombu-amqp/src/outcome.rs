//! What a publish's outcome says: the errors of publishes, sent or not, confirmed or refused, with
//! whether the message may have reached the broker ([`Error::may_have_reached_broker`]).

use kombu_core::{Error, Result};
use lapin::Confirmation;

use crate::errors::from_lapin;

/// The error for a message the broker returned (mandatory, and no queue took it).
pub(crate) fn returned(msg: &lapin::message::BasicReturnMessage) -> Error {
    Error::not_found(format!(
        "message returned by the broker: {} {} (exchange '{}', routing key '{}')",
        msg.reply_code, msg.reply_text, msg.delivery.exchange, msg.delivery.routing_key
    ))
}

/// An error of an earlier pipelined operation, reported by a later call: it says nothing of whether the
/// later call's message reached the broker (it was not sent).
pub(crate) fn earlier(e: Error) -> Error {
    e.with_may_have_reached_broker(false)
}

/// An error of a publish after lapin took it: a lost connection may have come after the frames were
/// written; a refusal (a closed channel, the broker's answer) means the message is not on the broker.
pub(crate) fn lost_or_refused(e: Error) -> Error {
    let maybe = e.is_recoverable();
    e.with_may_have_reached_broker(maybe)
}

/// A publish lapin failed to send: maybe on the broker if others of its batch were sent or the link
/// failed under it.
pub(crate) fn not_sent(e: lapin::Error, any_sent: bool) -> Error {
    let e = from_lapin(e, "basic.publish");
    let maybe = any_sent || e.is_recoverable();
    e.with_may_have_reached_broker(maybe)
}

/// A sent publish whose confirm failed: lost on the way (maybe there), or refused by the broker (not
/// there, but for a batch the other messages may be).
pub(crate) fn unconfirmed(e: lapin::Error, several: bool) -> Error {
    let e = from_lapin(e, "basic.publish");
    let maybe = several || e.is_recoverable();
    e.with_may_have_reached_broker(maybe)
}

/// The broker's answer to one publish of a batch of `several` or one.
pub(crate) fn confirmed(answer: Confirmation, several: bool) -> Result<()> {
    match answer {
        Confirmation::Ack(Some(msg)) | Confirmation::Nack(Some(msg)) => {
            Err(returned(&msg).with_may_have_reached_broker(several))
        }
        Confirmation::Nack(None) => Err(nacked()),
        Confirmation::Ack(None) | Confirmation::NotRequested => Ok(()),
    }
}

/// The broker nacked a message: RabbitMQ does so on an internal error, when some of the queues may have
/// taken it, so whether it is on the broker is unknown.
pub(crate) fn nacked() -> Error {
    Error::channel("the broker refused (nacked) a published message").with_may_have_reached_broker(true)
}
