//! TLS towards the smarthost: a rustls client config (ring provider) that trusts the system's
//! roots plus `smtp.ca_file`, or, with `smtp.tls_verify` off, any certificate (signatures are
//! still checked); the same for the webhook with `replies.ca_file`; and plain-language text for
//! handshake failures.

use crate::settings::Smtp;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, SignatureScheme};
use std::sync::Arc;

/// Where Debian (and most distributions) keep the system's trusted roots.
const SYSTEM_ROOTS: &[&str] = &[
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
];

/// The client config for the smarthost settings. Errors name the setting that is wrong.
pub fn client_config(smtp: &Smtp) -> Result<Arc<rustls::ClientConfig>, String> {
    roots_config(smtp.tls_verify, &smtp.ca_file, "smtp.ca_file")
}

/// [`client_config`] for one session that reports the certificate it was shown (in `Seen`),
/// accepted or not: the test email's transcript says what it was and why it was refused.
pub fn client_config_seen(smtp: &Smtp) -> Result<(Arc<rustls::ClientConfig>, Arc<Seen>), String> {
    let seen = Arc::new(Seen::default());
    let config = build(
        smtp.tls_verify,
        &smtp.ca_file,
        "smtp.ca_file",
        Some(seen.clone()),
    )?;
    Ok((config, seen))
}

/// A client config trusting the system's roots plus the PEM roots in `ca_file` (the setting
/// `ca_key` names it, for errors), or with `verify` off any certificate.
pub fn roots_config(
    verify: bool,
    ca_file: &str,
    ca_key: &str,
) -> Result<Arc<rustls::ClientConfig>, String> {
    build(verify, ca_file, ca_key, None)
}

/// The certificate a server showed in a handshake.
#[derive(Debug, Default)]
pub struct Seen(std::sync::Mutex<Option<CertificateDer<'static>>>);

impl Seen {
    pub fn take(&self) -> Option<CertificateDer<'static>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).take()
    }

    fn put(&self, cert: &CertificateDer<'_>) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = Some(cert.clone().into_owned());
    }
}

/// The system's roots, read once.
fn system_roots() -> &'static [CertificateDer<'static>] {
    static ROOTS: std::sync::OnceLock<Vec<CertificateDer<'static>>> = std::sync::OnceLock::new();
    ROOTS.get_or_init(|| {
        SYSTEM_ROOTS
            .iter()
            .find_map(|path| crate::pemfile::read(path).ok())
            .map(|pem| {
                CertificateDer::pem_slice_iter(&pem)
                    .filter_map(Result::ok)
                    .collect()
            })
            .unwrap_or_default()
    })
}

fn build(
    verify: bool,
    ca_file: &str,
    ca_key: &str,
    seen: Option<Arc<Seen>>,
) -> Result<Arc<rustls::ClientConfig>, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS set-up: {e}"))?;
    let inner: Arc<dyn ServerCertVerifier> = if verify {
        let mut roots = rustls::RootCertStore::empty();
        roots.add_parsable_certificates(system_roots().iter().cloned());
        if !ca_file.is_empty() {
            let pem = crate::pemfile::read(ca_file).map_err(|e| format!("{ca_key}: {e}"))?;
            let certs: Vec<CertificateDer> = CertificateDer::pem_slice_iter(&pem)
                .collect::<Result<_, _>>()
                .map_err(|e| format!("{ca_key} {ca_file}: {e}"))?;
            if certs.is_empty() {
                return Err(format!("{ca_key} {ca_file} holds no certificate"));
            }
            let (added, _) = roots.add_parsable_certificates(certs);
            if added == 0 {
                return Err(format!(
                    "{ca_key} {ca_file}: no usable CA certificate in it"
                ));
            }
        }
        rustls::client::WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
            .build()
            .map_err(|e| format!("TLS set-up: {e}"))?
    } else {
        Arc::new(AnyCertificate(provider))
    };
    let verifier: Arc<dyn ServerCertVerifier> = match seen {
        Some(seen) => Arc::new(Recording { inner, seen }),
        None => inner,
    };
    Ok(Arc::new(
        builder
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_no_client_auth(),
    ))
}

/// A verifier that notes the certificate it is shown, then lets `inner` judge it.
#[derive(Debug)]
struct Recording {
    inner: Arc<dyn ServerCertVerifier>,
    seen: Arc<Seen>,
}

impl ServerCertVerifier for Recording {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.seen.put(end_entity);
        self.inner
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// The name the certificate must carry: the host name, or the IP address as given.
pub fn server_name(address: &str) -> Result<ServerName<'static>, String> {
    ServerName::try_from(address.to_string()).map_err(|_| {
        format!("smtp.address {address:?} is not a host name or IP address TLS can verify")
    })
}

/// Says what went wrong in a handshake, in words an administrator can act on.
pub fn explain(e: &std::io::Error, host: &str) -> String {
    let Some(err) = e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) else {
        return format!("the TLS handshake with {host} failed: {e}");
    };
    // The safe fix first; turning verification off is said with what it costs.
    let fix = "add the certificate of the authority that signed it to CA file (smtp.ca_file); \
               turning off Verify certificate (smtp.tls_verify) also makes the test pass, but then \
               anyone between this appliance and the server can read the password and the mail";
    match err {
        rustls::Error::InvalidCertificate(c) => match c {
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                format!("the certificate of {host} has expired")
            }
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                format!("the certificate of {host} is not valid yet (check this appliance's clock)")
            }
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
                format!(
                    "the certificate of {host} is not valid for the name {host} (smtp.address must be a name the certificate carries)"
                )
            }
            CertificateError::UnknownIssuer => {
                format!(
                    "the certificate of {host} is signed by an authority this appliance does not trust ({fix})"
                )
            }
            CertificateError::Other(e) if format!("{e:?}").contains("CaUsedAsEndEntity") => {
                format!(
                    "the certificate of {host} is a self-signed CA certificate, not a server certificate ({fix})"
                )
            }
            other => format!("the certificate of {host} was not accepted: {other}"),
        },
        rustls::Error::AlertReceived(alert) => {
            format!("{host} ended the TLS handshake with the alert {alert:?}")
        }
        other => format!("the TLS handshake with {host} failed: {other}"),
    }
}

/// A client config that takes any certificate (its signatures still checked): for herald's own
/// checks of its listeners, which compare the certificate they are shown with the one configured.
pub fn unverified_config() -> Arc<rustls::ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .expect("the default versions")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
        .with_no_client_auth();
    Arc::new(config)
}

/// `smtp.tls_verify = false`: any certificate and name, but the handshake signatures are still
/// verified so the session is at least bound to the key the server showed.
#[derive(Debug)]
struct AnyCertificate(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
