//! What keeps a bug from stalling the operator silently. A panic while handling one object is
//! caught where that object is handled ([`catch_panic`]) and becomes that object's failure; the
//! long-lived tasks of the controllers are [`Supervised`]: if one ends before the controllers are
//! asked to stop, the controllers stop, `/healthz` and `/readyz` fail, and the process exits non-zero
//! so that it is restarted (and a standby takes the Lease).

use std::any::Any;
use std::future::Future;
use std::panic::AssertUnwindSafe;

use futures::FutureExt;
use thiserror::Error;
use tokio::task::{JoinError, JoinHandle};

/// A long-lived task of the controllers ended while they were running.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("the {task} ended while the controllers were running: {why}")]
pub struct ControllersEnded {
    /// The task, e.g. `import engine`.
    pub task: &'static str,
    /// `panicked: <message>`, or that it returned.
    pub why: String,
}

/// Runs `future`, turning a panic into `Err(message)`. The future's state is dropped with the
/// panic; nothing it shared is left half-written behind a lock (the operator's shared state
/// recovers poisoned locks), so the caller may go on with other objects.
pub async fn catch_panic<F: Future>(future: F) -> Result<F::Output, String> {
    AssertUnwindSafe(future)
        .catch_unwind()
        .await
        .map_err(|payload| panic_message(payload.as_ref()))
}

/// The message a panic was raised with (`panic!("…")` carries a `&str` or a `String`).
pub fn panic_message(payload: &(dyn Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".to_owned())
}

/// The long-lived tasks of one run of the controllers, by name.
#[derive(Default)]
pub struct Supervised {
    tasks: Vec<(&'static str, JoinHandle<()>)>,
}

impl Supervised {
    /// Spawns `task` under `name`.
    pub fn spawn(&mut self, name: &'static str, task: impl Future<Output = ()> + Send + 'static) {
        self.tasks.push((name, tokio::spawn(task)));
    }

    /// Resolves when the first task ends, with its name and why; never resolves without tasks.
    pub async fn first_ended(&mut self) -> ControllersEnded {
        if self.tasks.is_empty() {
            return std::future::pending().await;
        }
        let (result, index, _) =
            futures::future::select_all(self.tasks.iter_mut().map(|(_, task)| task)).await;
        let (task, _) = self.tasks.remove(index);
        ControllersEnded {
            task,
            why: why_ended(result),
        }
    }

    /// Stops every task still running.
    pub fn abort_all(&self) {
        for (_, task) in &self.tasks {
            task.abort();
        }
    }
}

fn why_ended(result: Result<(), JoinError>) -> String {
    match result {
        Ok(()) => "it returned".to_owned(),
        Err(err) if err.is_panic() => {
            format!("it panicked: {}", panic_message(err.into_panic().as_ref()))
        }
        Err(_) => "it was cancelled".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn a_caught_panic_becomes_its_message_and_a_value_passes_through() {
        assert_eq!(catch_panic(async { 7 }).await, Ok(7));
        let caught = catch_panic(async {
            let sizes: [i64; 2] = [i64::MAX, 1];
            if sizes[0].checked_add(sizes[1]).is_none() {
                panic!("attempt to add with overflow");
            }
        })
        .await;
        assert_eq!(caught, Err("attempt to add with overflow".to_owned()));
        let formatted = catch_panic(async { panic!("layer {} of {}", 3, "app") }).await;
        assert_eq!(formatted, Err("layer 3 of app".to_owned()));
    }

    #[tokio::test]
    async fn the_first_task_to_end_is_named_with_why() {
        let mut tasks = Supervised::default();
        tasks.spawn("trigger controller", std::future::pending());
        tasks.spawn("import engine", async {
            tokio::time::sleep(Duration::from_millis(10)).await;
            panic!("attempt to add with overflow");
        });
        let ended = tasks.first_ended().await;
        assert_eq!(
            ended,
            ControllersEnded {
                task: "import engine",
                why: "it panicked: attempt to add with overflow".into(),
            }
        );
        tasks.spawn("housekeeping", async {});
        assert_eq!(tasks.first_ended().await.why, "it returned");
        tasks.abort_all();
        assert_eq!(tasks.first_ended().await.why, "it was cancelled");
    }
}
