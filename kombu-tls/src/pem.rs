//! PEM files read and checked: CA certificates (`ssl_ca_certs`), the client's chain (`ssl_certfile`) and
//! key (`ssl_keyfile`, else in the certificate file). Every error is `InvalidArgument` naming the option
//! and the file: one that cannot be read, that holds no PEM item of the kind expected, a CA certificate
//! that cannot be a trust anchor. A retry cannot help a wrong configuration.

use std::path::Path;

use kombu_core::{Error, ErrorKind, Result};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::RootCertStore;

use crate::Identity;

/// Mozilla's roots (`webpki-root-certs`), those rustls can parse.
pub fn builtin_roots() -> RootCertStore {
    let mut roots = RootCertStore::empty();
    roots.add_parsable_certificates(webpki_root_certs::TLS_SERVER_ROOT_CERTS.iter().cloned());
    roots
}

/// Adds every certificate of the `ssl_ca_certs` file at `path` to `roots`; each must be usable as a trust
/// anchor, and the file must hold at least one.
pub fn add_ca_certs(roots: &mut RootCertStore, path: &Path) -> Result<()> {
    let pem = read("ssl_ca_certs", path)?;
    for (n, cert) in certificates("ssl_ca_certs", path, &pem)?.into_iter().enumerate() {
        roots.add(cert).map_err(|e| {
            let what = format!("ssl_ca_certs: certificate {} of '{}' cannot be a trust anchor", n + 1, path.display());
            Error::with_source(ErrorKind::InvalidArgument, what, e)
        })?;
    }
    Ok(())
}

/// The client's certificate chain and private key, and the file the key was read from.
pub(crate) fn identity<'a>(
    id: Identity<'a>,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>, &'a Path)> {
    let cert_pem = read("ssl_certfile", id.certfile)?;
    let chain = certificates("ssl_certfile", id.certfile, &cert_pem)?;
    let (key_option, key_path, key_pem) = match id.keyfile {
        Some(keyfile) => ("ssl_keyfile", keyfile, read("ssl_keyfile", keyfile)?),
        None => ("ssl_certfile", id.certfile, cert_pem),
    };
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| {
        let what = format!(
            "{key_option}: '{}' holds no unencrypted private key (PEM: PKCS#8, PKCS#1 or SEC1)",
            key_path.display()
        );
        Error::with_source(ErrorKind::InvalidArgument, what, e)
    })?;
    Ok((chain, key, key_path))
}

fn read(option: &str, path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| {
        Error::with_source(ErrorKind::InvalidArgument, format!("{option}: cannot read '{}'", path.display()), e)
    })
}

/// Every certificate of a PEM file; at least one.
fn certificates(option: &str, path: &Path, pem: &[u8]) -> Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_slice_iter(pem).collect::<std::result::Result<Vec<_>, _>>().map_err(|e| {
        Error::with_source(ErrorKind::InvalidArgument, format!("{option}: '{}' is not valid PEM", path.display()), e)
    })?;
    if certs.is_empty() {
        return Err(Error::invalid(format!(
            "{option}: '{}' holds no certificate (PEM, -----BEGIN CERTIFICATE-----)",
            path.display()
        )));
    }
    Ok(certs)
}
