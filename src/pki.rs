//! X.509 for mTLS: the dev CA, server and member certificates (rcgen).
//!
//! Used by `hashforum init --dev` and by tests; a production forum brings its own CA and server
//! certificate. Keys are ECDSA P-256. Dev certificates use rcgen's default validity (no
//! expiry in practice): they are for development, never for a real forum.

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

/// A PEM certificate with its PEM private key and its DER form.
#[derive(Debug, Clone)]
pub struct CertifiedKey {
    /// Certificate, PEM.
    pub cert_pem: String,
    /// Private key, PEM (PKCS#8).
    pub key_pem: String,
    /// Certificate, DER: what members are bound to (by SHA-256).
    pub cert_der: Vec<u8>,
}

/// A certificate authority that can issue certificates.
pub struct Ca {
    issuer: Issuer<'static, KeyPair>,
    /// The CA certificate and key.
    pub certified: CertifiedKey,
}

impl Ca {
    /// Makes a new self-signed CA named `name`.
    ///
    /// # Errors
    /// When key generation or signing fails.
    pub fn new(name: &str) -> Result<Self, rcgen::Error> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::default();
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let cert = params.self_signed(&key)?;
        let certified = CertifiedKey {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            cert_der: cert.der().to_vec(),
        };
        Ok(Self {
            issuer: Issuer::new(params, key),
            certified,
        })
    }

    /// Loads a CA from its PEM certificate and key.
    ///
    /// # Errors
    /// When either does not parse.
    pub fn load(cert_pem: &str, key_pem: &str) -> Result<Self, rcgen::Error> {
        let key = KeyPair::from_pem(key_pem)?;
        let certified = CertifiedKey {
            cert_pem: cert_pem.to_owned(),
            key_pem: key_pem.to_owned(),
            cert_der: Vec::new(),
        };
        Ok(Self {
            issuer: Issuer::from_ca_cert_pem(cert_pem, key)?,
            certified,
        })
    }

    /// Issues a server certificate for `names` (DNS names or IP addresses).
    ///
    /// # Errors
    /// When a name is invalid or signing fails.
    pub fn issue_server(&self, names: &[&str]) -> Result<CertifiedKey, rcgen::Error> {
        let mut params =
            CertificateParams::new(names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>())?;
        params.distinguished_name.push(
            DnType::CommonName,
            names.first().copied().unwrap_or("hashforum"),
        );
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        self.issue(params)
    }

    /// Issues a client certificate for member `member_id`.
    ///
    /// # Errors
    /// When signing fails.
    pub fn issue_client(&self, member_id: &str) -> Result<CertifiedKey, rcgen::Error> {
        let mut params = CertificateParams::default();
        params
            .distinguished_name
            .push(DnType::CommonName, member_id);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        self.issue(params)
    }

    fn issue(&self, mut params: CertificateParams) -> Result<CertifiedKey, rcgen::Error> {
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.use_authority_key_identifier_extension = true;
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &self.issuer)?;
        Ok(CertifiedKey {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            cert_der: cert.der().to_vec(),
        })
    }
}

/// A new TLS key pair and a certificate signing request for a member's client certificate, made
/// on the member's machine: the private key never leaves it. Returns (key PEM, CSR PEM).
///
/// # Errors
/// When key generation or signing fails.
pub fn client_csr(member_id: &str) -> Result<(String, String), rcgen::Error> {
    let mut params = CertificateParams::default();
    params
        .distinguished_name
        .push(DnType::CommonName, member_id);
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let key = KeyPair::generate()?;
    let csr = params.serialize_request(&key)?;
    Ok((key.serialize_pem(), csr.pem()?))
}

/// Decodes the first certificate of a PEM file to DER.
///
/// # Errors
/// When there is no certificate in the PEM text.
pub fn pem_to_der(pem: &str) -> Result<Vec<u8>, String> {
    const BEGIN: &str = "-----BEGIN CERTIFICATE-----";
    const END: &str = "-----END CERTIFICATE-----";
    let start = pem.find(BEGIN).ok_or("no certificate in PEM")? + BEGIN.len();
    let len = pem[start..].find(END).ok_or("unterminated certificate")?;
    let b64: String = pem[start..start + len].split_whitespace().collect();
    base64::Engine::decode(&base64::engine::general_purpose::STANDARD, b64)
        .map_err(|e| format!("bad base64 in certificate: {e}"))
}
