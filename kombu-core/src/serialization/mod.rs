//! Serializers and compressors, keyed by name and content type, and consumers' accept lists.
//!
//! Built in: `json` (`application/json`, the default), `text` (`text/plain`) and `raw`
//! (`application/data`, bytes as they are), and with their Cargo features (on by default) Kombu's
//! `msgpack` (`application/x-msgpack`) and `yaml` (`application/x-yaml`); pickle is refused with an error
//! that says why. Compressors: Kombu's every one, `zlib`/`gzip`, `bzip2`, `lzma`/`xz`, `brotli` and
//! `zstd` (the table in [`compress`]'s module). Register more with [`register_serializer`] and
//! [`register_compressor`].

mod compression;
mod formats;

use std::sync::{Arc, OnceLock, RwLock};

use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::{Error, Result};

pub use compression::{compress, compressors, decompress, register_compressor, Compressor, MAX_DECOMPRESSED_SIZE};
pub use formats::PICKLE_CONTENT_TYPE;

/// Turns values into bytes and back, for one content type.
///
/// Implementations work through `erased_serde`, so any `serde` format can be plugged in.
pub trait Serializer: Send + Sync + 'static {
    /// The name used to pick it (`json`).
    fn name(&self) -> &str;
    /// The MIME type it writes (`application/json`).
    fn content_type(&self) -> &str;
    /// The character encoding it writes (`utf-8`, or `binary`).
    fn content_encoding(&self) -> &str;
    /// Serializes `value`.
    fn serialize(&self, value: &dyn erased_serde::Serialize) -> Result<Vec<u8>>;
    /// Hands a deserializer over `body` to `visit`.
    fn deserialize<'de>(
        &self,
        body: &'de [u8],
        visit: &mut dyn FnMut(&mut dyn erased_serde::Deserializer<'de>) -> Result<()>,
    ) -> Result<()>;
}

/// JSON, the default: written compact, read strictly (nothing after the value).
static JSON: formats::Format = formats::Format {
    name: "json",
    content_type: "application/json",
    content_encoding: "utf-8",
    write: |value| {
        let mut out = Vec::with_capacity(128);
        let mut ser = serde_json::Serializer::new(&mut out);
        erased_serde::serialize(value, &mut ser).map_err(|e| Error::serialization(format!("json: {e}")))?;
        Ok(out)
    },
    read: |body, visit| {
        let mut de = serde_json::Deserializer::from_slice(body);
        visit(&mut <dyn erased_serde::Deserializer>::erase(&mut de))?;
        de.end().map_err(|e| Error::serialization(format!("json: {e}")))
    },
};

/// Text and raw bodies: strings (and, for raw, byte arrays) as they are.
struct Plain {
    name: &'static str,
    content_type: &'static str,
    encoding: &'static str,
}
impl Serializer for Plain {
    fn name(&self) -> &str {
        self.name
    }
    fn content_type(&self) -> &str {
        self.content_type
    }
    fn content_encoding(&self) -> &str {
        self.encoding
    }
    fn serialize(&self, value: &dyn erased_serde::Serialize) -> Result<Vec<u8>> {
        let v = serde_json::to_value(value).map_err(|e| Error::serialization(format!("{}: {e}", self.name)))?;
        match v {
            serde_json::Value::String(s) => Ok(s.into_bytes()),
            serde_json::Value::Array(items) if self.encoding == "binary" => items
                .iter()
                .map(|x| x.as_u64().and_then(|n| u8::try_from(n).ok()))
                .collect::<Option<Vec<u8>>>()
                .ok_or_else(|| Error::serialization("raw: body must be a string or bytes")),
            _ => Err(Error::serialization(format!(
                "{}: body must be a string{}",
                self.name,
                if self.encoding == "binary" { " or bytes" } else { "" }
            ))),
        }
    }
    fn deserialize<'de>(
        &self,
        body: &'de [u8],
        visit: &mut dyn FnMut(&mut dyn erased_serde::Deserializer<'de>) -> Result<()>,
    ) -> Result<()> {
        if self.encoding == "binary" {
            let de = serde::de::value::BorrowedBytesDeserializer::<serde::de::value::Error>::new(body);
            visit(&mut <dyn erased_serde::Deserializer>::erase(de))
        } else {
            let text = std::str::from_utf8(body)
                .map_err(|e| Error::serialization(format!("{}: body is not UTF-8: {e}", self.name)))?;
            let de = serde::de::value::BorrowedStrDeserializer::<serde::de::value::Error>::new(text);
            visit(&mut <dyn erased_serde::Deserializer>::erase(de))
        }
    }
}

fn registry() -> &'static RwLock<Vec<Arc<dyn Serializer>>> {
    static REG: OnceLock<RwLock<Vec<Arc<dyn Serializer>>>> = OnceLock::new();
    REG.get_or_init(|| {
        #[allow(unused_mut)] // without the optional serializers' features
        let mut all: Vec<Arc<dyn Serializer>> = vec![
            Arc::new(JSON),
            Arc::new(Plain { name: "text", content_type: "text/plain", encoding: "utf-8" }),
            Arc::new(Plain { name: "raw", content_type: "application/data", encoding: "binary" }),
        ];
        #[cfg(feature = "msgpack")]
        all.push(Arc::new(formats::MSGPACK));
        #[cfg(feature = "yaml")]
        all.push(Arc::new(formats::YAML));
        RwLock::new(all)
    })
}

/// Adds a serializer; one with the same name is replaced.
pub fn register_serializer(serializer: Arc<dyn Serializer>) {
    let mut reg = registry().write().unwrap_or_else(|e| e.into_inner());
    reg.retain(|s| s.name() != serializer.name());
    reg.push(serializer);
}

/// The serializer with this name or content type.
pub fn serializer(name_or_content_type: &str) -> Result<Arc<dyn Serializer>> {
    let reg = registry().read().unwrap_or_else(|e| e.into_inner());
    reg.iter()
        .find(|s| s.name() == name_or_content_type || s.content_type() == name_or_content_type)
        .cloned()
        .ok_or_else(|| {
            if name_or_content_type == "pickle" || name_or_content_type == PICKLE_CONTENT_TYPE {
                return Error::serialization(
                    "pickle is refused: unpickling runs arbitrary code; have the sender use json or msgpack",
                );
            }
            if let Some((name, _)) =
                formats::OPTIONAL.iter().find(|(n, ct)| *n == name_or_content_type || *ct == name_or_content_type)
            {
                return Error::serialization(format!(
                    "serializer '{name_or_content_type}' is not built in: enable kombu's `{name}` feature"
                ));
            }
            let known: Vec<&str> = reg.iter().map(|s| s.name()).collect();
            Error::serialization(format!(
                "no serializer named or for content type '{name_or_content_type}' (known: {})",
                known.join(", ")
            ))
        })
}

/// The content type a missing content type is taken as: raw bytes.
pub const RAW_CONTENT_TYPE: &str = "application/data";

/// Serializes `value` with the named serializer: body, content type, content encoding.
pub fn encode<T: Serialize + ?Sized>(serializer_name: &str, value: &T) -> Result<(Bytes, Arc<str>, Arc<str>)> {
    if serializer_name == "json" {
        static JSON_TYPES: OnceLock<(Arc<str>, Arc<str>)> = OnceLock::new();
        let (ct, enc) = JSON_TYPES.get_or_init(|| (JSON.content_type().into(), JSON.content_encoding().into()));
        let mut body = Vec::with_capacity(128);
        serde_json::to_writer(&mut body, value).map_err(|e| Error::serialization(format!("json: {e}")))?;
        return Ok((body.into(), ct.clone(), enc.clone()));
    }
    let s = serializer(serializer_name)?;
    let body = s.serialize(&value)?;
    Ok((body.into(), s.content_type().into(), s.content_encoding().into()))
}

/// Deserializes a body by its content type (a missing one means raw bytes).
pub fn decode<T: DeserializeOwned>(content_type: Option<&str>, body: &[u8]) -> Result<T> {
    let ct = content_type.filter(|c| !c.is_empty()).unwrap_or(RAW_CONTENT_TYPE);
    if ct == "application/json" {
        return serde_json::from_slice(body).map_err(|e| Error::serialization(format!("json: {e}")));
    }
    let s = serializer(ct)?;
    let mut out = None;
    s.deserialize(body, &mut |de| {
        out = Some(erased_serde::deserialize::<T>(de).map_err(|e| Error::serialization(format!("{}: {e}", s.name())))?);
        Ok(())
    })?;
    out.ok_or_else(|| Error::serialization(format!("{}: produced no value", s.name())))
}

/// The content types a consumer takes. Messages of other types are refused before its callback runs.
///
/// ```
/// use kombu_core::Accept;
/// let accept = Accept::new(["json"]).unwrap();
/// assert!(accept.allows(Some("application/json")));
/// assert!(!accept.allows(Some("text/plain")));
/// assert!(Accept::any().allows(Some("text/plain")));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Accept {
    content_types: Option<Vec<String>>,
}

impl Accept {
    /// Every content type.
    pub fn any() -> Self {
        Accept { content_types: None }
    }

    /// Only these serializers (by name, like `json`) or content types (with a `/`).
    pub fn new<I, S>(names: I) -> Result<Self>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut types = Vec::new();
        for name in names {
            let name = name.as_ref();
            if name.contains('/') {
                types.push(name.to_owned());
            } else {
                types.push(serializer(name)?.content_type().to_owned());
            }
        }
        Ok(Accept { content_types: Some(types) })
    }

    /// Whether a message of this content type is accepted (a missing type counts as raw bytes).
    pub fn allows(&self, content_type: Option<&str>) -> bool {
        match &self.content_types {
            None => true,
            Some(types) => {
                let ct = content_type.filter(|c| !c.is_empty()).unwrap_or(RAW_CONTENT_TYPE);
                types.iter().any(|t| t == ct)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_round_trip() {
        let (body, ct, enc) = encode("json", &serde_json::json!({"a": [1, 2]})).unwrap();
        assert_eq!((&*ct, &*enc), ("application/json", "utf-8"));
        let v: serde_json::Value = decode(Some(&ct), &body).unwrap();
        assert_eq!(v["a"][1], 2);
    }

    #[test]
    fn json_through_registry_path_rejects_trailing_garbage() {
        let s = serializer("application/json").unwrap();
        let mut seen = false;
        let err = s.deserialize(b"{} x", &mut |de| {
            let _: serde_json::Value =
                erased_serde::deserialize(de).map_err(|e| Error::serialization(e.to_string()))?;
            seen = true;
            Ok(())
        });
        assert!(seen);
        assert!(err.is_err());
    }

    #[test]
    fn text_and_raw() {
        let (body, ct, _) = encode("text", "héllo").unwrap();
        assert_eq!(&*ct, "text/plain");
        let s: String = decode(Some("text/plain"), &body).unwrap();
        assert_eq!(s, "héllo");
        assert!(decode::<String>(Some("text/plain"), &[0xff, 0xfe]).is_err());
        let (raw, ct, enc) = encode("raw", &serde_bytes::Bytes::new(&[0, 255, 7])).unwrap();
        assert_eq!((&*ct, &*enc), ("application/data", "binary"));
        assert_eq!(&raw[..], &[0, 255, 7]);
        let b: serde_bytes::ByteBuf = decode(None, &[1, 2, 3]).unwrap();
        assert_eq!(b.as_ref(), &[1, 2, 3]);
        assert!(encode("text", &5).is_err());
    }

    /// A plugged-in format: JSON written upside down, under its own content type.
    struct Reversed;
    impl Serializer for Reversed {
        fn name(&self) -> &str {
            "reversed-json"
        }
        fn content_type(&self) -> &str {
            "application/x-reversed-json"
        }
        fn content_encoding(&self) -> &str {
            "utf-8"
        }
        fn serialize(&self, value: &dyn erased_serde::Serialize) -> Result<Vec<u8>> {
            let mut v = JSON.serialize(value)?;
            v.reverse();
            Ok(v)
        }
        fn deserialize<'de>(
            &self,
            body: &'de [u8],
            visit: &mut dyn FnMut(&mut dyn erased_serde::Deserializer<'de>) -> Result<()>,
        ) -> Result<()> {
            let forward: Vec<u8> = body.iter().rev().copied().collect();
            let value: serde_json::Value =
                serde_json::from_slice(&forward).map_err(|e| Error::serialization(e.to_string()))?;
            visit(&mut <dyn erased_serde::Deserializer>::erase(value))
        }
    }

    #[test]
    fn registered_serializer_is_used_by_name_and_content_type() {
        register_serializer(Arc::new(Reversed));
        let (body, ct, _) = encode("reversed-json", &serde_json::json!({"k": [1, 2]})).unwrap();
        assert_eq!(&*ct, "application/x-reversed-json");
        assert_eq!(body.first(), Some(&b'}'));
        let v: serde_json::Value = decode(Some(&ct), &body).unwrap();
        assert_eq!(v["k"][1], 2);
        assert!(Accept::new(["reversed-json"]).unwrap().allows(Some("application/x-reversed-json")));
    }

    #[test]
    fn unknown_serializer_is_an_error() {
        let err = encode("pickle", &1).unwrap_err();
        assert_eq!(err.kind(), crate::ErrorKind::Serialization);
        assert!(err.to_string().contains("runs arbitrary code"), "{err}");
        let err = decode::<serde_json::Value>(Some("application/x-python-serialize"), b"x").unwrap_err();
        assert!(err.to_string().contains("pickle is refused"), "{err}");
        assert!(Accept::new(["nope"]).unwrap_err().to_string().contains("known: json"));
    }

    /// What a Celery-like body looks like: args, kwargs, and bytes.
    #[cfg(feature = "msgpack")]
    #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    struct Task {
        args: Vec<i64>,
        kwargs: std::collections::BTreeMap<String, String>,
        #[serde(with = "serde_bytes")]
        blob: Vec<u8>,
    }

    #[cfg(feature = "msgpack")]
    fn task() -> Task {
        Task { args: vec![1, -2], kwargs: [("k".to_owned(), "é".to_owned())].into(), blob: vec![0, 255] }
    }

    #[cfg(feature = "msgpack")]
    #[test]
    fn msgpack_writes_maps_bin_and_str_as_kombu_and_refuses_trailing_bytes() {
        let (body, ct, enc) = encode("msgpack", &task()).unwrap();
        assert_eq!((&*ct, &*enc), ("application/x-msgpack", "binary"));
        // fixmap of 3, then "args": Python's msgpack.unpackb gives a dict.
        assert_eq!(&body[..6], b"\x83\xa4args");
        assert!(body.windows(4).any(|w| w == b"\xc4\x02\x00\xff"), "bytes are msgpack bin 8");
        assert_eq!(decode::<Task>(Some(&ct), &body).unwrap(), task());
        let mut longer = body.to_vec();
        longer.push(0xc0);
        assert!(decode::<Task>(Some(&ct), &longer).unwrap_err().to_string().contains("after the value"));
        assert!(decode::<Task>(Some(&ct), &body[..body.len() - 1]).is_err());
        // A declared length far past the body is an error, not an allocation.
        assert!(decode::<serde_bytes::ByteBuf>(Some(&ct), b"\xc6\xff\xff\xff\xff").is_err());
    }

    #[cfg(feature = "yaml")]
    #[test]
    fn yaml_round_trips_and_reads_what_safe_dump_writes() {
        let (body, ct, enc) = encode("yaml", &serde_json::json!({"args": [1, 2], "kwargs": {"k": "v"}})).unwrap();
        assert_eq!((&*ct, &*enc), ("application/x-yaml", "utf-8"));
        let v: serde_json::Value = decode(Some(&ct), &body).unwrap();
        assert_eq!(v, serde_json::json!({"args": [1, 2], "kwargs": {"k": "v"}}));
        // PyYAML: yaml.safe_dump({'args': [1, 2], 'kwargs': {'k': 'v'}})
        let v: serde_json::Value = decode(Some(&ct), b"args:\n- 1\n- 2\nkwargs:\n  k: v\n").unwrap();
        assert_eq!(v["args"][1], 2);
        assert!(decode::<serde_json::Value>(Some(&ct), b"a: [1\n").is_err());
    }
}
