//! Body compression, named in the `compression` header as Kombu does (`kombu/compression.py`): the same
//! content types and aliases, so that either side decompresses what the other compressed.
//!
//! | names | `compression` header | data | Cargo feature |
//! |---|---|---|---|
//! | `zlib`, `gzip` | `application/x-gzip` | zlib (not gzip: Kombu's label) | always |
//! | `bzip2`, `bzip` | `application/x-bz2` | bzip2, several streams allowed | `bzip2` |
//! | `lzma`, `xz` | `application/x-lzma` | xz written; xz or legacy `.lzma` read | `lzma` |
//! | `brotli` | `application/x-brotli` | brotli | `brotli` |
//! | `zstd`, `zstandard` | `application/zstd` | zstd frames | `zstd` |
//!
//! Decompression stops with an error past [`MAX_DECOMPRESSED_SIZE`], so a small hostile body cannot fill
//! memory.

use std::io::{Read, Write};
use std::sync::{Arc, OnceLock, RwLock};

use bytes::Bytes;

use crate::error::{Error, Result};

/// The most bytes a body may decompress to (256 MiB); past it decompression fails with an error.
pub const MAX_DECOMPRESSED_SIZE: usize = 256 * 1024 * 1024;

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

/// Reads a decoder to its end, at most [`MAX_DECOMPRESSED_SIZE`] bytes.
fn read_capped(name: &str, decoder: impl Read) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    let limit = MAX_DECOMPRESSED_SIZE as u64 + 1;
    decoder
        .take(limit)
        .read_to_end(&mut out)
        .map_err(|e| Error::serialization(format!("{name}: cannot decompress body: {e}")))?;
    if out.len() > MAX_DECOMPRESSED_SIZE {
        return Err(Error::serialization(format!(
            "{name}: the body decompresses to more than {} MiB; refused",
            MAX_DECOMPRESSED_SIZE >> 20
        )));
    }
    Ok(out)
}

/// Runs an encoder writing into a `Vec` to its end.
fn write_all<W: Write>(
    name: &str,
    mut encoder: W,
    body: &[u8],
    finish: impl FnOnce(W) -> std::io::Result<Vec<u8>>,
) -> Result<Vec<u8>> {
    encoder
        .write_all(body)
        .and_then(|_| finish(encoder))
        .map_err(|e| Error::serialization(format!("{name}: cannot compress body: {e}")))
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
        let enc = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        write_all("zlib", enc, body, |e| e.finish())
    }
    fn decompress(&self, body: &[u8]) -> Result<Vec<u8>> {
        read_capped("zlib", flate2::read::ZlibDecoder::new(body))
    }
}

/// bzip2 at level 9, as Python's `bz2.compress`; concatenated streams are read as one, as `bz2.decompress` does.
#[cfg(feature = "bzip2")]
struct Bzip2;
#[cfg(feature = "bzip2")]
impl Compressor for Bzip2 {
    fn aliases(&self) -> &[&str] {
        &["bzip2", "bzip"]
    }
    fn content_type(&self) -> &str {
        "application/x-bz2"
    }
    fn compress(&self, body: &[u8]) -> Result<Vec<u8>> {
        let enc = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::best());
        write_all("bzip2", enc, body, |e| e.finish())
    }
    fn decompress(&self, body: &[u8]) -> Result<Vec<u8>> {
        read_capped("bzip2", bzip2::read::MultiBzDecoder::new(body))
    }
}

/// xz at preset 6 with a CRC-64 check, as Python's `lzma.compress`; reads xz or legacy `.lzma` data, and
/// concatenated streams, as `lzma.decompress` does.
#[cfg(feature = "lzma")]
struct Lzma;
#[cfg(feature = "lzma")]
impl Compressor for Lzma {
    fn aliases(&self) -> &[&str] {
        &["lzma", "xz"]
    }
    fn content_type(&self) -> &str {
        "application/x-lzma"
    }
    fn compress(&self, body: &[u8]) -> Result<Vec<u8>> {
        let stream = liblzma::stream::Stream::new_easy_encoder(6, liblzma::stream::Check::Crc64)
            .map_err(|e| Error::serialization(format!("lzma: cannot compress body: {e}")))?;
        let enc = liblzma::write::XzEncoder::new_stream(Vec::new(), stream);
        write_all("lzma", enc, body, |e| e.finish())
    }
    fn decompress(&self, body: &[u8]) -> Result<Vec<u8>> {
        let stream = liblzma::stream::Stream::new_auto_decoder(u64::MAX, liblzma::stream::CONCATENATED)
            .map_err(|e| Error::serialization(format!("lzma: cannot decompress body: {e}")))?;
        read_capped("lzma", liblzma::read::XzDecoder::new_stream(body, stream))
    }
}

/// brotli at quality 6 (Python's `brotli.compress` defaults to 11, several times slower for little gain;
/// either reads the other's data) and a 4 MiB window.
#[cfg(feature = "brotli")]
struct Brotli;
#[cfg(feature = "brotli")]
impl Compressor for Brotli {
    fn aliases(&self) -> &[&str] {
        &["brotli"]
    }
    fn content_type(&self) -> &str {
        "application/x-brotli"
    }
    fn compress(&self, body: &[u8]) -> Result<Vec<u8>> {
        let enc = brotli::CompressorWriter::new(Vec::new(), 4096, 6, 22);
        write_all("brotli", enc, body, |mut e| e.flush().map(|_| e.into_inner()))
    }
    fn decompress(&self, body: &[u8]) -> Result<Vec<u8>> {
        read_capped("brotli", brotli::Decompressor::new(body, 4096))
    }
}

/// zstd at level 3 (Python's default), one frame that records its size; any number of frames read.
#[cfg(feature = "zstd")]
struct Zstd;
#[cfg(feature = "zstd")]
impl Compressor for Zstd {
    fn aliases(&self) -> &[&str] {
        &["zstd", "zstandard"]
    }
    fn content_type(&self) -> &str {
        "application/zstd"
    }
    fn compress(&self, body: &[u8]) -> Result<Vec<u8>> {
        zstd::bulk::compress(body, 3).map_err(|e| Error::serialization(format!("zstd: cannot compress body: {e}")))
    }
    fn decompress(&self, body: &[u8]) -> Result<Vec<u8>> {
        let dec = zstd::stream::read::Decoder::new(body)
            .map_err(|e| Error::serialization(format!("zstd: cannot decompress body: {e}")))?;
        read_capped("zstd", dec)
    }
}

#[allow(unused_mut)] // without the optional compressors' features
fn built_in() -> Vec<Arc<dyn Compressor>> {
    let mut all: Vec<Arc<dyn Compressor>> = vec![Arc::new(Zlib)];
    #[cfg(feature = "bzip2")]
    all.push(Arc::new(Bzip2));
    #[cfg(feature = "lzma")]
    all.push(Arc::new(Lzma));
    #[cfg(feature = "brotli")]
    all.push(Arc::new(Brotli));
    #[cfg(feature = "zstd")]
    all.push(Arc::new(Zstd));
    all
}

/// Kombu's compressions and the Cargo feature of kombu-core that builds each in (for the error when one
/// was left out).
const KOMBU_COMPRESSIONS: &[(&str, &[&str], &str)] = &[
    ("application/x-bz2", &["bzip2", "bzip"], "bzip2"),
    ("application/x-lzma", &["lzma", "xz"], "lzma"),
    ("application/x-brotli", &["brotli"], "brotli"),
    ("application/zstd", &["zstd", "zstandard"], "zstd"),
];

fn registry() -> &'static RwLock<Vec<Arc<dyn Compressor>>> {
    static REG: OnceLock<RwLock<Vec<Arc<dyn Compressor>>>> = OnceLock::new();
    REG.get_or_init(|| RwLock::new(built_in()))
}

/// Adds a compressor (it is found before the built-in ones).
pub fn register_compressor(compressor: Arc<dyn Compressor>) {
    registry().write().unwrap_or_else(|e| e.into_inner()).insert(0, compressor);
}

fn find(name_or_content_type: &str) -> Result<Arc<dyn Compressor>> {
    let reg = registry().read().unwrap_or_else(|e| e.into_inner());
    if let Some(c) =
        reg.iter().find(|c| c.content_type() == name_or_content_type || c.aliases().contains(&name_or_content_type))
    {
        return Ok(c.clone());
    }
    let left_out = KOMBU_COMPRESSIONS
        .iter()
        .find(|(ct, names, _)| *ct == name_or_content_type || names.contains(&name_or_content_type));
    Err(Error::serialization(match left_out {
        Some((_, _, feature)) => {
            format!("compression '{name_or_content_type}' is not built in: enable kombu's `{feature}` feature")
        }
        None => {
            let mut known: Vec<&str> = reg.iter().flat_map(|c| c.aliases().iter().copied()).collect();
            known.sort_unstable();
            format!("unknown compression '{name_or_content_type}' (known: {})", known.join(", "))
        }
    }))
}

/// The names of every compressor available, sorted.
pub fn compressors() -> Vec<String> {
    let mut names: Vec<String> = registry()
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .flat_map(|c| c.aliases().iter().map(|a| a.to_string()))
        .collect();
    names.sort_unstable();
    names.dedup();
    names
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

    fn sample() -> Vec<u8> {
        (0..20_000u32).flat_map(|i| format!("message {} ", i % 97).into_bytes()).collect()
    }

    #[test]
    fn every_built_in_compressor_round_trips_by_alias_and_content_type() {
        let data = sample();
        let reg = built_in();
        if cfg!(all(feature = "bzip2", feature = "lzma", feature = "brotli", feature = "zstd")) {
            assert_eq!(
                reg.len(),
                1 + KOMBU_COMPRESSIONS.len(),
                "the default features build in every Kombu compression"
            );
        }
        for c in reg {
            for alias in c.aliases() {
                let (z, header) = compress(alias, &data).unwrap();
                assert_eq!(header, c.content_type());
                assert!(z.len() < data.len() / 4, "{alias}: {} of {}", z.len(), data.len());
                assert_eq!(&decompress(&header, &z).unwrap()[..], &data[..], "{alias}");
                assert_eq!(&decompress(alias, &z).unwrap()[..], &data[..], "{alias} by alias");
            }
            let garbage = decompress(c.content_type(), b"certainly not compressed").unwrap_err();
            assert!(garbage.to_string().contains("cannot decompress body"), "{garbage}");
        }
    }

    #[test]
    fn unknown_names_list_the_known_ones() {
        let e = compress("lz4", b"x").unwrap_err().to_string();
        assert!(e.contains("unknown compression 'lz4'") && e.contains("zlib"), "{e}");
        assert!(compressors().contains(&"zstandard".to_owned()));
    }

    #[test]
    fn a_body_that_decompresses_past_the_limit_is_refused() {
        // 300 MiB of zeros deflate to about 300 KiB.
        let mut enc = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
        let chunk = vec![0u8; 1 << 20];
        for _ in 0..300 {
            enc.write_all(&chunk).unwrap();
        }
        let bomb = enc.finish().unwrap();
        let e = decompress("zlib", &bomb).unwrap_err().to_string();
        assert!(e.contains("more than 256 MiB"), "{e}");
    }

    #[cfg(feature = "lzma")]
    #[test]
    fn lzma_reads_legacy_lzma_alone_data_and_concatenated_streams() {
        let data = sample();
        let opts = liblzma::stream::LzmaOptions::new_preset(6).unwrap();
        let alone = liblzma::stream::Stream::new_lzma_encoder(&opts).unwrap();
        let mut enc = liblzma::write::XzEncoder::new_stream(Vec::new(), alone);
        enc.write_all(&data).unwrap();
        let legacy = enc.finish().unwrap();
        assert_eq!(&decompress("application/x-lzma", &legacy).unwrap()[..], &data[..]);

        let (one, _) = compress("xz", b"one ").unwrap();
        let (two, _) = compress("xz", b"two").unwrap();
        let both = [&one[..], &two[..]].concat();
        assert_eq!(&decompress("xz", &both).unwrap()[..], b"one two");
    }

    #[cfg(feature = "zstd")]
    #[test]
    fn zstd_frames_record_their_size_and_several_frames_are_read() {
        let (z, _) = compress("zstd", b"sized").unwrap();
        assert_eq!(zstd::zstd_safe::get_frame_content_size(&z).unwrap(), Some(5));
        let (more, _) = compress("zstd", b" twice").unwrap();
        assert_eq!(&decompress("zstd", &[&z[..], &more[..]].concat()).unwrap()[..], b"sized twice");
    }
}
