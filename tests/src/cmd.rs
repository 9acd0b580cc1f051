//! Runs external commands with a deadline and panics with their full output when they do not do what a test expects.

use std::io::{Read, Write};
use std::process::{Command, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// Long enough for docker on vfs to push a few MB, short enough that a hung client fails the test instead of CI.
const TIMEOUT: Duration = Duration::from_secs(300);

/// Runs `cmd` and asserts it succeeded; the panic message carries the command line, stdout and stderr.
pub fn run(cmd: &mut Command) -> Output {
    let out = exec(cmd, None);
    if !out.status.success() {
        panic!("{} failed with {}\n{}", describe(cmd), out.status, streams(&out));
    }
    out
}

/// Runs `cmd` with `input` on its stdin and asserts it succeeded.
pub fn run_with_stdin(cmd: &mut Command, input: &[u8]) -> Output {
    let out = exec(cmd, Some(input));
    if !out.status.success() {
        panic!("{} failed with {}\n{}", describe(cmd), out.status, streams(&out));
    }
    out
}

/// Runs `cmd` and asserts it failed: for checks that something is gone or refused.
pub fn run_failing(cmd: &mut Command) -> Output {
    let out = exec(cmd, None);
    if out.status.success() {
        panic!("{} succeeded but was expected to fail\n{}", describe(cmd), streams(&out));
    }
    out
}

/// Runs `cmd`, asserts success and returns its stdout as trimmed text.
pub fn stdout_of(cmd: &mut Command) -> String {
    let out = run(cmd);
    String::from_utf8(out.stdout).unwrap_or_else(|e| panic!("{} printed non-UTF-8 output: {e}", describe(cmd))).trim().to_owned()
}

fn exec(cmd: &mut Command, input: Option<&[u8]>) -> Output {
    let what = describe(cmd);
    cmd.stdin(if input.is_some() { Stdio::piped() } else { Stdio::null() }).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("cannot start {what}: {e}"));

    // Pipes are drained on threads so that a chatty command cannot block on a full pipe while we wait for it.
    let writer = input.map(|bytes| {
        let mut stdin = child.stdin.take().expect("stdin is piped");
        let bytes = bytes.to_vec();
        thread::spawn(move || {
            // A command may legitimately exit before reading everything (e.g. tar finding its member early).
            let _ = stdin.write_all(&bytes);
        })
    });
    let stdout = drain(child.stdout.take().expect("stdout is piped"));
    let stderr = drain(child.stderr.take().expect("stderr is piped"));

    let deadline = Instant::now() + TIMEOUT;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(20)),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                let out = Output {
                    status: std::os::unix::process::ExitStatusExt::from_raw(9),
                    stdout: stdout.join().unwrap_or_default(),
                    stderr: stderr.join().unwrap_or_default(),
                };
                panic!("{what} did not finish within {TIMEOUT:?}\n{}", streams(&out));
            }
            Err(e) => panic!("cannot wait for {what}: {e}"),
        }
    };
    if let Some(writer) = writer {
        let _ = writer.join();
    }
    Output { status, stdout: stdout.join().expect("stdout reader panicked"), stderr: stderr.join().expect("stderr reader panicked") }
}

fn drain(mut pipe: impl Read + Send + 'static) -> thread::JoinHandle<Vec<u8>> {
    thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = pipe.read_to_end(&mut buf);
        buf
    })
}

fn describe(cmd: &Command) -> String {
    format!("`{cmd:?}`")
}

fn streams(out: &Output) -> String {
    format!("--- stdout ---\n{}\n--- stderr ---\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}
