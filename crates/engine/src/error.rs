use agentd_store::StoreError;

/// Why the engine refused or could not carry out a request. The HTTP layer maps each
/// variant to one status code.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("Session not found.")]
    NotFound,
    /// The session's status does not allow this control (409).
    #[error("{0}")]
    Conflict(String),
    /// The organisation has no free slot (429).
    #[error("Concurrent session limit reached ({active}/{limit})")]
    QuotaExceeded { active: u32, limit: u32 },
    /// A request field is wrong in a way only the engine can see (422); `field` is the
    /// path inside the request body.
    #[error("{message}")]
    Invalid { field: Vec<String>, message: String },
    #[error("{0}")]
    Store(String),
}

impl From<StoreError> for EngineError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => Self::NotFound,
            StoreError::QuotaExceeded { active, limit } => Self::QuotaExceeded { active, limit },
            StoreError::GuardFailed { .. } => {
                Self::Conflict("The session changed concurrently; retry.".to_string())
            }
            StoreError::Backend(m) => Self::Store(m),
        }
    }
}
