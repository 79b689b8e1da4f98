//! Pure domain rules: no Kubernetes client, no HTTP, no tokio I/O. Everything here is tested with plain
//! unit tests.

pub mod image_name;
