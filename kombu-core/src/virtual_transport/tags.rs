//! Delivery tags of a channel that numbers its own deliveries: 1, 2, 3, ... (AMQP's rule, which the
//! memory and filesystem transports follow), and the one error for a tag the channel never gave.

use std::hash::{BuildHasher, Hasher};

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

/// Hashes delivery-tag numbers for the unacked map: they are sequential, so one multiply spreads them
/// well, where the default SipHash would cost far more per delivery and settle.
#[derive(Debug, Default, Clone, Copy)]
pub struct TagHasher;

impl BuildHasher for TagHasher {
    type Hasher = TagHash;
    fn build_hasher(&self) -> TagHash {
        TagHash(0)
    }
}

/// The hasher [`TagHasher`] builds (Fibonacci hashing).
#[derive(Debug, Default, Clone, Copy)]
pub struct TagHash(u64);

const GOLDEN: u64 = 0x9E37_79B9_7F4A_7C15;

impl Hasher for TagHash {
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(*b)).wrapping_mul(GOLDEN);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0 ^ n).wrapping_mul(GOLDEN);
    }
    fn finish(&self) -> u64 {
        self.0
    }
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
    fn tag_hashes_differ_for_neighbours() {
        let h = |n: u64| TagHasher.hash_one(n);
        let hashes: std::collections::HashSet<u64> = (0..1000).map(h).collect();
        assert_eq!(hashes.len(), 1000);
        assert_ne!(h(1) >> 57, h(2) >> 57, "the top bits (hashbrown's control bytes) differ");
        let mut bytes = TagHash::default();
        bytes.write(b"ab");
        assert_ne!(bytes.finish(), 0);
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
