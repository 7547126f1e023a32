//! `agentd keys`: API keys are made here, shown once, and stored only as digests.

use agentd_domain::time::now_ms;
use agentd_http_api::hash_api_key;
use agentd_store::{ApiKeyRecord, Store};
use agentd_store_sqlite::SqliteStore;
use anyhow::Context;

use crate::settings::Settings;

async fn open(settings: &Settings) -> anyhow::Result<SqliteStore> {
    std::fs::create_dir_all(&settings.data_dir).with_context(|| {
        format!(
            "cannot create the data directory {}",
            settings.data_dir.display()
        )
    })?;
    SqliteStore::open(&settings.database_path())
        .await
        .map_err(|e| anyhow::anyhow!("cannot open the database: {e}"))
}

/// `hk-` and 48 hex digits of randomness (192 bits).
fn new_secret() -> anyhow::Result<String> {
    let mut bytes = [0u8; 24];
    getrandom::fill(&mut bytes).map_err(|e| anyhow::anyhow!("no randomness available: {e}"))?;
    Ok(format!(
        "hk-{}",
        bytes.iter().map(|b| format!("{b:02x}")).collect::<String>()
    ))
}

pub async fn create(settings: &Settings, org_name: &str) -> anyhow::Result<()> {
    let org_name = org_name.trim();
    anyhow::ensure!(!org_name.is_empty(), "--org must not be empty");
    let store = open(settings).await?;
    let org_id = store
        .ensure_org(org_name)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let secret = new_secret()?;
    let record = ApiKeyRecord {
        id: uuid::Uuid::new_v4().to_string(),
        org_id,
        org_name: org_name.to_string(),
        prefix: secret[..10].to_string(),
        created_at: now_ms(),
        revoked_at: None,
    };
    store
        .insert_api_key(&record, &hash_api_key(&secret))
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    eprintln!(
        "created key {} ({}…) for organisation {org_name}; it is shown once:",
        record.id, record.prefix
    );
    println!("{secret}");
    Ok(())
}

pub async fn list(settings: &Settings, org: Option<&str>) -> anyhow::Result<()> {
    let store = open(settings).await?;
    let keys = store
        .list_api_keys(org)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    println!("ID\tPREFIX\tORGANISATION\tCREATED\tREVOKED");
    for key in keys {
        println!(
            "{}\t{}\t{}\t{}\t{}",
            key.id,
            key.prefix,
            key.org_name,
            key.created_at,
            key.revoked_at
                .map(|t| t.to_string())
                .unwrap_or_else(|| "-".to_string())
        );
    }
    Ok(())
}

pub async fn revoke(settings: &Settings, key: &str) -> anyhow::Result<()> {
    let store = open(settings).await?;
    let revoked = store
        .revoke_api_key(key)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    anyhow::ensure!(revoked, "no active key matches {key:?}");
    eprintln!("revoked {key}");
    Ok(())
}
