//! The store conformance suite against SQLite: once on a fresh database file per test
//! (the production setup), once on the in-memory database.

mod file {
    agentd_store::conformance_suite!(async {
        let dir = tempfile::tempdir().unwrap();
        let store = agentd_store_sqlite::SqliteStore::open(&dir.path().join("agentd.db"))
            .await
            .unwrap();
        (store, dir)
    });
}

mod in_memory {
    agentd_store::conformance_suite!(async {
        let store = agentd_store_sqlite::SqliteStore::open_in_memory()
            .await
            .unwrap();
        (store, ())
    });
}
