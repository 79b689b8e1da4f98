//! The webhook's certificates without cert-manager: a CA and a serving certificate it signs, kept in
//! a Secret (`ca.crt`, `tls.crt`, `tls.key`), issued anew when missing or within 30 days of expiry,
//! and the CA published as the `caBundle` of every webhook of the MutatingWebhookConfiguration that
//! calls the operator. Replicas share the Secret, so they serve the same certificate. A Secret
//! without the operator's expiry annotation belongs to another issuer (cert-manager): it is served
//! as it is and re-read, never renewed here.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::ByteString;
use k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, Client};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType,
};

/// How long an issued serving certificate is valid.
const VALIDITY: Duration = Duration::from_secs(365 * 24 * 3600);

/// Issue anew when less than this is left.
pub const RENEW_BEFORE: Duration = Duration::from_secs(30 * 24 * 3600);

/// The annotation on the Secret recording when its certificate expires (Unix seconds).
pub const EXPIRES_ANNOTATION: &str = "imagestream-operator/certificate-expires";

/// A CA and the serving certificate and key it signed, PEM.
#[derive(Clone)]
pub struct Serving {
    /// The CA certificate (the webhook's `caBundle`).
    pub ca_pem: String,
    /// The serving certificate.
    pub cert_pem: String,
    /// Its key.
    pub key_pem: String,
    /// When it expires (Unix seconds).
    pub expires: i64,
}

impl std::fmt::Debug for Serving {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Serving")
            .field("expires", &self.expires)
            .finish_non_exhaustive()
    }
}

/// Why certificates could not be issued or published.
#[derive(Debug, thiserror::Error)]
pub enum CertificateError {
    /// rcgen refused.
    #[error("could not issue a certificate: {0}")]
    Issue(#[from] rcgen::Error),
    /// The API server refused.
    #[error("{what}: {source}")]
    Kube {
        /// What was attempted.
        what: String,
        /// The error.
        source: kube::Error,
    },
}

fn now_unix() -> i64 {
    k8s_openapi::jiff::Timestamp::now().as_second()
}

/// A new CA and a serving certificate for `names` (DNS names and IP addresses), valid from
/// yesterday for [`VALIDITY`].
pub fn issue(names: &[String]) -> Result<Serving, CertificateError> {
    use k8s_openapi::jiff::{SignedDuration, Timestamp, tz::TimeZone};
    let day = |t: Timestamp| {
        let date = t.to_zoned(TimeZone::UTC).date();
        let date_time = rcgen::date_time_ymd(
            i32::from(date.year()),
            date.month().unsigned_abs(),
            date.day().unsigned_abs(),
        );
        (date_time, date)
    };
    let now = Timestamp::now();
    let (not_before, _) = day(now - SignedDuration::from_hours(24));
    let (not_after, last_day) = day(now + SignedDuration::from_secs(VALIDITY.as_secs() as i64));
    let expires = last_day
        .to_zoned(TimeZone::UTC)
        .map(|z| z.timestamp().as_second())
        .unwrap_or_else(|_| now.as_second());

    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "imagestream-operator admission CA");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    ca_params.not_before = not_before;
    ca_params.not_after = not_after;
    let ca_key = KeyPair::generate()?;
    let ca = ca_params.self_signed(&ca_key)?;

    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params
        .distinguished_name
        .push(DnType::CommonName, "imagestream-operator admission");
    for name in names {
        params.subject_alt_names.push(match name.parse() {
            Ok(ip) => SanType::IpAddress(ip),
            Err(_) => SanType::DnsName(name.as_str().try_into()?),
        });
    }
    params.not_before = not_before;
    params.not_after = not_after;
    let key = KeyPair::generate()?;
    let issuer = Issuer::new(ca_params, ca_key);
    let cert = params.signed_by(&key, &issuer)?;
    Ok(Serving {
        ca_pem: ca.pem(),
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
        expires,
    })
}

/// The serving material in `secret`, if it is complete and not due for renewal.
fn reusable(secret: &Secret) -> Option<Serving> {
    let data = secret.data.as_ref()?;
    let text = |key: &str| {
        data.get(key)
            .and_then(|v| String::from_utf8(v.0.clone()).ok())
            .filter(|v| !v.is_empty())
    };
    // Without the annotation the Secret is someone else's (cert-manager): served as it is, and
    // re-read on every check, never renewed here.
    let expires: i64 = match secret
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(EXPIRES_ANNOTATION))
    {
        Some(value) => value.parse().ok()?,
        None => i64::MAX,
    };
    if expires - now_unix() < RENEW_BEFORE.as_secs() as i64 {
        return None;
    }
    Some(Serving {
        ca_pem: text("ca.crt")?,
        cert_pem: text("tls.crt")?,
        key_pem: text("tls.key")?,
        expires,
    })
}

/// The serving material of the Secret `namespace/name`: reused while valid, else issued for
/// `names` and written (created, or replaced when another replica did not get there first).
pub async fn ensure(
    client: &Client,
    namespace: &str,
    name: &str,
    names: &[String],
) -> Result<Serving, CertificateError> {
    let api = Api::<Secret>::namespaced(client.clone(), namespace);
    let kube = |what: &str| {
        let what = format!("{what} the webhook certificate Secret {namespace}/{name}");
        move |source| CertificateError::Kube { what, source }
    };
    let existing = match api.get(name).await {
        Ok(secret) => Some(secret),
        Err(kube::Error::Api(status)) if status.code == 404 => None,
        Err(err) => return Err(kube("read")(err)),
    };
    if let Some(serving) = existing.as_ref().and_then(reusable) {
        return Ok(serving);
    }
    let serving = issue(names)?;
    let bytes = |s: &str| ByteString(s.as_bytes().to_vec());
    let secret = Secret {
        metadata: kube::api::ObjectMeta {
            name: Some(name.to_owned()),
            namespace: Some(namespace.to_owned()),
            annotations: Some(
                [(EXPIRES_ANNOTATION.to_owned(), serving.expires.to_string())].into(),
            ),
            resource_version: existing
                .as_ref()
                .and_then(|s| s.metadata.resource_version.clone()),
            ..Default::default()
        },
        type_: Some("kubernetes.io/tls".to_owned()),
        data: Some(
            [
                ("ca.crt".to_owned(), bytes(&serving.ca_pem)),
                ("tls.crt".to_owned(), bytes(&serving.cert_pem)),
                ("tls.key".to_owned(), bytes(&serving.key_pem)),
            ]
            .into(),
        ),
        ..Default::default()
    };
    let written = match existing {
        None => api.create(&PostParams::default(), &secret).await,
        Some(_) => api.replace(name, &PostParams::default(), &secret).await,
    };
    match written {
        Ok(_) => Ok(serving),
        // Another replica wrote first: use what it wrote.
        Err(kube::Error::Api(status)) if status.code == 409 => {
            let secret = api.get(name).await.map_err(kube("read"))?;
            reusable(&secret).ok_or_else(|| kube("read")(kube::Error::Api(status)))
        }
        Err(err) => Err(kube("write")(err)),
    }
}

/// Sets the `caBundle` of every webhook of the MutatingWebhookConfiguration `name` to `ca_pem`,
/// when it differs. A missing configuration is not an error (the webhook is not registered). The
/// write carries the configuration's resourceVersion; when another writer came first (replicas
/// starting together publish the same CA), the configuration is read again and the write retried,
/// so it usually finds the bundle already set.
pub async fn publish_ca(
    client: &Client,
    name: &str,
    ca_pem: &str,
) -> Result<bool, CertificateError> {
    const ATTEMPTS: usize = 5;
    let api = Api::<MutatingWebhookConfiguration>::all(client.clone());
    let kube = |what: &str| {
        let what = format!("{what} the MutatingWebhookConfiguration {name}");
        move |source| CertificateError::Kube { what, source }
    };
    let bundle = ByteString(ca_pem.as_bytes().to_vec());
    let mut attempt = 0;
    loop {
        attempt += 1;
        let configuration = match api.get(name).await {
            Ok(configuration) => configuration,
            Err(kube::Error::Api(status)) if status.code == 404 => return Ok(false),
            Err(err) => return Err(kube("read")(err)),
        };
        let mut webhooks = configuration.webhooks.clone().unwrap_or_default();
        let mut changed = false;
        for webhook in &mut webhooks {
            if webhook.client_config.ca_bundle.as_ref() != Some(&bundle) {
                webhook.client_config.ca_bundle = Some(bundle.clone());
                changed = true;
            }
        }
        if !changed {
            return Ok(false);
        }
        let patch = serde_json::json!({
            "metadata": {"resourceVersion": configuration.metadata.resource_version},
            "webhooks": webhooks,
        });
        match api
            .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => return Ok(true),
            Err(kube::Error::Api(status)) if status.code == 409 && attempt < ATTEMPTS => {}
            Err(err) => return Err(kube("update")(err)),
        }
    }
}

/// `serving` ready to serve.
pub fn certified(serving: &Serving) -> Result<Arc<rustls::sign::CertifiedKey>, String> {
    crate::webhook::tls::certified_key(serving.cert_pem.as_bytes(), serving.key_pem.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_issued_certificate_serves_its_names_and_is_reused_until_renewal_is_due() {
        let serving = issue(&["localhost".into(), "127.0.0.1".into()]).unwrap();
        assert!(serving.ca_pem.contains("BEGIN CERTIFICATE"));
        assert!(certified(&serving).is_ok());
        let mut secret = Secret {
            metadata: kube::api::ObjectMeta {
                annotations: Some(
                    [(EXPIRES_ANNOTATION.to_owned(), serving.expires.to_string())].into(),
                ),
                ..Default::default()
            },
            data: Some(
                [
                    (
                        "ca.crt".to_owned(),
                        ByteString(serving.ca_pem.clone().into_bytes()),
                    ),
                    (
                        "tls.crt".to_owned(),
                        ByteString(serving.cert_pem.clone().into_bytes()),
                    ),
                    (
                        "tls.key".to_owned(),
                        ByteString(serving.key_pem.clone().into_bytes()),
                    ),
                ]
                .into(),
            ),
            ..Default::default()
        };
        assert!(reusable(&secret).is_some());
        let soon = now_unix() + 24 * 3600;
        secret.metadata.annotations =
            Some([(EXPIRES_ANNOTATION.to_owned(), soon.to_string())].into());
        assert!(reusable(&secret).is_none(), "due for renewal");
        secret.metadata.annotations = None;
        assert_eq!(
            reusable(&secret).map(|s| s.expires),
            Some(i64::MAX),
            "a Secret another issuer manages is served as it is"
        );
        assert!(format!("{serving:?}").contains("expires"));
        assert!(!format!("{serving:?}").contains("PRIVATE KEY"));
    }
}
