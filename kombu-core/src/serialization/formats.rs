//! Serializers as serde formats under Kombu's names (`kombu/serialization.py`): [`Format`], which JSON
//! and these are, and beyond JSON `msgpack`
//! (`application/x-msgpack`, binary; Kombu packs with `use_bin_type=True`, so bytes are msgpack `bin` and
//! text is `str`) and `yaml` (`application/x-yaml`, utf-8; what PyYAML's `safe_dump` writes and
//! `safe_load` reads). Each is built in by the Cargo feature of its name. Pickle is never built in:
//! unpickling runs arbitrary code ([`PICKLE_CONTENT_TYPE`]).

use super::Serializer;
#[cfg(any(feature = "msgpack", feature = "yaml"))]
use crate::error::Error;
use crate::error::Result;

/// Python's pickle, which kombu-rs refuses to decode or encode.
pub const PICKLE_CONTENT_TYPE: &str = "application/x-python-serialize";

/// Kombu's serializers that may be left out, with the Cargo feature that builds each in.
pub(super) const OPTIONAL: &[(&str, &str)] = &[("msgpack", "application/x-msgpack"), ("yaml", "application/x-yaml")];

/// Writes a value.
type Write = fn(&dyn erased_serde::Serialize) -> Result<Vec<u8>>;
/// Hands a deserializer over a body to a visitor.
type Read =
    for<'de> fn(&'de [u8], &mut dyn FnMut(&mut dyn erased_serde::Deserializer<'de>) -> Result<()>) -> Result<()>;

/// A serde format under its Kombu name and content type.
#[derive(Clone, Copy)]
pub(super) struct Format {
    pub(super) name: &'static str,
    pub(super) content_type: &'static str,
    pub(super) content_encoding: &'static str,
    pub(super) write: Write,
    pub(super) read: Read,
}

impl Serializer for Format {
    fn name(&self) -> &str {
        self.name
    }
    fn content_type(&self) -> &str {
        self.content_type
    }
    fn content_encoding(&self) -> &str {
        self.content_encoding
    }
    fn serialize(&self, value: &dyn erased_serde::Serialize) -> Result<Vec<u8>> {
        (self.write)(value)
    }
    fn deserialize<'de>(
        &self,
        body: &'de [u8],
        visit: &mut dyn FnMut(&mut dyn erased_serde::Deserializer<'de>) -> Result<()>,
    ) -> Result<()> {
        (self.read)(body, visit)
    }
}

/// MessagePack, with struct fields as map keys (as Python dicts arrive); nothing may follow the value.
#[cfg(feature = "msgpack")]
pub(super) const MSGPACK: Format = Format {
    name: "msgpack",
    content_type: "application/x-msgpack",
    content_encoding: "binary",
    write: |value| {
        let mut out = Vec::with_capacity(128);
        let mut ser = rmp_serde::Serializer::new(&mut out).with_struct_map();
        erased_serde::serialize(value, &mut ser).map_err(|e| Error::serialization(format!("msgpack: {e}")))?;
        Ok(out)
    },
    read: |body, visit| {
        let mut rest = body;
        {
            let mut de = rmp_serde::Deserializer::new(&mut rest);
            visit(&mut <dyn erased_serde::Deserializer>::erase(&mut de))?;
        }
        if !rest.is_empty() {
            return Err(Error::serialization(format!("msgpack: {} bytes after the value", rest.len())));
        }
        Ok(())
    },
};

/// YAML, one document.
#[cfg(feature = "yaml")]
pub(super) const YAML: Format = Format {
    name: "yaml",
    content_type: "application/x-yaml",
    content_encoding: "utf-8",
    write: |value| {
        let mut out = Vec::with_capacity(128);
        let mut ser = serde_yaml_ng::Serializer::new(&mut out);
        erased_serde::serialize(value, &mut ser).map_err(|e| Error::serialization(format!("yaml: {e}")))?;
        Ok(out)
    },
    read: |body, visit| {
        visit(&mut <dyn erased_serde::Deserializer>::erase(serde_yaml_ng::Deserializer::from_slice(body)))
    },
};
