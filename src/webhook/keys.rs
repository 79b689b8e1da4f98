//! The receiver's keys: one per notification format, read from the Secret named by
//! `--webhook-secret NAMESPACE/NAME` (key `distribution` for `/notifications/distribution`, and so
//! on) and re-read whenever the Secret changes, so a key is rotated without a restart. A format
//! whose key is absent or empty is not served.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};

use futures::StreamExt;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::runtime::watcher;
use kube::{Api, Client};

use crate::domain::notification::Format;

/// The key of each enabled format. Debug output names the formats, never a key.
#[derive(Default)]
pub struct Keys(RwLock<HashMap<Format, Arc<[u8]>>>);

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.enabled()).finish()
    }
}

impl Keys {
    /// Keys from `(format, key)` pairs.
    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (Format, &'a [u8])>) -> Self {
        let keys = Self::default();
        keys.replace(pairs.into_iter().map(|(f, k)| (f, Arc::from(k))).collect());
        keys
    }

    /// The key of `format`, if the format is enabled.
    pub fn get(&self, format: Format) -> Option<Arc<[u8]>> {
        self.0
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&format)
            .cloned()
    }

    /// The enabled formats, in [`Format::ALL`] order.
    pub fn enabled(&self) -> Vec<&'static str> {
        let keys = self.0.read().unwrap_or_else(|p| p.into_inner());
        Format::ALL
            .iter()
            .filter(|f| keys.contains_key(f))
            .map(|f| f.as_str())
            .collect()
    }

    /// Replaces every key.
    pub fn replace(&self, keys: HashMap<Format, Arc<[u8]>>) {
        *self.0.write().unwrap_or_else(|p| p.into_inner()) = keys;
    }
}

/// The keys a Secret's `data` holds: one per entry named like a format, empty values left out.
/// Other entries are returned by name, to be reported.
pub fn keys_of(
    data: Option<&BTreeMap<String, ByteString>>,
) -> (HashMap<Format, Arc<[u8]>>, Vec<String>) {
    let mut keys = HashMap::new();
    let mut unknown = Vec::new();
    for (name, value) in data.into_iter().flatten() {
        match Format::from_path(name) {
            Some(format) if !value.0.is_empty() => {
                keys.insert(format, Arc::from(trim_newline(&value.0)));
            }
            Some(_) => {}
            None => unknown.push(name.clone()),
        }
    }
    (keys, unknown)
}

/// A key written with `echo` ends in a newline nobody means to sign with.
fn trim_newline(value: &[u8]) -> &[u8] {
    value.strip_suffix(b"\n").unwrap_or(value)
}

/// `NAMESPACE/NAME`, split.
pub fn secret_ref(value: &str) -> Result<(String, String), String> {
    match value.split_once('/') {
        Some((ns, name)) if !ns.is_empty() && !name.is_empty() && !name.contains('/') => {
            Ok((ns.to_owned(), name.to_owned()))
        }
        _ => Err(format!("{value:?} is not NAMESPACE/NAME")),
    }
}

/// Keeps `keys` equal to the Secret `namespace/name` until `stop` resolves: every format with a
/// key is served, a deleted Secret serves none.
pub async fn follow_secret(
    client: Client,
    namespace: String,
    name: String,
    keys: Arc<Keys>,
    stop: impl std::future::Future<Output = ()>,
) {
    let api: Api<Secret> = Api::namespaced(client, &namespace);
    let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
    let events = watcher(api, config).take_until(stop);
    futures::pin_mut!(events);
    let mut listed: Option<HashMap<Format, Arc<[u8]>>> = None;
    while let Some(event) = events.next().await {
        match event {
            Ok(watcher::Event::Apply(secret)) => apply(&keys, &namespace, &name, &secret),
            Ok(watcher::Event::Delete(_)) => {
                keys.replace(HashMap::new());
                tracing::warn!(secret = %format!("{namespace}/{name}"), "webhook Secret deleted: no notification format is served");
            }
            Ok(watcher::Event::Init) => listed = Some(HashMap::new()),
            Ok(watcher::Event::InitApply(secret)) => {
                let (found, _) = keys_of(secret.data.as_ref());
                listed.get_or_insert_with(HashMap::new).extend(found);
            }
            Ok(watcher::Event::InitDone) => {
                let found = listed.take().unwrap_or_default();
                if found.is_empty() {
                    tracing::warn!(secret = %format!("{namespace}/{name}"), "the webhook Secret is missing or holds no key: no notification format is served");
                }
                keys.replace(found);
                tracing::info!(formats = ?keys.enabled(), "notification formats served");
            }
            Err(err) => {
                tracing::warn!(error = %err, secret = %format!("{namespace}/{name}"), "watching the webhook Secret failed; retrying");
                tokio::time::sleep(std::time::Duration::from_secs(5)).await;
            }
        }
    }
}

fn apply(keys: &Keys, namespace: &str, name: &str, secret: &Secret) {
    let (found, unknown) = keys_of(secret.data.as_ref());
    if !unknown.is_empty() {
        tracing::warn!(secret = %format!("{namespace}/{name}"), keys = ?unknown, "webhook Secret keys that name no format are ignored");
    }
    keys.replace(found);
    tracing::info!(formats = ?keys.enabled(), "notification formats served");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_entries_named_like_formats_are_keys() {
        let data = BTreeMap::from([
            ("distribution".to_owned(), ByteString(b"token\n".to_vec())),
            ("github".to_owned(), ByteString(b"hmac".to_vec())),
            ("harbor".to_owned(), ByteString(Vec::new())),
            ("nexus".to_owned(), ByteString(b"x".to_vec())),
        ]);
        let (keys, unknown) = keys_of(Some(&data));
        assert_eq!(keys.len(), 2);
        assert_eq!(&*keys[&Format::Distribution], b"token");
        assert_eq!(&*keys[&Format::Github], b"hmac");
        assert_eq!(unknown, ["nexus"]);
        let keys = Keys::from_pairs([(Format::Github, &b"hmac"[..])]);
        assert_eq!(format!("{keys:?}"), r#"{"github"}"#);
        assert!(keys.get(Format::Harbor).is_none());
    }

    #[test]
    fn the_secret_is_named_namespace_slash_name() {
        assert_eq!(
            secret_ref("imagestream-operator/webhook"),
            Ok(("imagestream-operator".into(), "webhook".into()))
        );
        for bad in ["webhook", "/webhook", "ns/", "a/b/c"] {
            assert!(secret_ref(bad).is_err(), "{bad}");
        }
    }
}
