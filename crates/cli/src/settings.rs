//! Configuration: defaults < config file < environment < flags. Secrets (model API
//! keys) are kept out of `Debug` output.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use agentd_engine::EngineConfig;
use agentd_model_client::ModelEndpoint;
use anyhow::{Context, bail};
use serde::Deserialize;
use serde_json::Value;

pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
pub const DEFAULT_DATA_DIR: &str = "./agentd-data";
/// The name the environment-configured model goes by.
pub const DEFAULT_MODEL_NAME: &str = "default";

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    listen: Option<String>,
    data_dir: Option<PathBuf>,
    public_url: Option<String>,
    max_concurrent_sessions: Option<u32>,
    max_queued_sessions: Option<u32>,
    default_model: Option<String>,
    #[serde(default)]
    models: BTreeMap<String, ModelConfig>,
    #[serde(default)]
    agents: Vec<toml::Value>,
    #[serde(default)]
    browser: BrowserFileConfig,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct BrowserFileConfig {
    /// The Chromium binary; found on PATH when absent.
    chromium: Option<PathBuf>,
    /// Hosts and CIDRs the browser may reach although they are internal.
    #[serde(default)]
    allow_hosts: Vec<String>,
    /// Browser contexts kept ready for the next sessions.
    warm_contexts: Option<usize>,
}

/// The browser's settings, as `agentd serve` hands them to the browser crate.
#[derive(Debug)]
pub struct BrowserSettings {
    pub chromium: Option<PathBuf>,
    /// Comma-separated, the config file's entries first.
    pub allow_hosts: String,
    pub warm_contexts: usize,
}

#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct ModelConfig {
    base_url: String,
    /// The model id sent upstream; the table's name when absent.
    model: Option<String>,
    api_key: Option<String>,
    #[serde(default)]
    vision: bool,
    timeout_s: Option<f64>,
    max_retries: Option<u32>,
    retry_base_ms: Option<u64>,
}

impl fmt::Debug for ModelConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ModelConfig")
            .field("base_url", &self.base_url)
            .field("model", &self.model)
            .field("api_key", &self.api_key.as_ref().map(|_| "***"))
            .finish_non_exhaustive()
    }
}

pub struct Settings {
    pub listen: String,
    pub data_dir: PathBuf,
    pub public_url: Option<String>,
    pub engine: EngineConfig,
    pub agents: HashMap<String, Value>,
    pub browser: BrowserSettings,
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

fn env_parse<T: std::str::FromStr>(name: &str) -> anyhow::Result<Option<T>> {
    match env(name) {
        None => Ok(None),
        Some(raw) => raw
            .trim()
            .parse()
            .map(Some)
            .map_err(|_| anyhow::anyhow!("{name}={raw:?} is not a valid value")),
    }
}

impl Settings {
    pub fn load(
        config_path: Option<&Path>,
        data_dir_flag: Option<PathBuf>,
        listen_flag: Option<String>,
    ) -> anyhow::Result<Self> {
        let file: FileConfig = match config_path {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("cannot read config file {}", path.display()))?;
                toml::from_str(&text)
                    .with_context(|| format!("invalid config file {}", path.display()))?
            }
            None => FileConfig::default(),
        };

        let mut models = HashMap::new();
        for (name, model) in &file.models {
            models.insert(name.clone(), endpoint(name, model));
        }
        // The environment's model: the default unless the file names another.
        if let Some(base_url) = env("AGENTD_MODEL_BASE_URL") {
            let model = ModelConfig {
                base_url,
                model: env("AGENTD_MODEL"),
                api_key: env("AGENTD_MODEL_API_KEY"),
                vision: env_parse::<bool>("AGENTD_MODEL_VISION")?.unwrap_or(false),
                timeout_s: env_parse("AGENTD_MODEL_TIMEOUT_S")?,
                max_retries: env_parse("AGENTD_MODEL_MAX_RETRIES")?,
                retry_base_ms: env_parse("AGENTD_MODEL_RETRY_BASE_MS")?,
            };
            models.insert(
                DEFAULT_MODEL_NAME.to_string(),
                endpoint(DEFAULT_MODEL_NAME, &model),
            );
        }
        let default_model = file
            .default_model
            .clone()
            .unwrap_or_else(|| DEFAULT_MODEL_NAME.to_string());

        let mut agents = HashMap::new();
        for (i, agent) in file.agents.iter().enumerate() {
            let agent = serde_json::to_value(agent)?;
            let Some(name) = agent.get("name").and_then(Value::as_str) else {
                bail!("agents[{i}] in the config file has no name");
            };
            agents.insert(name.to_string(), agent.clone());
        }

        let slot_limit = env_parse("AGENTD_MAX_CONCURRENT_SESSIONS")?
            .or(file.max_concurrent_sessions)
            .unwrap_or(50);
        Ok(Self {
            listen: listen_flag
                .or(file.listen)
                .unwrap_or_else(|| DEFAULT_LISTEN.to_string()),
            data_dir: data_dir_flag
                .or(file.data_dir)
                .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR)),
            public_url: env("AGENTD_PUBLIC_URL").or(file.public_url),
            engine: EngineConfig {
                models,
                default_model,
                slot_limit,
                max_queued: file.max_queued_sessions.unwrap_or(1000),
                max_long_poll: Duration::from_secs(30),
                answer_grace: Duration::from_secs(30),
            },
            agents,
            browser: BrowserSettings {
                chromium: env("AGENTD_BROWSER_CHROMIUM")
                    .map(PathBuf::from)
                    .or(file.browser.chromium),
                allow_hosts: file
                    .browser
                    .allow_hosts
                    .iter()
                    .cloned()
                    .chain(env("AGENTD_BROWSER_ALLOW_HOSTS"))
                    .collect::<Vec<_>>()
                    .join(","),
                warm_contexts: env_parse("AGENTD_BROWSER_WARM_CONTEXTS")?
                    .or(file.browser.warm_contexts)
                    .unwrap_or(2),
            },
        })
    }

    pub fn database_path(&self) -> PathBuf {
        self.data_dir.join("agentd.db")
    }

    pub fn blobs_path(&self) -> PathBuf {
        self.data_dir.join("resources")
    }

    pub fn browser_path(&self) -> PathBuf {
        self.data_dir.join("browser")
    }
}

fn endpoint(name: &str, model: &ModelConfig) -> ModelEndpoint {
    ModelEndpoint {
        name: name.to_string(),
        base_url: model.base_url.trim_end_matches('/').to_string(),
        model: model.model.clone().unwrap_or_else(|| name.to_string()),
        api_key: model.api_key.clone(),
        vision: model.vision,
        timeout: Duration::from_secs_f64(model.timeout_s.unwrap_or(120.0).max(0.1)),
        max_retries: model.max_retries.unwrap_or(3),
        retry_base: Duration::from_millis(model.retry_base_ms.unwrap_or(500)),
    }
}
