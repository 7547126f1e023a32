//! The end-to-end tests: the real `agentd` binary, on a fresh data directory, against
//! the scripted model server, spoken to over HTTP on 127.0.0.1.

mod common;
mod lifecycle;
mod sessions_api;
