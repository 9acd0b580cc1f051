//! Background processes of a test (servers, dockerd): started with their output in a log file, stopped with SIGTERM.

use std::fs::{self, File};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// A process started for a test, with stdout and stderr going to `log`.
pub struct Service {
    pub name: String,
    pub child: Child,
    pub log: PathBuf,
    /// Set once the harness stopped it on purpose, so that its exit is not a failure.
    pub stopped: bool,
}

impl Service {
    pub fn spawn(name: &str, command: &mut Command, log: PathBuf) -> Result<Service, String> {
        let file = File::create(&log).map_err(|e| format!("create {}: {e}", log.display()))?;
        let child = command
            .stdin(Stdio::null())
            .stdout(file.try_clone().map_err(|e| e.to_string())?)
            .stderr(file)
            .spawn()
            .map_err(|e| format!("cannot start {name} ({command:?}): {e}"))?;
        Ok(Service { name: name.to_owned(), child, log, stopped: false })
    }

    /// The exit status if the process has ended although nobody stopped it.
    pub fn died(&mut self) -> Option<ExitStatus> {
        if self.stopped {
            return None;
        }
        self.child.try_wait().ok().flatten()
    }

    /// Stops the process (SIGTERM, SIGKILL after `grace`); returns whether SIGTERM sufficed.
    pub fn stop(&mut self, grace: Duration) -> bool {
        self.stopped = true;
        terminate(&mut self.child, grace)
    }

    /// The last `lines` lines of the process's output under a header naming it.
    pub fn log_tail(&self, lines: usize) -> String {
        let text = fs::read_to_string(&self.log).unwrap_or_default();
        format!("--- {} log ---\n{}", self.name, tail(&text, lines))
    }
}

/// The last `lines` lines of `text`.
pub(crate) fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Stops every service at once: SIGTERM to all, then waits; returns the names of those that had to be killed.
pub(crate) fn stop_all(services: &mut [Service], grace: Duration) -> Vec<String> {
    for service in services.iter_mut() {
        if !service.stopped {
            send_sigterm(&service.child);
        }
    }
    services
        .iter_mut()
        .filter(|service| !service.stopped)
        .filter_map(|service| (!service.stop(grace)).then(|| service.name.clone()))
        .collect()
}

/// SIGTERM, then SIGKILL if the process has not exited within `grace`: a graceful stop is what users do, and a
/// process that ignores it must not outlive the test. Returns whether it stopped on SIGTERM.
pub(crate) fn terminate(child: &mut Child, grace: Duration) -> bool {
    if let Ok(Some(_)) = child.try_wait() {
        return true;
    }
    send_sigterm(child);
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return true;
        }
        thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
    false
}

fn send_sigterm(child: &Child) {
    // The shell's builtin `kill`: procps' /bin/kill is not on every machine, and std cannot send SIGTERM.
    let sent = Command::new("sh").args(["-c", "kill -TERM \"$1\" 2>/dev/null", "sh"]).arg(child.id().to_string()).status();
    if !sent.as_ref().is_ok_and(|s| s.success()) {
        // The process may have exited on its own in the meantime; `terminate` finds that out.
        eprintln!("could not send SIGTERM to process {}: {sent:?}", child.id());
    }
}
