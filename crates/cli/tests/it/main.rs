//! The end-to-end tests: the real `agentd` binary, on a fresh data directory, against
//! the scripted model server, spoken to over HTTP on 127.0.0.1.

mod browser;
mod common;
mod controls;
mod crash;
mod events_changes;
mod feedback_resources;
mod helpers;
mod lifecycle;
mod list;
mod messages;
mod operations;
mod overrides;
mod quota;
mod robustness;
mod sessions_api;
mod tool_results;
