//! A throw-away certificate authority for the local environment: the kube-apiserver's serving
//! certificate and TLS registries. rustls refuses a self-signed certificate that is its own CA, so
//! servers get a leaf certificate signed by this CA and clients trust the CA.

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};

use super::TestEnvError;

/// A CA certificate and the key that signs leaf certificates with it.
pub struct TestCa {
    cert_pem: String,
    issuer: Issuer<'static, KeyPair>,
}

/// A leaf certificate with its private key, both PEM.
#[derive(Debug, Clone)]
pub struct ServingCert {
    /// The certificate, PEM.
    pub cert_pem: String,
    /// Its private key, PKCS#8 PEM.
    pub key_pem: String,
}

fn tls_error(source: rcgen::Error) -> TestEnvError {
    TestEnvError::Certificate { source }
}

impl TestCa {
    /// Creates a new CA with a fresh key.
    pub fn new(common_name: &str) -> Result<Self, TestEnvError> {
        let mut params = CertificateParams::new(Vec::<String>::new()).map_err(tls_error)?;
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let key = KeyPair::generate().map_err(tls_error)?;
        let cert = params.self_signed(&key).map_err(tls_error)?;
        Ok(Self {
            cert_pem: cert.pem(),
            issuer: Issuer::new(params, key),
        })
    }

    /// The CA certificate, PEM: what clients trust.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// Issues a serving certificate for `names` (DNS names or IP addresses).
    pub fn issue(&self, names: &[&str]) -> Result<ServingCert, TestEnvError> {
        let mut params = CertificateParams::new(Vec::<String>::new()).map_err(tls_error)?;
        params.distinguished_name.push(
            DnType::CommonName,
            names.first().copied().unwrap_or("localhost"),
        );
        for name in names {
            params.subject_alt_names.push(match name.parse() {
                Ok(ip) => SanType::IpAddress(ip),
                Err(_) => SanType::DnsName((*name).try_into().map_err(tls_error)?),
            });
        }
        let key = KeyPair::generate().map_err(tls_error)?;
        let cert = params.signed_by(&key, &self.issuer).map_err(tls_error)?;
        Ok(ServingCert {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }
}

impl TestCa {
    /// Issues a client certificate for the user `common_name` in the group `organization` (how
    /// Kubernetes reads a client certificate's subject).
    pub fn issue_client(
        &self,
        common_name: &str,
        organization: &str,
    ) -> Result<ServingCert, TestEnvError> {
        let mut params = CertificateParams::new(Vec::<String>::new()).map_err(tls_error)?;
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        params
            .distinguished_name
            .push(DnType::OrganizationName, organization);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let key = KeyPair::generate().map_err(tls_error)?;
        let cert = params.signed_by(&key, &self.issuer).map_err(tls_error)?;
        Ok(ServingCert {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }
}

/// A fresh ECDSA P-256 key pair as (private PKCS#8 PEM, public PEM): the service-account token
/// signing key and the key the apiserver verifies tokens with.
pub fn signing_key_pair_pem() -> Result<(String, String), TestEnvError> {
    let key = KeyPair::generate().map_err(tls_error)?;
    Ok((key.serialize_pem(), key.public_key_pem()))
}
