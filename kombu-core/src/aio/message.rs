//! The async [`Message`]: a received message whose settling is awaited.

use std::ops::Deref;

use crate::error::Result;
use crate::message::MessageState;

/// A message received through the async API. It derefs to the [`crate::Message`] (body, headers,
/// properties, `decode`); settling it is awaited. Clones are the same delivery: only the first settle of
/// any clone goes to the broker.
#[derive(Debug, Clone, PartialEq)]
// Boxed: a delivery moves through the inbox and the stream's layers as a pointer, not 400-odd bytes.
pub struct Message(pub(crate) Box<crate::Message>);

impl Deref for Message {
    type Target = crate::Message;
    fn deref(&self) -> &crate::Message {
        &self.0
    }
}

impl From<Message> for crate::Message {
    fn from(m: Message) -> crate::Message {
        *m.0
    }
}

impl Message {
    /// The message itself, for the blocking API.
    pub fn into_inner(self) -> crate::Message {
        *self.0
    }

    /// Acknowledges the message: when this resolves, the acknowledgement is done, as for the blocking
    /// [`crate::Message::ack`]. A future dropped before it resolves leaves the message settled here; if
    /// its ack was not sent, the broker delivers the message again once its channel closes.
    pub async fn ack(&self) -> Result<()> {
        self.settle(MessageState::Acked, false).await
    }

    /// Rejects the message; with `requeue` it goes back to its queue, otherwise it is dropped or
    /// dead-lettered by the broker.
    pub async fn reject(&self, requeue: bool) -> Result<()> {
        let to = if requeue { MessageState::Requeued } else { MessageState::Rejected };
        self.settle(to, requeue).await
    }

    /// Rejects the message back to its queue.
    pub async fn requeue(&self) -> Result<()> {
        self.reject(true).await
    }

    async fn settle(&self, to: MessageState, requeue: bool) -> Result<()> {
        let (channel, state) = self.0.claim(to)?;
        let tag = &self.0.delivery_info.delivery_tag;
        let acked = to == MessageState::Acked;
        let done = match channel.nonblocking() {
            Some(ch) if ch.in_place() => {
                tokio::task::consume_budget().await;
                if acked {
                    channel.ack(tag)
                } else {
                    channel.reject(tag, requeue)
                }
            }
            Some(ch) if acked => ch.ack(tag).await,
            Some(ch) => ch.reject(tag, requeue).await,
            None => {
                let (ch, tag) = (channel.clone(), tag.clone());
                super::blocking(move || if acked { ch.ack(&tag) } else { ch.reject(&tag, requeue) }).await
            }
        };
        if done.is_err() {
            state.store(MessageState::Received as u8, std::sync::atomic::Ordering::Release);
        }
        done
    }
}
