//! `scripted-model [--script FILE] [--port N]`: runs the scripted OpenAI-compatible model
//! server on 127.0.0.1 for tests written outside Rust (the Python SDK tests).
//!
//! Prints exactly one line, `listening on http://127.0.0.1:<port>/v1`, to stdout once the
//! port is bound, then serves until SIGTERM or SIGINT. Without `--script` the script is
//! empty (`{"rules":[]}`) and tests fill it through `PUT /_script`.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use agentd_testkit::ScriptedModel;
use serde_json::{Value, json};

const USAGE: &str = "usage: scripted-model [--script FILE] [--port N]";

#[derive(Debug)]
struct Arguments {
    script: Option<PathBuf>,
    port: u16,
}

fn parse_arguments(mut arguments: impl Iterator<Item = String>) -> Result<Arguments, String> {
    let mut parsed = Arguments {
        script: None,
        port: 0,
    };
    while let Some(argument) = arguments.next() {
        let (flag, inline_value) = match argument.split_once('=') {
            Some((flag, value)) => (flag.to_owned(), Some(value.to_owned())),
            None => (argument, None),
        };
        let mut value_of = |flag: &str| {
            inline_value
                .clone()
                .or_else(|| arguments.next())
                .ok_or(format!("{flag} needs a value"))
        };
        match flag.as_str() {
            "--script" => parsed.script = Some(PathBuf::from(value_of("--script")?)),
            "--port" => {
                let text = value_of("--port")?;
                parsed.port = text
                    .parse()
                    .map_err(|_| format!("--port expects a port number, got {text:?}"))?;
            }
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(parsed)
}

fn load_script(path: Option<&PathBuf>) -> Result<Value, String> {
    let Some(path) = path else {
        return Ok(json!({"rules": []}));
    };
    let text = std::fs::read_to_string(path)
        .map_err(|error| format!("cannot read {}: {error}", path.display()))?;
    serde_json::from_str(&text).map_err(|error| format!("{} is not JSON: {error}", path.display()))
}

/// Resolves when the process is asked to stop.
async fn stop_requested() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut terminate) => {
                tokio::select! {
                    _ = terminate.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let arguments = match parse_arguments(std::env::args().skip(1)) {
        Ok(arguments) => arguments,
        Err(message) if message.is_empty() => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(message) => {
            eprintln!("scripted-model: {message}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let script = match load_script(arguments.script.as_ref()) {
        Ok(script) => script,
        Err(message) => {
            eprintln!("scripted-model: {message}");
            return ExitCode::from(2);
        }
    };
    let model = match ScriptedModel::bind(script, arguments.port).await {
        Ok(model) => model,
        Err(error) => {
            eprintln!("scripted-model: cannot start: {error}");
            return ExitCode::FAILURE;
        }
    };

    let mut stdout = std::io::stdout().lock();
    let announced =
        writeln!(stdout, "listening on {}", model.base_url()).and_then(|()| stdout.flush());
    drop(stdout);
    if let Err(error) = announced {
        eprintln!("scripted-model: cannot write to stdout: {error}");
        return ExitCode::FAILURE;
    }

    stop_requested().await;
    drop(model);
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(arguments: &[&str]) -> Result<Arguments, String> {
        parse_arguments(arguments.iter().map(|argument| (*argument).to_owned()))
    }

    #[test]
    fn flags_take_separate_or_inline_values() {
        let parsed = parse(&["--script", "s.json", "--port=8123"]).unwrap();
        assert_eq!(parsed.script, Some(PathBuf::from("s.json")));
        assert_eq!(parsed.port, 8123);
        assert_eq!(parse(&[]).unwrap().port, 0);
    }

    #[test]
    fn bad_arguments_are_refused() {
        assert!(parse(&["--port"]).unwrap_err().contains("needs a value"));
        assert!(parse(&["--port", "x"]).unwrap_err().contains("port number"));
        assert!(
            parse(&["--verbose"])
                .unwrap_err()
                .contains("unknown argument")
        );
        assert_eq!(parse(&["--help"]).unwrap_err(), "");
    }
}
