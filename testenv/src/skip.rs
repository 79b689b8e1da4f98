//! Skipped tests told apart from passed ones: libtest can only report a test that returned early as
//! passed, so a test that cannot run its subject here records itself, and `hack/run-tests.sh`
//! counts the records as skipped in its total line and lists them with their reasons.

/// The variable naming the file where skipped tests are recorded; `hack/run-tests.sh` sets it.
pub const SKIP_LOG_VARIABLE: &str = "IMAGESTREAM_TEST_SKIP_LOG";

/// Records that the running test could not run its subject here, and why. The caller returns right
/// after. `make test` counts the test as skipped, not passed, and prints the reason.
pub fn skip(reason: &str) {
    let test = std::thread::current()
        .name()
        .unwrap_or("an unnamed test")
        .to_owned();
    eprintln!("skipped: {test}: {reason}");
    if let Some(path) = std::env::var_os(SKIP_LOG_VARIABLE) {
        use std::io::Write;
        let record = format!("{test}\t{reason}\n");
        let written = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(&path)
            .and_then(|mut file| file.write_all(record.as_bytes()));
        if let Err(err) = written {
            panic!("could not record the skip of {test} in {path:?}: {err}");
        }
    }
}
