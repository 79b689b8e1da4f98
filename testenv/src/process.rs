//! Child processes of the local environment (etcd, kube-apiserver, registries). They are spawned from
//! one long-lived thread with `PR_SET_PDEATHSIG`, so they die with the process that started them even
//! when it is killed, and a stop at exit removes their scratch directories.

use std::fs::File;
use std::io;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Mutex, OnceLock};

/// A child process with its output captured in a log file; killed when dropped.
#[derive(Debug)]
pub struct ManagedProcess {
    name: String,
    child: Child,
    log: PathBuf,
}

impl ManagedProcess {
    /// Starts `command` with stdout and stderr appended to `log`.
    pub fn spawn(name: &str, mut command: Command, log: &Path) -> io::Result<Self> {
        let out = File::create(log)?;
        let err = out.try_clone()?;
        command
            .stdin(Stdio::null())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err));
        // SAFETY: the closure only calls async-signal-safe functions (prctl, getppid, kill).
        unsafe {
            command.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = spawner_spawn(command)?;
        register_pid(child.id());
        Ok(Self {
            name: name.to_owned(),
            child,
            log: log.to_owned(),
        })
    }

    /// The process name given at spawn, for messages.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The file that receives the process's stdout and stderr.
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// The last lines of the log, for error messages.
    pub fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// The process id (for `/proc/<pid>`).
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// `Some(status)` when the process has already exited.
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        let status = self.child.try_wait().ok().flatten();
        if status.is_some() {
            forget_pid(self.child.id());
        }
        status
    }

    /// Asks the process to stop with SIGTERM; [`Self::exited`] tells when it has.
    pub fn terminate(&mut self) {
        if self.exited().is_none() {
            // Only fails when the process is gone already, which is what the caller wants.
            let _ = send_sigterm(self.child.id());
        }
    }

    /// Kills the process and waits for it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        forget_pid(self.child.id());
    }
}

/// Sends SIGTERM to `pid`, which must be a child of this process that has not been reaped yet
/// (then the pid cannot have been reused).
pub fn send_sigterm(pid: u32) -> io::Result<()> {
    let pid =
        libc::pid_t::try_from(pid).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: kill(2) has no memory effects; the caller guarantees the pid is its own child.
    if unsafe { libc::kill(pid, libc::SIGTERM) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Clock ticks per second (`sysconf(_SC_CLK_TCK)`), the unit of CPU times in `/proc/<pid>/stat`.
pub fn clock_ticks_per_second() -> f64 {
    // SAFETY: sysconf has no preconditions.
    unsafe { libc::sysconf(libc::_SC_CLK_TCK) as f64 }
}

impl Drop for ManagedProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

type SpawnRequest = (Command, mpsc::Sender<io::Result<Child>>);

/// `PR_SET_PDEATHSIG` fires when the *thread* that forked the child exits, and test threads are short
/// lived; so every child is forked by this one thread, which lives as long as the process.
fn spawner_spawn(command: Command) -> io::Result<Child> {
    static SPAWNER: OnceLock<Mutex<mpsc::Sender<SpawnRequest>>> = OnceLock::new();
    let sender = SPAWNER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<SpawnRequest>();
        std::thread::Builder::new()
            .name("testenv-spawner".into())
            .spawn(move || {
                for (mut command, reply) in rx {
                    let _ = reply.send(command.spawn());
                }
                // The channel lives in a static, so this point is never reached before exit.
                loop {
                    std::thread::park();
                }
            })
            .expect("spawn the process-spawner thread");
        Mutex::new(tx)
    });
    let (reply_tx, reply_rx) = mpsc::channel();
    sender
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .send((command, reply_tx))
        .map_err(|_| io::Error::other("the process-spawner thread is gone"))?;
    reply_rx
        .recv()
        .map_err(|_| io::Error::other("the process-spawner thread did not answer"))?
}

static AT_EXIT: Mutex<AtExit> = Mutex::new(AtExit {
    pids: Vec::new(),
    dirs: Vec::new(),
    registered: false,
});

struct AtExit {
    pids: Vec<u32>,
    dirs: Vec<PathBuf>,
    registered: bool,
}

fn register_pid(pid: u32) {
    let mut at_exit = AT_EXIT.lock().unwrap_or_else(|p| p.into_inner());
    at_exit.pids.push(pid);
    ensure_hook(&mut at_exit);
}

/// A reaped child's pid may be reused by an unrelated process, so the stop at exit must not kill it.
fn forget_pid(pid: u32) {
    let mut at_exit = AT_EXIT.lock().unwrap_or_else(|p| p.into_inner());
    at_exit.pids.retain(|&known| known != pid);
}

/// Removes `dir` when the process exits (after its children are killed).
pub fn remove_at_exit(dir: &Path) {
    let mut at_exit = AT_EXIT.lock().unwrap_or_else(|p| p.into_inner());
    at_exit.dirs.push(dir.to_owned());
    ensure_hook(&mut at_exit);
}

fn ensure_hook(at_exit: &mut AtExit) {
    if !at_exit.registered {
        at_exit.registered = true;
        // SAFETY: registering a plain `extern "C"` function with no captured state.
        unsafe {
            libc::atexit(stop_everything);
        }
    }
}

extern "C" fn stop_everything() {
    let Ok(mut at_exit) = AT_EXIT.try_lock() else {
        return;
    };
    for pid in at_exit.pids.drain(..) {
        // SAFETY: kill(2) on a pid this process spawned; a stale pid at worst gets ESRCH.
        unsafe {
            libc::kill(pid as libc::pid_t, libc::SIGKILL);
        }
    }
    if std::env::var_os("TESTENV_KEEP").is_none() {
        for dir in at_exit.dirs.drain(..) {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}
