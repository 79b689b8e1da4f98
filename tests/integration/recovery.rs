//! Recovery after a registry outage, against the real distribution registry: stopped, then started
//! again on the same address with the same storage. Every stream must recover within the recovery
//! bound of the import interval, `max(interval, 30 s)`, of the registry's return — measured in the
//! registry's request log and in the streams' status, not by the test's own (generous) timeout.

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use crate::support::*;
use imagestream_operator::api::ImageStream;
use imagestream_operator::domain::poll_schedule::recovery_bound;
use imagestream_operator::registry::{LimitsConfig, RegistryClientConfig};
use imagestream_testenv::RegistryOptions;
use imagestream_testenv::images::{ImagePusher, ManifestFormat};
use kube::Api;

/// Short, so the test is; its recovery bound is the 30 s floor.
const INTERVAL: Duration = Duration::from_secs(15);
/// Long enough for the failures to grow a host's backoff well past the bound (before the fix
/// streams recovered 66 s or 249 s after an outage this long).
const OUTAGE: Duration = Duration::from_secs(60);
/// How much later than its first successful request a stream's status may show the recovery: one
/// reconcile and one status write, read by a poll every 200 ms.
const STATUS_WRITE: Duration = Duration::from_secs(2);

#[tokio::test]
async fn after_a_registry_outage_every_stream_recovers_within_the_recovery_bound_of_its_return() {
    let env = crate::support::env().await;
    let ns = env.namespace("recovery").await;
    let client = env.client().await;
    let mut registry = env
        .start_registry("recovery", &RegistryOptions::default())
        .await
        .unwrap();
    let pusher = ImagePusher::for_registry(&registry);
    let mut repositories = Vec::new();
    for n in 0..5 {
        let repository = unique(&format!("recovery{n}"));
        pusher
            .push_random(&repository, "v1", ManifestFormat::Oci)
            .await
            .unwrap();
        repositories.push(repository);
    }
    // The registry client as `run` builds it for this interval.
    let _operator = start_operator_with(
        client.clone(),
        &ns,
        config(INTERVAL),
        RegistryClientConfig {
            limits: LimitsConfig::for_interval(INTERVAL),
            ..RegistryClientConfig::default()
        },
    )
    .await;
    let api = Api::<ImageStream>::namespaced(client.clone(), &ns);
    let names: Vec<String> = (0..5).map(|n| format!("app{n}")).collect();
    let host = registry.host().to_owned();
    let from = |n: usize| format!("{host}/{}:v1", repositories[n]);
    // Four scheduled streams, imported before the outage.
    for (n, name) in names[..4].iter().enumerate() {
        create_stream(&api, name, vec![docker_tag("v1", &from(n), true)]).await;
    }
    for name in &names[..4] {
        wait_for(&api, name, "the first import", |s| {
            current_image(s, "v1").is_some()
        })
        .await;
    }

    registry.stop();
    let stopped = tokio::time::Instant::now();
    // A fifth stream, not scheduled, whose first import meets the outage.
    create_stream(&api, &names[4], vec![docker_tag("v1", &from(4), false)]).await;
    eventually("every stream to show the outage", OUTAGE, || {
        let (api, names) = (api.clone(), names.clone());
        async move {
            let mut healthy = Vec::new();
            for name in &names {
                let stream = api.get(name).await.unwrap();
                if condition_reason(&stream, "v1").is_none() {
                    healthy.push(name.clone());
                }
            }
            if healthy.is_empty() {
                Ok(())
            } else {
                Err(format!("no failure condition on {healthy:?}"))
            }
        }
    })
    .await;
    tokio::time::sleep_until(stopped + OUTAGE).await;
    let marks: Vec<usize> = repositories
        .iter()
        .map(|repository| registry.requests_for(repository).len())
        .collect();

    registry.restart().await.unwrap();
    // `restart` returns as soon as the registry accepts connections.
    let returned = SystemTime::now();
    let recovered = status_recoveries(&api, &names).await;

    let bound = recovery_bound(INTERVAL);
    let mut report = Vec::new();
    for (n, name) in names.iter().enumerate() {
        // The registry logs whole seconds: the request was answered in that second or later.
        let answered = requests_since(&registry, &repositories[n], marks[n])
            .into_iter()
            .find(|r| r.status == 200)
            .and_then(|r| r.time)
            .unwrap_or_else(|| panic!("{name}: no successful request after the return"));
        let by_log = answered.duration_since(returned).unwrap_or(Duration::ZERO);
        let by_status = recovered[name].duration_since(returned).unwrap();
        report.push(format!("{name}: log {by_log:?}, status {by_status:?}"));
        assert!(
            by_log <= bound,
            "{name}: first answered {by_log:?} after the registry's return; all: {report:?}"
        );
        assert!(
            by_status <= bound + STATUS_WRITE,
            "{name}: status recovered {by_status:?} after the registry's return; all: {report:?}"
        );
    }
    eprintln!("recovery after a {OUTAGE:?} outage, bound {bound:?}: {report:?}");
}

/// Polls every stream until its tag has an image and no failure condition, and returns when each
/// was first seen so. Fails after five minutes: far beyond any bound, a stall.
async fn status_recoveries(
    api: &Api<ImageStream>,
    names: &[String],
) -> HashMap<String, SystemTime> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(300);
    let mut recovered = HashMap::new();
    while recovered.len() < names.len() {
        for name in names {
            if recovered.contains_key(name) {
                continue;
            }
            let stream = api.get(name).await.unwrap();
            if condition_reason(&stream, "v1").is_none() && current_image(&stream, "v1").is_some() {
                recovered.insert(name.clone(), SystemTime::now());
            }
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "streams still failing five minutes after the registry's return; recovered: {recovered:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    recovered
}
