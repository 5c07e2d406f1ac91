//! Prism, the OpenAPI validating proxy, in front of a simulator: a request or an answer that
//! breaks the spec makes Prism answer 422 or 500, which fails the command and so the test.
//! It comes from `scripts/prism.sh install` (run by `scripts/test.sh`); tests fail, rather
//! than skip, when it is missing.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::root;

pub fn prism_binary() -> PathBuf {
    if let Some(p) = std::env::var_os("FITTER_PRISM") {
        return PathBuf::from(p);
    }
    let out = Command::new(root().join("scripts/prism.sh"))
        .arg("path")
        .output()
        .expect("scripts/prism.sh runs");
    assert!(
        out.status.success(),
        "Prism is not installed: run `scripts/prism.sh install` (scripts/test.sh does)"
    );
    PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts Prism in front of the simulator, under a watchdog shell that stops it when this
/// test process is gone (a static is never dropped).
pub fn start_prism(spec: &Path, upstream: &str) -> String {
    let port = free_port();
    let prism = prism_binary();
    let script = format!(
        "\"$0\" proxy -h 127.0.0.1 -p {port} --errors \"$1\" {upstream} >\"$2\" 2>&1 & p=$!; \
         while kill -0 {me} 2>/dev/null && kill -0 $p 2>/dev/null; do sleep 1; done; kill $p 2>/dev/null",
        me = std::process::id()
    );
    let log = std::env::temp_dir().join(format!("fitter-prism-{port}.log"));
    let mut watchdog: Child = Command::new("sh")
        .arg("-c")
        .arg(script)
        .arg(&prism)
        .arg(spec)
        .arg(&log)
        .stdin(Stdio::null())
        .spawn()
        .expect("prism starts");
    std::thread::spawn(move || watchdog.wait());
    let deadline = Instant::now() + Duration::from_secs(90);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "Prism did not listen on {port} within 90 s; its log: {}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    format!("http://127.0.0.1:{port}")
}
