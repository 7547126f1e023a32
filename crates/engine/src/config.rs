use std::collections::HashMap;
use std::time::Duration;

use agentd_model_client::ModelEndpoint;

/// What the engine needs to know of the server's configuration.
#[derive(Clone, Debug)]
pub struct EngineConfig {
    /// Models by configured name.
    pub models: HashMap<String, ModelEndpoint>,
    /// The model an agent without `model` runs on.
    pub default_model: String,
    /// Concurrent slot-holding sessions per organisation.
    pub slot_limit: u32,
    /// Queued sessions per organisation.
    pub max_queued: u32,
    /// Longest a `/changes` long-poll holds, whatever the client asks: well inside the
    /// SDK's 60 s request timeout.
    pub max_long_poll: Duration,
    /// Grace a forced answer gets once `max_time_s` is spent.
    pub answer_grace: Duration,
}

impl EngineConfig {
    pub fn model(&self, name: Option<&str>) -> Option<&ModelEndpoint> {
        let name = name.unwrap_or(&self.default_model);
        self.models.get(name).or_else(|| {
            // The default model also answers to its upstream id, so an agent that names
            // the id it knows (e.g. "holo3") finds it.
            let default = self.models.get(&self.default_model)?;
            (default.model == name).then_some(default)
        })
    }
}
