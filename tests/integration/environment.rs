//! The integration-test environment itself: a real kube-apiserver with etcd and a real registry,
//! started by the harness on 127.0.0.1.

use k8s_openapi::api::core::v1::ConfigMap;
use kube::Api;
use kube::api::PostParams;

#[tokio::test]
async fn the_apiserver_stores_objects_in_a_namespace_of_the_test() {
    let env = crate::support::env().await;
    let namespace = env.namespace("env").await;
    let api = Api::<ConfigMap>::namespaced(env.client().await, &namespace);
    let mut cm = ConfigMap::default();
    cm.metadata.name = Some("probe".into());
    cm.data = Some([("k".to_string(), "v".to_string())].into());
    api.create(&PostParams::default(), &cm).await.unwrap();
    let stored = api.get("probe").await.unwrap();
    assert_eq!(stored.data.unwrap()["k"], "v");
    assert!(stored.metadata.resource_version.is_some());
}

#[tokio::test]
async fn the_registry_logs_every_request_it_answers() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let env = crate::support::env().await;
    let registry = env.registry();
    let repository = format!("probe/r{:08x}", rand::random::<u32>());
    let mut stream = tokio::net::TcpStream::connect(registry.host())
        .await
        .unwrap();
    let request = format!(
        "HEAD /v2/{repository}/manifests/latest HTTP/1.1\r\nHost: {}\r\nUser-Agent: environment-test\r\nConnection: close\r\n\r\n",
        registry.host()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 404"), "{answer}");
    // The access log is written after the response; give it a moment.
    let mut logged = Vec::new();
    for _ in 0..50 {
        logged = registry.requests_for(&repository);
        if !logged.is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(logged.len(), 1, "{logged:?}");
    assert_eq!(logged[0].method, "HEAD");
    assert_eq!(logged[0].status, 404);
    assert_eq!(logged[0].user_agent, "environment-test");
}
