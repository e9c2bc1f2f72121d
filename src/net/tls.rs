//! The appliance certificate: the configured PEM files, or a self-signed certificate for
//! `hostname` and `reply.<hostname>` made at first boot and kept in sled (remade only when the
//! host name changes). Builds the rustls server config that the console and (later) inbound
//! SMTP share, with the ring provider and no process-wide default.

use crate::clock::civil_from_days;
use crate::settings::Settings;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

const TREE: &str = "tls";
const SELF_SIGNED: &[u8] = b"self_signed";
/// How long a self-signed certificate is valid.
const SELF_SIGNED_DAYS: i64 = 10 * 365;

/// A self-signed certificate as kept in sled. The key never leaves the data directory.
#[derive(Clone, Serialize, Deserialize)]
pub struct SelfSigned {
    pub names: Vec<String>,
    pub cert_pem: String,
    pub key_pem: String,
}

/// The names the appliance certificate must carry.
pub fn appliance_names(settings: &Settings) -> Vec<String> {
    vec![settings.hostname.clone(), settings.reply_domain()]
}

/// Returns the kept self-signed certificate, making (and keeping) one if there is none or the
/// host name changed.
pub fn ensure_self_signed(db: &sled::Db, settings: &Settings) -> Result<SelfSigned, String> {
    let tree = db.open_tree(TREE).map_err(|e| e.to_string())?;
    let names = appliance_names(settings);
    if let Some(bytes) = tree.get(SELF_SIGNED).map_err(|e| e.to_string())?
        && let Ok(kept) = serde_json::from_slice::<SelfSigned>(&bytes)
    {
        if kept.names == names {
            return Ok(kept);
        }
        log::info!(
            "host name changed: making a new self-signed certificate for {}",
            names.join(", ")
        );
    }
    let made = make_self_signed(&names)?;
    tree.insert(SELF_SIGNED, serde_json::to_vec(&made).expect("serializes"))
        .map_err(|e| e.to_string())?;
    tree.flush().map_err(|e| e.to_string())?;
    log::info!("made a self-signed certificate for {}", names.join(", "));
    Ok(made)
}

fn make_self_signed(names: &[String]) -> Result<SelfSigned, String> {
    let mut params = rcgen::CertificateParams::new(names.to_vec())
        .map_err(|e| format!("certificate names: {e}"))?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, names[0].clone());
    params
        .distinguished_name
        .push(rcgen::DnType::OrganizationName, "herald self-signed");
    let today = days_since_epoch();
    let (y, m, d) = civil_from_days(today - 1);
    params.not_before = rcgen::date_time_ymd(y, m, d);
    let (y, m, d) = civil_from_days(today + SELF_SIGNED_DAYS);
    params.not_after = rcgen::date_time_ymd(y, m, d);
    let key = rcgen::KeyPair::generate().map_err(|e| format!("key generation: {e}"))?;
    let cert = params
        .self_signed(&key)
        .map_err(|e| format!("self-signing: {e}"))?;
    Ok(SelfSigned {
        names: names.to_vec(),
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

fn days_since_epoch() -> i64 {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    (secs / 86_400) as i64
}

/// The certificate chain and key in force: the configured files, else the kept self-signed one.
pub fn load_identity(
    db: &sled::Db,
    settings: &Settings,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), String> {
    let (cert_pem, key_pem) = if settings.inbound.cert_file.is_empty() {
        let ss = ensure_self_signed(db, settings)?;
        (ss.cert_pem.into_bytes(), ss.key_pem.into_bytes())
    } else {
        (
            crate::pemfile::read(&settings.inbound.cert_file)?,
            crate::pemfile::read(&settings.inbound.key_file)?,
        )
    };
    let certs = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("certificate PEM: {e}"))?;
    if certs.is_empty() {
        return Err("the certificate file holds no certificate".into());
    }
    // The error text of a key parse never includes the key material.
    let key =
        PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| format!("private key PEM: {e}"))?;
    Ok((certs, key))
}

/// A rustls server config for the appliance certificate, with the ring provider.
pub fn server_config(
    db: &sled::Db,
    settings: &Settings,
    alpn: &[&[u8]],
) -> Result<Arc<rustls::ServerConfig>, String> {
    let (certs, key) = load_identity(db, settings)?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS versions: {e}"))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| format!("certificate and key do not fit together: {e}"))?;
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn self_signed_carries_both_names_and_fits_rustls() {
        let names = vec![
            "mail.example.com".to_string(),
            "reply.mail.example.com".to_string(),
        ];
        let ss = make_self_signed(&names).unwrap();
        assert!(ss.cert_pem.starts_with("-----BEGIN CERTIFICATE-----"));
        let certs: Vec<_> = CertificateDer::pem_slice_iter(ss.cert_pem.as_bytes())
            .collect::<Result<_, _>>()
            .unwrap();
        let key = PrivateKeyDer::from_pem_slice(ss.key_pem.as_bytes()).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .unwrap();
    }
}
