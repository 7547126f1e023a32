//! What the benchmarks share: the real `agentd` binary, started on a fresh data
//! directory against a scripted model.

use std::process::Stdio;

use agentd_testkit::ScriptedModel;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

pub const BIN: &str = env!("CARGO_BIN_EXE_agentd");

pub struct Agentd {
    pub child: Child,
    pub base: String,
    pub key: String,
    dir: tempfile::TempDir,
}

impl Agentd {
    /// `agentd serve` on 127.0.0.1 with a key of its own, the model at `model`, logging
    /// warnings only, and `env` on top.
    pub async fn start(model: &ScriptedModel, env: &[(&str, &str)]) -> Agentd {
        let dir = tempfile::tempdir().expect("temp dir");
        let out = Command::new(BIN)
            .args(["keys", "create", "--org", "bench", "--data-dir"])
            .arg(dir.path())
            .output()
            .await
            .expect("keys create");
        let key = String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .last()
            .unwrap()
            .to_string();
        let mut child = Command::new(BIN)
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(dir.path())
            .env("AGENTD_MODEL_BASE_URL", model.base_url())
            .env("AGENTD_MODEL", "scripted")
            .env("AGENTD_LOG", "warn")
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("agentd serve");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let line = lines.next_line().await.unwrap().unwrap();
        let base = line
            .strip_prefix("agentd listening on ")
            .unwrap()
            .to_string();
        Agentd {
            child,
            base,
            key,
            dir,
        }
    }

    #[allow(dead_code)] // used by the platform bench only
    pub fn rss_kib(&self) -> u64 {
        let pid = self.child.id().expect("pid");
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    }

    /// The value of the first `/metrics` line that starts with `line_prefix` (a name
    /// with its labels), e.g. `agentd_x{quantile="0.5"}`.
    pub async fn metric(&self, line_prefix: &str) -> Option<f64> {
        let response = reqwest::get(format!("{}/metrics", self.base)).await.ok()?;
        let text = response.text().await.ok()?;
        text.lines()
            .find_map(|l| l.strip_prefix(line_prefix))
            .and_then(|v| v.trim().parse().ok())
    }

    /// The pid of the server's Chromium, from its pid file.
    #[allow(dead_code)] // used by the browser bench only
    pub fn browser_pid(&self) -> u32 {
        std::fs::read_to_string(self.dir.path().join("browser/chromium.pid"))
            .expect("a browser runs")
            .trim()
            .parse()
            .expect("a pid")
    }
}
