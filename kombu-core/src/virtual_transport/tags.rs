//! Delivery tags of a channel that numbers its own deliveries: 1, 2, 3, ... (AMQP's rule, which the
//! memory and filesystem transports follow), and the one error for a tag the channel never gave.

use crate::{DeliveryTag, Error, Result};

/// Gives a channel's delivery tags in order, from 1.
///
/// ```
/// use kombu_core::DeliveryTag;
/// use kombu_core::virtual_transport::DeliveryTags;
///
/// let mut tags = DeliveryTags::default();
/// assert_eq!(tags.next_number(), 1);
/// assert_eq!(tags.next_tag(), DeliveryTag::Number(2));
/// ```
#[derive(Debug, Default, Clone)]
pub struct DeliveryTags {
    last: u64,
}

impl DeliveryTags {
    /// The next tag's number.
    pub fn next_number(&mut self) -> u64 {
        self.last += 1;
        self.last
    }

    /// The next tag.
    pub fn next_tag(&mut self) -> DeliveryTag {
        DeliveryTag::Number(self.next_number())
    }

    /// How many tags were given.
    pub fn given(&self) -> u64 {
        self.last
    }
}

/// The number of a tag this kind of channel gives, or the error for a tag it never gave.
pub fn tag_number(tag: &DeliveryTag) -> Result<u64> {
    match tag {
        DeliveryTag::Number(n) => Ok(*n),
        other => Err(unknown_tag(other)),
    }
}

/// The error for settling a tag the channel does not hold (never given, or settled already).
pub fn unknown_tag(tag: &DeliveryTag) -> Error {
    Error::precondition(format!("unknown delivery tag {tag}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;
    use std::sync::Arc;

    #[test]
    fn numbers_count_from_one() {
        let mut t = DeliveryTags::default();
        assert_eq!(t.given(), 0);
        assert_eq!([t.next_number(), t.next_number(), t.next_number()], [1, 2, 3]);
        assert_eq!(t.given(), 3);
    }

    #[test]
    fn text_tags_are_unknown() {
        assert_eq!(tag_number(&DeliveryTag::Number(7)).unwrap(), 7);
        let e = tag_number(&DeliveryTag::Text(Arc::from("abc"))).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Precondition);
        assert_eq!(e.to_string(), unknown_tag(&DeliveryTag::Text(Arc::from("abc"))).to_string());
        assert!(e.to_string().contains("abc"), "{e}");
    }
}
