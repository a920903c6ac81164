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

/// One of Kombu's compressions: its names, its header value, the kombu-core feature that builds it in, and
/// its functions when that feature is on.
#[derive(Clone, Copy)]
struct Kombu {
    aliases: &'static [&'static str],
    content_type: &'static str,
    feature: &'static str,
    codec: Option<(Codec, Codec)>,
}

/// Compresses or decompresses a body.
type Codec = fn(&[u8]) -> Result<Vec<u8>>;

impl Compressor for Kombu {
    fn aliases(&self) -> &[&str] {
        self.aliases
    }
    fn content_type(&self) -> &str {
        self.content_type
    }
    fn compress(&self, body: &[u8]) -> Result<Vec<u8>> {
        self.codec.map_or_else(|| Err(self.left_out()), |(compress, _)| compress(body))
    }
    fn decompress(&self, body: &[u8]) -> Result<Vec<u8>> {
        self.codec.map_or_else(|| Err(self.left_out()), |(_, decompress)| decompress(body))
    }
}

impl Kombu {
    fn left_out(&self) -> Error {
        Error::serialization(format!(
            "compression '{}' is not built in: enable kombu's `{}` feature",
            self.aliases[0], self.feature
        ))
    }
}

/// Kombu's compressions, in `kombu/compression.py`'s order. The writers follow Python's defaults where the
/// other side cares: zlib at level 6; bzip2 at level 9 (`bz2.compress`), concatenated streams read as one;
/// xz (not `.lzma`) at preset 6 with a CRC-64 check (`lzma.compress`), xz or legacy `.lzma` read; brotli at
/// quality 6 (Python's 11 is several times slower for little gain; either reads the other's data) with a
/// 4 MiB window; zstd at level 3 in one frame that records its size, any number of frames read.
const KOMBU: &[Kombu] = &[
    Kombu {
        aliases: &["zlib", "gzip"],
        content_type: "application/x-gzip",
        feature: "",
        codec: Some((
            |body| {
                let enc = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
                write_all("zlib", enc, body, |e| e.finish())
            },
            |body| read_capped("zlib", flate2::read::ZlibDecoder::new(body)),
        )),
    },
    Kombu {
        aliases: &["bzip2", "bzip"],
        content_type: "application/x-bz2",
        feature: "bzip2",
        #[cfg(feature = "bzip2")]
        codec: Some((
            |body| {
                let enc = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::best());
                write_all("bzip2", enc, body, |e| e.finish())
            },
            |body| read_capped("bzip2", bzip2::read::MultiBzDecoder::new(body)),
        )),
        #[cfg(not(feature = "bzip2"))]
        codec: None,
    },
    Kombu {
        aliases: &["lzma", "xz"],
        content_type: "application/x-lzma",
        feature: "lzma",
        #[cfg(feature = "lzma")]
        codec: Some((
            |body| {
                let stream = liblzma::stream::Stream::new_easy_encoder(6, liblzma::stream::Check::Crc64)
                    .map_err(|e| Error::serialization(format!("lzma: cannot compress body: {e}")))?;
                write_all("lzma", liblzma::write::XzEncoder::new_stream(Vec::new(), stream), body, |e| e.finish())
            },
            |body| {
                let stream = liblzma::stream::Stream::new_auto_decoder(u64::MAX, liblzma::stream::CONCATENATED)
                    .map_err(|e| Error::serialization(format!("lzma: cannot decompress body: {e}")))?;
                read_capped("lzma", liblzma::read::XzDecoder::new_stream(body, stream))
            },
        )),
        #[cfg(not(feature = "lzma"))]
        codec: None,
    },
    Kombu {
        aliases: &["brotli"],
        content_type: "application/x-brotli",
        feature: "brotli",
        #[cfg(feature = "brotli")]
        codec: Some((
            |body| {
                let enc = brotli::CompressorWriter::new(Vec::new(), 4096, 6, 22);
                write_all("brotli", enc, body, |mut e| e.flush().map(|_| e.into_inner()))
            },
            |body| read_capped("brotli", brotli::Decompressor::new(body, 4096)),
        )),
        #[cfg(not(feature = "brotli"))]
        codec: None,
    },
    Kombu {
        aliases: &["zstd", "zstandard"],
        content_type: "application/zstd",
        feature: "zstd",
        #[cfg(feature = "zstd")]
        codec: Some((
            |body| {
                zstd::bulk::compress(body, 3)
                    .map_err(|e| Error::serialization(format!("zstd: cannot compress body: {e}")))
            },
            |body| {
                let dec = zstd::stream::read::Decoder::new(body)
                    .map_err(|e| Error::serialization(format!("zstd: cannot decompress body: {e}")))?;
                read_capped("zstd", dec)
            },
        )),
        #[cfg(not(feature = "zstd"))]
        codec: None,
    },
];

/// The compressions built in: Kombu's whose features are on.
fn built_in() -> Vec<Arc<dyn Compressor>> {
    KOMBU.iter().filter(|k| k.codec.is_some()).map(|k| Arc::new(*k) as Arc<dyn Compressor>).collect()
}

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
    let named = |aliases: &[&str], ct: &str| ct == name_or_content_type || aliases.contains(&name_or_content_type);
    if let Some(c) = reg.iter().find(|c| named(c.aliases(), c.content_type())) {
        return Ok(c.clone());
    }
    if let Some(k) = KOMBU.iter().find(|k| named(k.aliases, k.content_type)) {
        return Err(k.left_out());
    }
    let mut known: Vec<&str> = reg.iter().flat_map(|c| c.aliases().iter().copied()).collect();
    known.sort_unstable();
    Err(Error::serialization(format!("unknown compression '{name_or_content_type}' (known: {})", known.join(", "))))
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
            assert_eq!(reg.len(), KOMBU.len(), "the default features build in every Kombu compression");
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
