//! The Chromium process: found, launched, watched, and never left behind.
//!
//! Chromium runs in its own process group, so one signal ends the browser and every
//! renderer it forked. Its pid is written to `<dir>/chromium.pid`: agentd stops the group
//! when it stops, and a start after a crash of agentd (SIGKILL leaves no chance to clean
//! up) stops whatever the previous run left before it launches its own.

use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

const PID_FILE: &str = "chromium.pid";
/// Marks our browsers' command lines, so a stale pid that now belongs to another
/// program is never signalled.
const PROFILE_PREFIX: &str = "agentd-chromium-profile";
const LAUNCH_TIMEOUT: Duration = Duration::from_secs(30);

/// Where to look for Chromium when the config names none, in order.
const CANDIDATES: &[&str] = &[
    "chromium",
    "chromium-browser",
    "google-chrome",
    "google-chrome-stable",
];

/// Finds the browser binary: `configured` if given, else the first candidate on PATH.
pub fn find_chromium(configured: Option<&Path>) -> Result<PathBuf, String> {
    if let Some(path) = configured {
        return if path.is_file() {
            Ok(path.to_path_buf())
        } else {
            Err(format!(
                "the configured browser {} does not exist",
                path.display()
            ))
        };
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&path) {
        for name in CANDIDATES {
            let candidate = dir.join(name);
            if candidate.is_file() {
                return Ok(candidate);
            }
        }
    }
    Err(format!(
        "no Chromium found on PATH (looked for {}); install Debian's `chromium` or set browser.chromium in the config",
        CANDIDATES.join(", ")
    ))
}

pub struct ChromiumProcess {
    child: Child,
    pid: u32,
    pid_file: PathBuf,
    profile: PathBuf,
    pub ws_url: String,
}

/// Makes the kernel kill Chromium when agentd dies, even by SIGKILL, so a crash leaves no
/// browser running (its helpers follow the main process; `clean_up_leftovers` catches any
/// that do not). The signal is tied to the thread that forks: launches happen on the
/// runtime's worker threads, which live as long as agentd.
#[allow(unsafe_code)]
fn die_with_parent(command: &mut std::process::Command) {
    let parent = rustix::process::getpid();
    // SAFETY: the hook runs in the forked child before exec. It makes two system calls
    // (prctl and getppid), both async-signal-safe, and allocates nothing, not even for its
    // errors (`io::Error` from an errno is a plain code).
    unsafe {
        command.pre_exec(move || {
            rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::KILL))?;
            // agentd may have died between fork and prctl: then no signal would ever come.
            if rustix::process::getppid() != Some(parent) {
                return Err(rustix::io::Errno::SRCH.into());
            }
            Ok(())
        });
    }
}

impl ChromiumProcess {
    /// Launches Chromium with a fresh profile under `dir`; every request of the default
    /// browser context goes through `proxy` (contexts of sessions get their own).
    pub async fn launch(binary: &Path, dir: &Path, proxy: &str) -> Result<Self, String> {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let profile = dir.join(format!("{PROFILE_PREFIX}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&profile);
        let mut command = Command::new(binary);
        command
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--disable-quic",
                "--no-first-run",
                "--no-default-browser-check",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--disable-extensions",
                "--disable-default-apps",
                "--disable-domain-reliability",
                "--disable-client-side-phishing-detection",
                "--disable-features=Translate,MediaRouter,OptimizationHints,AutofillServerCommunication",
                "--metrics-recording-only",
                "--mute-audio",
                "--hide-scrollbars",
                "--password-store=basic",
                "--use-mock-keychain",
                // WebRTC could otherwise reach addresses around the proxy.
                "--force-webrtc-ip-handling-policy=disable_non_proxied_udp",
                "--webrtc-ip-handling-policy=disable_non_proxied_udp",
                "--proxy-bypass-list=<-loopback>",
                "--remote-debugging-address=127.0.0.1",
                "--remote-debugging-port=0",
            ])
            .arg(format!("--proxy-server={proxy}"))
            .arg(format!("--user-data-dir={}", profile.display()))
            .arg("about:blank")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        command.as_std_mut().process_group(0);
        die_with_parent(command.as_std_mut());
        let mut child = command
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", binary.display()))?;
        let pid = child.id().unwrap_or(0);
        let pid_file = dir.join(PID_FILE);
        if let Err(e) = std::fs::write(&pid_file, pid.to_string()) {
            tracing::warn!(error = %e, "cannot record the browser's pid");
        }
        let stderr = child.stderr.take().ok_or("no stderr")?;
        let mut lines = BufReader::new(stderr).lines();
        let ws_url = tokio::time::timeout(LAUNCH_TIMEOUT, async {
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some(url) = line.strip_prefix("DevTools listening on ") {
                    return Some(url.trim().to_string());
                }
                tracing::debug!(target: "chromium", "{line}");
            }
            None
        })
        .await;
        let mut process = ChromiumProcess {
            child,
            pid,
            pid_file,
            profile,
            ws_url: String::new(),
        };
        match ws_url {
            Ok(Some(url)) => process.ws_url = url,
            Ok(None) => {
                let status = process.child.wait().await.ok();
                return Err(format!("the browser exited at start ({status:?})"));
            }
            Err(_) => return Err("the browser did not start within 30 s".to_string()),
        }
        // Keep draining stderr, or Chromium blocks once the pipe fills.
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                tracing::trace!(target: "chromium", "{line}");
            }
        });
        tracing::info!(pid, "browser started");
        Ok(process)
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Ends the browser and all its children, and forgets its profile.
    pub fn kill(&mut self) {
        kill_group(self.pid);
        let _ = self.child.start_kill();
        let _ = std::fs::remove_file(&self.pid_file);
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

impl Drop for ChromiumProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

fn kill_group(pid: u32) {
    let Some(pid) = i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
    else {
        return;
    };
    let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
}

/// The socket of a DevTools URL such as `ws://127.0.0.1:40123/devtools/browser/<id>`.
pub fn devtools_socket(ws_url: &str) -> Option<std::net::SocketAddr> {
    let rest = ws_url.strip_prefix("ws://")?;
    rest.split('/').next()?.parse().ok()
}

/// Whether any process of group `pgid` is still alive (zombies, which hold nothing but a
/// table entry, do not count). Read from `/proc`, since the group's helpers are not our
/// children and cannot be waited for.
pub fn group_alive(pgid: u32) -> bool {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return false;
    };
    entries.flatten().any(|entry| {
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            return false;
        };
        // After the parenthesised command name: state, ppid, pgrp, ...
        let Some((_, rest)) = stat.rsplit_once(')') else {
            return false;
        };
        let mut fields = rest.split_whitespace();
        let state = fields.next();
        let group = fields.nth(1).and_then(|g| g.parse::<u32>().ok());
        state != Some("Z") && group == Some(pgid)
    })
}

/// Waits until group `pgid` is gone, for at most `within`.
pub async fn wait_group_gone(pgid: u32, within: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + within;
    while group_alive(pgid) {
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    true
}

/// Stops a browser that an earlier run of agentd on this directory left running, and
/// removes its profiles. Returns the pid it stopped.
pub fn clean_up_leftovers(dir: &Path) -> Option<u32> {
    let mut stopped = None;
    if let Ok(text) = std::fs::read_to_string(dir.join(PID_FILE))
        && let Ok(pid) = text.trim().parse::<u32>()
    {
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let ours = String::from_utf8_lossy(&cmdline).contains(&format!(
            "--user-data-dir={}",
            dir.join(PROFILE_PREFIX).display()
        ));
        if ours {
            tracing::warn!(pid, "stopping a browser left by an earlier run");
            kill_group(pid);
            stopped = Some(pid);
        }
    }
    let _ = std::fs::remove_file(dir.join(PID_FILE));
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            if entry
                .file_name()
                .to_string_lossy()
                .starts_with(PROFILE_PREFIX)
            {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
    }
    stopped
}

#[cfg(test)]
mod tests {
    use super::devtools_socket;

    #[test]
    fn the_devtools_socket_is_read_off_its_url() {
        assert_eq!(
            devtools_socket("ws://127.0.0.1:40123/devtools/browser/abc"),
            Some("127.0.0.1:40123".parse().unwrap())
        );
        assert_eq!(devtools_socket("http://127.0.0.1:1/"), None);
    }
}
