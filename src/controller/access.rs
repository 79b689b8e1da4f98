//! Reading image streams on behalf of someone else: the cached stream lookup both controllers use,
//! and the SubjectAccessReview that decides whether a service account may `get` image streams in
//! another namespace before the operator acts on a cross-namespace reference.

use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
};
use kube::api::PostParams;
use kube::core::DeserializeGuard;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, Client};

use crate::api::ImageStream;
use crate::domain::backoff::Backoff;

/// How soon a refused cross-namespace reference (a trigger, or a tag copied from another
/// namespace) is checked again: 5 s, doubling up to 5 minutes, so a grant takes effect without a
/// change to the object that was refused.
pub const ACCESS_RECHECK: Backoff = Backoff::new(
    std::time::Duration::from_secs(5),
    std::time::Duration::from_secs(300),
);

/// The stream `namespace/name` from a cache, if it is there and matches the schema.
pub fn lookup_stream(
    store: &Store<DeserializeGuard<ImageStream>>,
    namespace: &str,
    name: &str,
) -> Option<ImageStream> {
    let guard = store.get(&ObjectRef::new(name).within(namespace))?;
    guard.0.as_ref().ok().cloned()
}

/// Whether service account `account_namespace/account` may `get` image streams in
/// `stream_namespace` (the one named `stream`, or any when `None`), as the API server's
/// authorizer answers for that account and its groups.
pub async fn service_account_may_get_image_streams(
    client: &Client,
    account_namespace: &str,
    account: &str,
    stream_namespace: &str,
    stream: Option<&str>,
) -> Result<bool, kube::Error> {
    let review = SubjectAccessReview {
        spec: SubjectAccessReviewSpec {
            user: Some(format!(
                "system:serviceaccount:{account_namespace}:{account}"
            )),
            groups: Some(vec![
                "system:serviceaccounts".into(),
                format!("system:serviceaccounts:{account_namespace}"),
                "system:authenticated".into(),
            ]),
            resource_attributes: Some(ResourceAttributes {
                group: Some("image.openshift.io".into()),
                resource: Some("imagestreams".into()),
                verb: Some("get".into()),
                namespace: Some(stream_namespace.into()),
                name: stream.map(str::to_owned),
                ..ResourceAttributes::default()
            }),
            ..SubjectAccessReviewSpec::default()
        },
        ..SubjectAccessReview::default()
    };
    let answer = Api::<SubjectAccessReview>::all(client.clone())
        .create(&PostParams::default(), &review)
        .await?;
    Ok(answer.status.is_some_and(|status| status.allowed))
}
