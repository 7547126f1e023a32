//! `agentd serve`: opens the store, starts the engine (which resumes what was under
//! way), serves HTTP, and on SIGTERM or Ctrl-C stops the engine and drains.

use std::io::Write;
use std::sync::Arc;

use agentd_browser::policy::NetworkPolicy;
use agentd_browser::{BrowserConfig, WebEnvironments};
use agentd_engine::{Engine, WebParts};
use agentd_http_api::AppState;
use agentd_store::{DynStore, FsBlobStore};
use agentd_store_sqlite::SqliteStore;
use anyhow::Context;
use tracing_subscriber::EnvFilter;

use crate::settings::Settings;

fn init_logging() {
    let filter = EnvFilter::try_from_env("AGENTD_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let json = std::env::var("AGENTD_LOG_FORMAT").is_ok_and(|f| f == "json");
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

pub async fn run(settings: Settings) -> anyhow::Result<()> {
    init_logging();
    std::fs::create_dir_all(&settings.data_dir).with_context(|| {
        format!(
            "cannot create the data directory {}",
            settings.data_dir.display()
        )
    })?;
    let store: DynStore = Arc::new(
        SqliteStore::open(&settings.database_path())
            .await
            .map_err(|e| anyhow::anyhow!("cannot open the database: {e}"))?,
    );
    if settings.engine.models.is_empty() {
        tracing::warn!(
            "no model is configured: set AGENTD_MODEL_BASE_URL (and AGENTD_MODEL), or add [models] to the config file"
        );
    }
    // Bound first: the browser's policy refuses the server's own address, and
    // observations link screenshots by the server's URL.
    let listener = tokio::net::TcpListener::bind(&settings.listen)
        .await
        .with_context(|| format!("cannot listen on {}", settings.listen))?;
    let address = listener.local_addr()?;

    let blobs: Arc<FsBlobStore> = Arc::new(FsBlobStore::new(settings.blobs_path()));
    let mut policy = NetworkPolicy::from_allow_list(&settings.browser.allow_hosts)
        .map_err(|e| anyhow::anyhow!("AGENTD_BROWSER_ALLOW_HOSTS / browser.allow_hosts: {e}"))?;
    policy.deny_socket(address);
    let browser = Arc::new(WebEnvironments::new(BrowserConfig {
        chromium: settings.browser.chromium.clone(),
        dir: settings.browser_path(),
        policy,
        warm_contexts: settings.browser.warm_contexts,
    }));
    let web = WebParts {
        environments: browser.clone(),
        blobs: blobs.clone(),
        public_url: settings
            .public_url
            .clone()
            .unwrap_or_else(|| format!("http://{address}")),
    };
    let engine = Engine::new(store.clone(), settings.engine, Some(web));
    engine
        .start()
        .await
        .map_err(|e| anyhow::anyhow!("cannot start the engine: {e}"))?;

    let state = AppState {
        engine: engine.clone(),
        store,
        blobs,
        agents: Arc::new(settings.agents),
        public_url: settings.public_url,
        metrics: Some(install_metrics()),
    };
    let signal = shutdown_signal()?;
    tracing::info!(%address, data_dir = %settings.data_dir.display(), "serving");
    // Scripts and tests wait for this line to know the server is up and on which port.
    println!("agentd listening on http://{address}");
    std::io::stdout().flush().ok();

    let shutdown_engine = engine.clone();
    let shutdown = async move {
        signal.await;
        tracing::info!("shutting down");
        // Runners stop and long-polls return first, so the drain is short.
        shutdown_engine.shutdown().await;
        browser.shutdown().await;
    };
    agentd_http_api::serve(listener, state, shutdown).await?;
    tracing::info!("stopped");
    Ok(())
}

/// The Prometheus recorder behind `GET /metrics`. Histograms are summarised on render
/// and between renders by a periodic upkeep.
fn install_metrics() -> agentd_http_api::MetricsRender {
    let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    if metrics::set_global_recorder(recorder).is_err() {
        tracing::warn!("a metrics recorder was already installed");
    }
    let upkeep = handle.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(5));
        loop {
            tick.tick().await;
            upkeep.run_upkeep();
        }
    });
    Arc::new(move || handle.render())
}

/// Registers for SIGTERM and SIGINT now, so a signal that arrives as soon as the server
/// says it listens is already a graceful stop; the future resolves at the first one.
fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate()).context("cannot handle SIGTERM")?;
        let mut interrupt = signal(SignalKind::interrupt()).context("cannot handle SIGINT")?;
        Ok(async move {
            tokio::select! {
                _ = term.recv() => {}
                _ = interrupt.recv() => {}
            }
        })
    }
    #[cfg(not(unix))]
    {
        Ok(async {
            tokio::signal::ctrl_c().await.ok();
        })
    }
}
