//! Python's real Pyro5 (5.17, from PyPI) in a virtualenv made on first use
//! at `target/pyro5-venv`, for the interop tests. `.ci/run` makes it before
//! the tests run; without network or `python3 -m venv`, the tests that need
//! it fail, saying why.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// The Pyro5 release the tests speak to.
pub const PYRO5: &str = "Pyro5==5.17";

fn venv() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("target").join("pyro5-venv")
}

fn ready(python: &Path) -> bool {
    Command::new(python)
        .args(["-c", "import Pyro5; assert Pyro5.__version__ == '5.17', Pyro5.__version__"])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// The virtualenv's `python`, with Pyro5 installed (made once, by whichever
/// test process gets there first; the others wait for it).
pub fn python() -> PathBuf {
    let venv = venv();
    let python = venv.join("bin").join("python");
    if ready(&python) {
        return python;
    }
    let lock = venv.with_extension("lock");
    let started = Instant::now();
    loop {
        match std::fs::create_dir(&lock) {
            Ok(()) => break,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                if ready(&python) {
                    return python;
                }
                // A lock left by a process that died while installing.
                let stale = std::fs::metadata(&lock)
                    .and_then(|m| m.modified())
                    .is_ok_and(|t| t.elapsed().unwrap_or_default() > Duration::from_secs(600));
                if stale {
                    let _ = std::fs::remove_dir(&lock);
                }
                assert!(
                    started.elapsed() < Duration::from_secs(600),
                    "waited 10 minutes for another test to install Pyro5 into {}",
                    venv.display()
                );
                std::thread::sleep(Duration::from_millis(500));
            }
            Err(e) => panic!("cannot make {}: {e}", lock.display()),
        }
    }
    let made = (|| -> Result<(), String> {
        if !ready(&python) {
            let status = Command::new("python3").arg("-m").arg("venv").arg(&venv).status();
            if !status.as_ref().is_ok_and(|s| s.success()) {
                return Err(format!("`python3 -m venv {}` failed: {status:?}", venv.display()));
            }
            let pip = venv.join("bin").join("pip");
            let status = Command::new(&pip).args(["install", "--quiet", PYRO5]).status();
            if !status.as_ref().is_ok_and(|s| s.success()) {
                return Err(format!("`pip install {PYRO5}` failed: {status:?} (is PyPI reachable?)"));
            }
        }
        Ok(())
    })();
    let _ = std::fs::remove_dir(&lock);
    if let Err(e) = made {
        panic!("the Pyro5 interop tests need Python's Pyro5 5.17 in a virtualenv: {e}");
    }
    assert!(ready(&python), "Pyro5 5.17 was installed into {} but does not import", venv.display());
    python
}

/// Runs `script` with the virtualenv's Python (Pyro5 on json), with `args`,
/// for at most `limit`; its stdout, or a panic with its stderr.
pub fn run_python(script: &str, args: &[&str], limit: Duration) -> String {
    let python = python();
    let mut child = Command::new(python)
        .arg("-c")
        .arg(script)
        .args(args)
        .env("PYRO_SERIALIZER", "json")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start python");
    let started = Instant::now();
    loop {
        if let Some(_status) = child.try_wait().expect("wait for python") {
            break;
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the Python script ran for more than {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let output = child.wait_with_output().expect("python's output");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "the Python script failed ({}):\n--- stdout\n{stdout}\n--- stderr\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}
