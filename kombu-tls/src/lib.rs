//! The TLS client side kombu-rs's network backends share: a rustls `ClientConfig` (ring provider, chosen
//! explicitly) from trusted roots, an optional client identity and a verification mode, the PEM files read
//! with errors naming the option and the file, and rustls failures sorted into what a caller can act on.
//!
//! The option names in messages are the ones both backends take (Python `ssl`'s, as Kombu passes them on):
//! `ssl_ca_certs`, `ssl_certfile`, `ssl_keyfile`. Everything else — parsing those options, the socket or
//! connector the configuration goes to, the kind and wording an error gets in a backend — stays in the
//! backend. Every function here is blocking file I/O at most: call it where blocking is allowed.

mod failure;
mod pem;
mod verify;

use std::path::Path;
use std::sync::Arc;

use kombu_core::{Error, ErrorKind, Result};
use rustls::crypto::ring;
use rustls::ClientConfig;

pub use failure::{rustls_error, Failure};
pub use pem::{add_ca_certs, builtin_roots};
pub use rustls;
pub use verify::Verify;

/// A client certificate to present: the chain in `certfile`, its key in `keyfile`, or in `certfile` when
/// there is no key file (as Python's `load_cert_chain` takes it).
#[derive(Debug, Clone, Copy)]
pub struct Identity<'a> {
    /// PEM file of the certificate chain, the client's certificate first (`ssl_certfile`).
    pub certfile: &'a Path,
    /// PEM file of the private key (`ssl_keyfile`); `None`: the key is in `certfile`.
    pub keyfile: Option<&'a Path>,
}

/// The client configuration: `roots` are the trust anchors of [`Verify::Full`] and [`Verify::AnyName`]
/// (unused by [`Verify::Nothing`]); `identity`'s files are read here. Errors are `InvalidArgument` naming
/// the option and the file.
pub fn client_config(
    roots: rustls::RootCertStore,
    identity: Option<Identity<'_>>,
    verify: Verify,
) -> Result<ClientConfig> {
    let provider = Arc::new(ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::with_source(ErrorKind::Unsupported, "TLS: the protocol versions", e))?;
    let builder = builder.dangerous().with_custom_certificate_verifier(verify::verifier(roots, verify, provider)?);
    match identity {
        None => Ok(builder.with_no_client_auth()),
        Some(id) => {
            let (chain, key, key_path) = pem::identity(id)?;
            builder.with_client_auth_cert(chain, key).map_err(|e| {
                let what = format!(
                    "ssl_certfile '{}' and the key in '{}' cannot be used together",
                    id.certfile.display(),
                    key_path.display()
                );
                Error::with_source(ErrorKind::InvalidArgument, what, e)
            })
        }
    }
}

#[cfg(test)]
mod tests;
