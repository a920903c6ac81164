//! Serializers beyond JSON, as Python Kombu registers them (`kombu/serialization.py`): `msgpack`
//! (`application/x-msgpack`, binary; Kombu packs with `use_bin_type=True`, so bytes are msgpack `bin` and
//! text is `str`) and `yaml` (`application/x-yaml`, utf-8; what PyYAML's `safe_dump` writes and
//! `safe_load` reads). Each is built in by the Cargo feature of its name. Pickle is never built in:
//! unpickling runs arbitrary code ([`PICKLE_CONTENT_TYPE`]).

#[cfg(any(feature = "msgpack", feature = "yaml"))]
use super::Serializer;
#[cfg(any(feature = "msgpack", feature = "yaml"))]
use crate::error::{Error, Result};

/// Python's pickle, which kombu-rs refuses to decode or encode.
pub const PICKLE_CONTENT_TYPE: &str = "application/x-python-serialize";

/// Kombu's serializers that may be left out, with the Cargo feature that builds each in.
pub(super) const OPTIONAL: &[(&str, &str)] = &[("msgpack", "application/x-msgpack"), ("yaml", "application/x-yaml")];

/// MessagePack, with struct fields as map keys (as Python dicts arrive).
#[cfg(feature = "msgpack")]
pub(super) struct Msgpack;

#[cfg(feature = "msgpack")]
impl Serializer for Msgpack {
    fn name(&self) -> &str {
        "msgpack"
    }
    fn content_type(&self) -> &str {
        "application/x-msgpack"
    }
    fn content_encoding(&self) -> &str {
        "binary"
    }
    fn serialize(&self, value: &dyn erased_serde::Serialize) -> Result<Vec<u8>> {
        let mut out = Vec::with_capacity(128);
        let mut ser = rmp_serde::Serializer::new(&mut out).with_struct_map();
        erased_serde::serialize(value, &mut ser).map_err(|e| Error::serialization(format!("msgpack: {e}")))?;
        Ok(out)
    }
    fn deserialize<'de>(
        &self,
        body: &'de [u8],
        visit: &mut dyn FnMut(&mut dyn erased_serde::Deserializer<'de>) -> Result<()>,
    ) -> Result<()> {
        let mut rest = body;
        {
            let mut de = rmp_serde::Deserializer::new(&mut rest);
            visit(&mut <dyn erased_serde::Deserializer>::erase(&mut de))?;
        }
        if !rest.is_empty() {
            return Err(Error::serialization(format!("msgpack: {} bytes after the value", rest.len())));
        }
        Ok(())
    }
}

/// YAML, one document.
#[cfg(feature = "yaml")]
pub(super) struct Yaml;

#[cfg(feature = "yaml")]
impl Serializer for Yaml {
    fn name(&self) -> &str {
        "yaml"
    }
    fn content_type(&self) -> &str {
        "application/x-yaml"
    }
    fn content_encoding(&self) -> &str {
        "utf-8"
    }
    fn serialize(&self, value: &dyn erased_serde::Serialize) -> Result<Vec<u8>> {
        let mut out = Vec::with_capacity(128);
        let mut ser = serde_yaml_ng::Serializer::new(&mut out);
        erased_serde::serialize(value, &mut ser).map_err(|e| Error::serialization(format!("yaml: {e}")))?;
        Ok(out)
    }
    fn deserialize<'de>(
        &self,
        body: &'de [u8],
        visit: &mut dyn FnMut(&mut dyn erased_serde::Deserializer<'de>) -> Result<()>,
    ) -> Result<()> {
        let de = serde_yaml_ng::Deserializer::from_slice(body);
        visit(&mut <dyn erased_serde::Deserializer>::erase(de))
    }
}
