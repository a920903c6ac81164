//! Body compression, named in the `compression` header as Kombu does.

use std::io::{Read, Write};
use std::sync::{Arc, OnceLock, RwLock};

use bytes::Bytes;

use crate::error::{Error, Result};

/// Compresses and decompresses bodies; its content type goes in the message's `compression` header.
pub trait Compressor: Send + Sync + 'static {
    /// Names it can be picked by (`zlib`, `gzip`).
    fn aliases(&self) -> &[&str];
    /// The value of the `compression` header.
    fn content_type(&self) -> &str;
    /// Compresses a body.
    fn compress(&self, body: &[u8]) -> Result<Vec<u8>>;
    /// Decompresses a body.
    fn decompress(&self, body: &[u8]) -> Result<Vec<u8>>;
}

/// zlib data, which Kombu labels `application/x-gzip` under the names `zlib` and `gzip`.
struct Zlib;
impl Compressor for Zlib {
    fn aliases(&self) -> &[&str] {
        &["zlib", "gzip"]
    }
    fn content_type(&self) -> &str {
        "application/x-gzip"
    }
    fn compress(&self, body: &[u8]) -> Result<Vec<u8>> {
        let mut enc = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        enc.write_all(body).and_then(|_| enc.finish()).map_err(|e| Error::serialization(format!("zlib: {e}")))
    }
    fn decompress(&self, body: &[u8]) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        flate2::read::ZlibDecoder::new(body)
            .read_to_end(&mut out)
            .map_err(|e| Error::serialization(format!("zlib: cannot decompress body: {e}")))?;
        Ok(out)
    }
}

fn registry() -> &'static RwLock<Vec<Arc<dyn Compressor>>> {
    static REG: OnceLock<RwLock<Vec<Arc<dyn Compressor>>>> = OnceLock::new();
    REG.get_or_init(|| RwLock::new(vec![Arc::new(Zlib)]))
}

/// Adds a compressor (it is found before the built-in ones).
pub fn register_compressor(compressor: Arc<dyn Compressor>) {
    registry().write().unwrap_or_else(|e| e.into_inner()).insert(0, compressor);
}

fn find(name_or_content_type: &str) -> Result<Arc<dyn Compressor>> {
    registry()
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .find(|c| c.content_type() == name_or_content_type || c.aliases().contains(&name_or_content_type))
        .cloned()
        .ok_or_else(|| Error::serialization(format!("unknown compression '{name_or_content_type}'")))
}

/// Compresses with the named compressor; returns the body and the `compression` header value.
pub fn compress(name: &str, body: &[u8]) -> Result<(Bytes, String)> {
    let c = find(name)?;
    Ok((c.compress(body)?.into(), c.content_type().to_owned()))
}

/// Decompresses a body whose `compression` header is `content_type`.
pub fn decompress(content_type: &str, body: &[u8]) -> Result<Bytes> {
    Ok(find(content_type)?.decompress(body)?.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zlib_round_trip_and_garbage() {
        let data = vec![b'a'; 4096];
        let (z, header) = compress("gzip", &data).unwrap();
        assert_eq!(header, "application/x-gzip");
        assert!(z.len() < 100);
        assert_eq!(&decompress(&header, &z).unwrap()[..], &data[..]);
        assert!(decompress(&header, b"not zlib").is_err());
        assert!(compress("lz4", b"x").is_err());
    }
}
