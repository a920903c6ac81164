//! Unit tests: PEM errors, client identities, the verifier modes against real certificates, and the
//! sorting of rustls failures.

use std::path::{Path, PathBuf};

use kombu_core::ErrorKind;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{AlertDescription, CertificateError, RootCertStore};

use super::*;

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// A CA (PEM) and a leaf for `a.example` it signed: the leaf's certificate (DER, PEM) and key (PEM).
fn pki() -> (String, CertificateDer<'static>, String, String) {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name.push(DnType::CommonName, "kombu-tls test CA");
    let ca_pem = ca.self_signed(&ca_key).unwrap().pem();
    let issuer = Issuer::new(ca, ca_key);
    let key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["a.example".to_owned()]).unwrap().signed_by(&key, &issuer).unwrap();
    (ca_pem, leaf.der().clone(), leaf.pem(), key.serialize_pem())
}

#[test]
fn bad_files_are_argument_errors_naming_option_and_file() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let garbage = write(d, "garbage.pem", "not a certificate\n");
    let broken = write(d, "broken.pem", "-----BEGIN CERTIFICATE-----\nAAAA\n");
    let not_x509 = write(d, "notx509.pem", "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n");
    let missing = d.join("missing.pem");
    let ca = |p: &Path| add_ca_certs(&mut RootCertStore::empty(), p);
    let id = |certfile: &Path, keyfile: Option<&Path>| {
        client_config(builtin_roots(), Some(Identity { certfile, keyfile }), Verify::Full).map(drop)
    };
    let cases = [
        (ca(&missing), "ssl_ca_certs: cannot read", &missing),
        (ca(&garbage), "ssl_ca_certs: '{}' holds no certificate (PEM, -----BEGIN CERTIFICATE-----)", &garbage),
        (ca(&broken), "ssl_ca_certs: '{}' is not valid PEM", &broken),
        (ca(&not_x509), "ssl_ca_certs: certificate 1 of '{}' cannot be a trust anchor", &not_x509),
        (id(&missing, None), "ssl_certfile: cannot read '{}'", &missing),
        (id(&garbage, None), "ssl_certfile: '{}' holds no certificate", &garbage),
        (id(&not_x509, None), "ssl_certfile: '{}' holds no unencrypted private key", &not_x509),
        (id(&not_x509, Some(&missing)), "ssl_keyfile: cannot read '{}'", &missing),
        (id(&not_x509, Some(&garbage)), "ssl_keyfile: '{}' holds no unencrypted private key", &garbage),
    ];
    for (result, says, file) in cases {
        let e = result.unwrap_err();
        let says = says.replace("{}", &file.display().to_string());
        assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e:#}");
        assert!(e.to_string().contains(&says), "{says:?} in {e}");
        assert!(e.to_string().contains(&file.display().to_string()), "names the file: {e}");
    }
}

#[test]
fn identities_from_one_or_two_files_and_a_key_that_does_not_fit() {
    let dir = tempfile::tempdir().unwrap();
    let (ca_pem, _, cert_pem, key_pem) = pki();
    let cert = write(dir.path(), "cert.pem", &cert_pem);
    let key = write(dir.path(), "key.pem", &key_pem);
    let both = write(dir.path(), "both.pem", &format!("{cert_pem}{key_pem}"));
    let ca = write(dir.path(), "ca.pem", &ca_pem);
    let mut roots = RootCertStore::empty();
    add_ca_certs(&mut roots, &ca).unwrap();
    assert_eq!(roots.len(), 1);
    let config =
        |certfile: &Path, keyfile| client_config(roots.clone(), Some(Identity { certfile, keyfile }), Verify::Full);
    assert!(config(&cert, Some(&key)).unwrap().client_auth_cert_resolver.has_certs());
    assert!(config(&both, None).unwrap().client_auth_cert_resolver.has_certs());
    assert!(!client_config(roots.clone(), None, Verify::Full).unwrap().client_auth_cert_resolver.has_certs());
    let (_, _, _, other_key) = pki();
    let other_key = write(dir.path(), "other.key", &other_key);
    let e = config(&cert, Some(&other_key)).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e:#}");
    let says =
        format!("ssl_certfile '{}' and the key in '{}' cannot be used together", cert.display(), other_key.display());
    assert_eq!(e.message(), says);
}

#[test]
fn verifier_modes_check_what_they_say() {
    let dir = tempfile::tempdir().unwrap();
    let (ca_pem, leaf, _, _) = pki();
    let ca = write(dir.path(), "ca.pem", &ca_pem);
    let mut roots = RootCertStore::empty();
    add_ca_certs(&mut roots, &ca).unwrap();
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let check = |verify, roots: &RootCertStore, name: &'static str| {
        let v = verify::verifier(roots.clone(), verify, provider.clone()).unwrap();
        v.verify_server_cert(&leaf, &[], &ServerName::try_from(name).unwrap(), &[], UnixTime::now()).map(drop)
    };
    assert!(check(Verify::Full, &roots, "a.example").is_ok());
    let wrong = check(Verify::Full, &roots, "b.example").unwrap_err();
    assert!(matches!(Failure::of(&wrong), Failure::WrongName), "{wrong}");
    assert!(check(Verify::AnyName, &roots, "b.example").is_ok());
    let untrusted = check(Verify::AnyName, &builtin_roots(), "a.example").unwrap_err();
    assert_eq!(Failure::of(&untrusted), Failure::Untrusted, "{untrusted}");
    assert!(check(Verify::Nothing, &RootCertStore::empty(), "b.example").is_ok());
    let v = verify::verifier(RootCertStore::empty(), Verify::Nothing, provider.clone()).unwrap();
    assert!(!v.supported_verify_schemes().is_empty(), "signatures are still checked");
    assert!(client_config(RootCertStore::empty(), None, Verify::Nothing).is_ok());
}

#[test]
fn failures_sorted() {
    use rustls::Error as E;
    let cases = [
        (E::InvalidCertificate(CertificateError::Expired), Failure::Expired),
        (E::InvalidCertificate(CertificateError::NotValidForName), Failure::WrongName),
        (E::InvalidCertificate(CertificateError::UnknownIssuer), Failure::Untrusted),
        (E::NoCertificatesPresented, Failure::NoServerCertificate),
        (E::AlertReceived(AlertDescription::CertificateRequired), Failure::ClientRefused),
        (E::AlertReceived(AlertDescription::UnknownCA), Failure::ClientRefused),
        (E::AlertReceived(AlertDescription::HandshakeFailure), Failure::HandshakeFailure),
        (E::AlertReceived(AlertDescription::ProtocolVersion), Failure::NotTls),
        (E::InvalidMessage(rustls::InvalidMessage::InvalidContentType), Failure::NotTls),
        (E::DecryptError, Failure::Other),
    ];
    for (e, failure) in cases {
        assert_eq!(Failure::of(&e), failure, "{e}");
        let certificate = !matches!(failure, Failure::HandshakeFailure | Failure::NotTls | Failure::Other);
        assert_eq!(failure.is_certificate(), certificate, "{failure:?}");
    }
    let io = std::io::Error::new(std::io::ErrorKind::InvalidData, E::NoCertificatesPresented);
    assert_eq!(rustls_error(&io), Some(&E::NoCertificatesPresented));
    assert_eq!(rustls_error(&std::io::Error::other("plain")), None);
}
