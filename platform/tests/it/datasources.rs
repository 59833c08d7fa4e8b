//! Tenant data sources (issue 14): registered, sealed, granted and queried read-only
//! against real PostgreSQL (`TESSERA_TEST_POSTGRES_URL`), real MariaDB
//! (`TESSERA_TEST_MYSQL_URL`) and SQLite files; each service missing fails the test.
//!
//! Every query's Arrow IPC output and every error sentence is scanned for the source's
//! password, user and host.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, Int64Type};
use arrow_array::{Array, RecordBatch};
use axum::http::StatusCode;
use platform::config::DataSourcesConfig;
use platform::datasources::{
    ConnectionInput, DataSources, Kind, Param, QueryContext, QueryError, QueryOutput, SourceLimits,
    Viewer,
};
use platform::ids::{AppId, TenantId, UserId};
use platform::store::Tenant;
use serde_json::json;
use sqlx::{Connection, Executor};
use tokio::time::Instant;

use crate::support::{TestApp, tessera_command};
use crate::versions::{api, op, people, slug};

/// The operator's configuration of these tests: private hosts allowed (the services run
/// on loopback), small enough caps to reach.
fn config() -> DataSourcesConfig {
    DataSourcesConfig {
        allow_private_hosts: true,
        statement_timeout_ms: 5_000,
        max_rows: 10_000,
        max_bytes: 4 << 20,
        ..Default::default()
    }
}

fn decode(output: &QueryOutput) -> RecordBatch {
    let reader =
        arrow_ipc::reader::StreamReader::try_new(std::io::Cursor::new(&output.arrow_ipc), None)
            .expect("an Arrow IPC stream");
    let mut batches: Vec<RecordBatch> = reader.map(|b| b.expect("a batch")).collect();
    assert_eq!(batches.len(), 1, "one record batch");
    batches.remove(0)
}

fn texts(batch: &RecordBatch, column: &str) -> Vec<String> {
    let column = batch.column_by_name(column).expect("column");
    let strings = column.as_string::<i32>();
    (0..strings.len())
        .map(|i| strings.value(i).to_owned())
        .collect()
}

fn ints(batch: &RecordBatch, column: &str) -> Vec<i64> {
    let column = batch.column_by_name(column).expect("column");
    column.as_primitive::<Int64Type>().values().to_vec()
}

fn floats(batch: &RecordBatch, column: &str) -> Vec<f64> {
    let column = batch.column_by_name(column).expect("column");
    column.as_primitive::<Float64Type>().values().to_vec()
}

/// Fails when any credential string appears in `bytes`.
fn assert_clean(what: &str, bytes: &[u8], secrets: &[&str]) {
    for secret in secrets {
        assert!(
            !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
            "{what} contains {secret:?}: {}",
            String::from_utf8_lossy(bytes)
        );
    }
}

/// A tenant with an app (`hello`) and the app's ids.
async fn tenant_with_app(app: &TestApp, tenant: &str, name: &str) -> (Tenant, AppId) {
    app.deploy(tenant, name, "hello.wasm").await;
    let tenant = app
        .state
        .store
        .tenant_by_slug(&slug(tenant))
        .await
        .expect("store")
        .expect("tenant");
    let id = app
        .state
        .store
        .app_id(tenant.id, &slug(name))
        .await
        .expect("store")
        .expect("app");
    (tenant, id)
}

struct Caller<'a> {
    sources: &'a DataSources,
    tenant: TenantId,
    app: AppId,
    secrets: Vec<String>,
}

impl Caller<'_> {
    async fn query_as(
        &self,
        viewer: Option<Viewer>,
        source: &str,
        sql: &str,
        params: &[Param],
    ) -> Result<QueryOutput, QueryError> {
        let call = QueryContext {
            tenant: self.tenant,
            app: self.app,
            viewer,
        };
        let result = self
            .sources
            .query(
                call,
                source,
                sql,
                params,
                Instant::now() + Duration::from_secs(5),
            )
            .await;
        let secrets: Vec<&str> = self.secrets.iter().map(String::as_str).collect();
        match &result {
            Ok(out) => assert_clean(sql, &out.arrow_ipc, &secrets),
            Err(e) => assert_clean(sql, e.to_string().as_bytes(), &secrets),
        }
        result
    }

    async fn query(&self, source: &str, sql: &str) -> Result<QueryOutput, QueryError> {
        self.query_as(None, source, sql, &[]).await
    }

    /// Each statement must not succeed (refused by the gate, or failed read-only).
    async fn writes_fail(&self, source: &str, statements: &[&str]) {
        for sql in statements {
            let result = self.query(source, sql).await;
            assert!(
                matches!(result, Err(QueryError::Refused(_) | QueryError::Failed(_))),
                "{source}: {sql} gave {result:?}"
            );
        }
    }
}

fn viewer(id: i64, email: &str) -> Viewer {
    Viewer {
        user_id: UserId(id),
        email: email.to_owned(),
        groups: vec!["staff".to_owned()],
    }
}

const WRITES: &[&str] = &[
    "insert into items (name, price) values ('x', 1)",
    "update items set price = 0",
    "delete from items",
    "drop table items",
    "select 1; delete from items",
];

fn random_suffix() -> String {
    format!("{:012x}", rand::random::<u64>() >> 16)
}

#[tokio::test]
async fn postgres_sources_read_rows_and_aggregates_read_only_with_caps_and_row_security() {
    let Some(db) = platform::store::testing::TestDatabase::postgres()
        .await
        .expect("postgres")
    else {
        // TESSERA_REQUIRE_POSTGRES=1 makes this a failure in TestDatabase::postgres.
        eprintln!(
            "TESSERA_TEST_POSTGRES_URL is not set: the PostgreSQL data-source test is skipped"
        );
        return;
    };
    let url = url::Url::parse(&db.url).expect("url");
    let host = url.host_str().expect("host").to_owned();
    let port = url.port().unwrap_or(5432);
    let database = url.path().trim_start_matches('/').to_owned();
    let suffix = random_suffix();
    let role = format!("tessera_ro_{suffix}");
    let password = format!("pw-{suffix}-Zq");
    let mut admin = sqlx::PgConnection::connect(&db.url).await.expect("connect");
    for sql in [
        "create table items (id serial primary key, name text not null, price numeric(10,2), \
         units int, sold_on date, at timestamptz, ok bool, blob bytea)"
            .to_owned(),
        "insert into items (name, price, units, sold_on, at, ok, blob) values \
         ('apple', 1.25, 3, '2024-02-29', '2024-01-01 00:00:00+00', true, '\\x0102'), \
         ('pear', 2.50, 5, null, null, false, null), ('fig', 10.00, 1, null, null, null, null)"
            .to_owned(),
        "create table docs (id int, owner text, body text)".to_owned(),
        "insert into docs values (1, '1', 'for one'), (2, '2', 'for two'), (3, '1', 'one again')"
            .to_owned(),
        "alter table docs enable row level security".to_owned(),
        "create policy by_viewer on docs using (owner = current_setting('tessera.user_id', true))"
            .to_owned(),
        format!("create role {role} login password '{password}'"),
        format!("grant select on items, docs to {role}"),
    ] {
        admin.execute(sql.as_str()).await.expect(&sql);
    }

    let app = TestApp::new().await;
    let (acme, hello) = tenant_with_app(&app, "acme", "hello").await;
    let sources = DataSources::new(
        app.state.store.clone(),
        app.state.secrets.clone(),
        config(),
        app.state.config.sources_dir(),
    );
    let pg = |user: &str, pw: Option<&str>| ConnectionInput {
        host: Some(host.clone()),
        port: Some(port),
        database: Some(database.clone()),
        user: Some(user.to_owned()),
        password: pw.map(str::to_owned),
        tls: Some("disable".into()),
        ..Default::default()
    };
    let admin_user = url.username().to_owned();
    let limits = SourceLimits {
        statement_timeout_ms: Some(500),
        max_rows: Some(50),
        max_bytes: Some(20_000),
        pool_size: Some(2),
    };
    sources
        .put(
            &acme,
            "shop",
            Kind::Postgres,
            &pg(&role, Some(&password)),
            &limits,
            &op(),
        )
        .await
        .expect("registered");
    // The superuser too: the read-only transaction, not the role, must stop its writes.
    sources
        .put(
            &acme,
            "shop-admin",
            Kind::Postgres,
            &pg(&admin_user, None),
            &limits,
            &op(),
        )
        .await
        .expect("registered");
    let caller = Caller {
        sources: &sources,
        tenant: acme.id,
        app: hello,
        secrets: vec![password.clone(), role.clone(), host.clone()],
    };
    // Not granted yet: the same answer as a source that does not exist.
    let missing = caller.query("nope", "select 1").await.expect_err("missing");
    let ungranted = caller
        .query("shop", "select 1")
        .await
        .expect_err("not granted");
    assert!(
        matches!(ungranted, QueryError::NotGranted(_)),
        "{ungranted:?}"
    );
    assert_eq!(
        missing.to_string().replace("nope", "shop"),
        ungranted.to_string()
    );
    for name in ["shop", "shop-admin"] {
        sources
            .set_grant(acme.id, name, "hello", true, &op())
            .await
            .expect("granted");
    }

    // A session-level advisory lock outlives a rollback: one a query takes is released
    // when its connection goes back to the pool, so the next query (on the same, only
    // connection of `shop-one`) finds none held.
    sources
        .put(
            &acme,
            "shop-one",
            Kind::Postgres,
            &pg(&role, Some(&password)),
            &SourceLimits {
                pool_size: Some(1),
                ..limits
            },
            &op(),
        )
        .await
        .expect("registered");
    sources
        .set_grant(acme.id, "shop-one", "hello", true, &op())
        .await
        .expect("granted");
    let held = "(select count(*) from pg_locks where locktype = 'advisory' \
                and pid = pg_backend_pid()) as held, pg_backend_pid()::bigint as conn";
    let locked = caller
        .query(
            "shop-one",
            &format!(
                "select (case when pg_try_advisory_lock(7357) then 1 else 0 end)::bigint as got, {held}"
            ),
        )
        .await
        .expect("lock");
    let locked = decode(&locked);
    assert_eq!(ints(&locked, "got"), [1], "the lock was taken");
    let next = caller
        .query("shop-one", &format!("select {held}"))
        .await
        .expect("locks");
    let next = decode(&next);
    assert_eq!(
        ints(&next, "conn"),
        ints(&locked, "conn"),
        "the same connection"
    );
    assert_eq!(
        ints(&next, "held"),
        [0],
        "the lock did not outlive its query"
    );

    // Session-level settings a query makes (`set_config(…, false)`, what `SET` does) end
    // with its transaction: the next query on the same connection, which may be another
    // viewer's, finds neither a setting of its own name nor a changed `search_path`, nor
    // the previous viewer's identity.
    let path = |batch: &RecordBatch| texts(batch, "path");
    let before = decode(
        &caller
            .query(
                "shop-one",
                "select current_setting('search_path') as path, pg_backend_pid()::bigint as conn",
            )
            .await
            .expect("search_path"),
    );
    let set = decode(
        &caller
            .query(
                "shop-one",
                "select set_config('tessera.leak', 'from-the-last-query', false) as leak, \
                 set_config('search_path', 'pg_catalog', false) as path, \
                 set_config('tessera.user_id', 'someone-else', false) as user_id, \
                 pg_backend_pid()::bigint as conn",
            )
            .await
            .expect("settings"),
    );
    assert_eq!(
        texts(&set, "leak"),
        ["from-the-last-query"],
        "the setting took"
    );
    let after = decode(
        &caller
            .query(
                "shop-one",
                "select coalesce(current_setting('tessera.leak', true), '') as leak, \
                 current_setting('search_path') as path, \
                 current_setting('tessera.user_id') as user_id, \
                 pg_backend_pid()::bigint as conn",
            )
            .await
            .expect("settings after"),
    );
    assert_eq!(
        ints(&after, "conn"),
        ints(&set, "conn"),
        "the same connection"
    );
    assert_eq!(texts(&after, "leak"), [""], "a setting outlived its query");
    assert_eq!(
        path(&after),
        path(&before),
        "search_path outlived its query"
    );
    assert_eq!(
        texts(&after, "user_id"),
        [""],
        "an identity set by a query outlived it (no viewer here: empty)"
    );

    let out = caller
        .query(
            "shop",
            "select name, price, units, sold_on, at, ok, blob from items order by id",
        )
        .await
        .expect("rows");
    assert_eq!(out.rows, 3);
    let batch = decode(&out);
    assert_eq!(texts(&batch, "name"), ["apple", "pear", "fig"]);
    assert_eq!(floats(&batch, "price"), [1.25, 2.5, 10.0]);
    assert_eq!(ints(&batch, "units"), [3, 5, 1]);
    let dates = batch.column_by_name("sold_on").expect("sold_on");
    assert_eq!(dates.data_type(), &arrow_schema::DataType::Date32);
    assert_eq!(
        dates
            .as_primitive::<arrow_array::types::Date32Type>()
            .value(0),
        19_782
    );
    assert!(dates.is_null(1), "NULL stays NULL");
    let at = batch.column_by_name("at").expect("at");
    assert_eq!(
        at.as_primitive::<arrow_array::types::TimestampMicrosecondType>()
            .value(0),
        1_704_067_200_000_000
    );
    let ok = batch.column_by_name("ok").expect("ok").as_boolean();
    assert!(ok.value(0) && !ok.value(1) && ok.is_null(2));
    let blob = batch
        .column_by_name("blob")
        .expect("blob")
        .as_binary::<i32>();
    assert_eq!(blob.value(0), [1, 2]);

    let out = caller
        .query_as(
            None,
            "shop",
            "select count(*) as n, sum(price) as total from items where units >= $1",
            &[Param::Int(2)],
        )
        .await
        .expect("aggregate");
    let batch = decode(&out);
    assert_eq!(ints(&batch, "n"), [2]);
    assert_eq!(floats(&batch, "total"), [3.75]);

    // Writes: refused by the gate or failed by the read-only transaction, for the
    // SELECT-only role and for the superuser alike.
    let mut writes = WRITES.to_vec();
    writes.push(
        "with gone as (insert into items (name) values ('cte') returning id) select * from gone",
    );
    writes.push("with gone as (delete from items returning id) select count(*) from gone");
    for source in ["shop", "shop-admin"] {
        caller.writes_fail(source, &writes).await;
    }
    let count: i64 = sqlx::query_scalar("select count(*) from items")
        .fetch_one(&mut admin)
        .await
        .expect("count");
    assert_eq!(count, 3, "no write went through");

    // Timeout, rows and bytes.
    let started = std::time::Instant::now();
    let slow = caller
        .query("shop", "select pg_sleep(5)")
        .await
        .expect_err("timeout");
    assert!(matches!(slow, QueryError::Limit(_)), "{slow:?}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    let many = caller
        .query("shop", "select generate_series(1, 1000) as n")
        .await
        .expect_err("rows");
    assert!(
        matches!(many, QueryError::Limit(ref m) if m.contains("50 rows")),
        "{many:?}"
    );
    let big = caller
        .query(
            "shop",
            "select repeat('x', 1000) from generate_series(1, 40)",
        )
        .await
        .expect_err("bytes");
    assert!(
        matches!(big, QueryError::Limit(ref m) if m.contains("bytes")),
        "{big:?}"
    );
    // The pool still answers after the stopped statements.
    caller
        .query("shop", "select 1 as one")
        .await
        .expect("answers again");

    // Row-level security: each viewer sees their rows; no viewer sees none.
    let sees = |v: Option<Viewer>| {
        let caller = &caller;
        async move {
            let out = caller
                .query_as(
                    v,
                    "shop",
                    "select body, current_setting('tessera.email') as email from docs order by id",
                    &[],
                )
                .await
                .expect("docs");
            if out.rows == 0 {
                return (Vec::new(), Vec::new());
            }
            let batch = decode(&out);
            (texts(&batch, "body"), texts(&batch, "email"))
        }
    };
    let (one, email) = sees(Some(viewer(1, "one@example.org"))).await;
    assert_eq!(one, ["for one", "one again"]);
    assert_eq!(email[0], "one@example.org");
    assert_eq!(
        sees(Some(viewer(2, "two@example.org"))).await.0,
        ["for two"]
    );
    assert!(sees(None).await.0.is_empty());
    // The identity travels as hex literals in the transaction's first batch: quotes,
    // backslashes and `;` come back exactly as given, and end nothing.
    let tricky = "o'ne\\'; set local x = 1; --@example.org";
    let out = caller
        .query_as(
            Some(viewer(3, tricky)),
            "shop",
            "select current_setting('tessera.email') as email, \
             current_setting('transaction_read_only') as ro",
            &[],
        )
        .await
        .expect("email");
    assert_eq!(texts(&decode(&out), "email"), [tricky]);
    assert_eq!(texts(&decode(&out), "ro"), ["on"]);

    // A database error passes its message, scrubbed.
    let failed = caller
        .query("shop", "select nope from items")
        .await
        .expect_err("fails");
    assert!(
        matches!(failed, QueryError::Failed(ref m) if m.contains("nope")),
        "{failed:?}"
    );

    // A source that cannot be reached says so, and nothing more.
    sources
        .put(
            &acme,
            "down",
            Kind::Postgres,
            &ConnectionInput {
                port: Some(1),
                ..pg(&role, Some(&password))
            },
            &SourceLimits {
                statement_timeout_ms: Some(300),
                ..Default::default()
            },
            &op(),
        )
        .await
        .expect("registered");
    sources
        .set_grant(acme.id, "down", "hello", true, &op())
        .await
        .expect("granted");
    let down = caller.query("down", "select 1").await.expect_err("down");
    assert_eq!(
        down,
        QueryError::Unavailable("the data source `down` cannot be reached".into())
    );
    let report = sources.test(acme.id, "down").await.expect("test runs");
    assert!(
        !report.ok && !report.message.contains(&password),
        "{report:?}"
    );
    let report = sources.test(acme.id, "shop").await.expect("test runs");
    assert!(report.ok, "{report:?}");

    // Another tenant's app cannot reach acme's source, granted or not.
    let (_, other) = tenant_with_app(&app, "globex", "hello").await;
    let stranger = Caller {
        sources: &sources,
        tenant: TenantId(acme.id.0 + 1),
        app: other,
        secrets: caller.secrets.clone(),
    };
    let refused = stranger
        .query("shop", "select 1")
        .await
        .expect_err("other tenant");
    assert!(matches!(refused, QueryError::NotGranted(_)), "{refused:?}");
    let forged = Caller {
        sources: &sources,
        tenant: acme.id,
        app: other,
        secrets: caller.secrets.clone(),
    };
    let refused = forged
        .query("shop", "select 1")
        .await
        .expect_err("app of another tenant");
    assert!(matches!(refused, QueryError::NotGranted(_)), "{refused:?}");
    // Revoked: gone for the app.
    sources
        .set_grant(acme.id, "shop", "hello", false, &op())
        .await
        .expect("revoked");
    let revoked = caller.query("shop", "select 1").await.expect_err("revoked");
    assert!(matches!(revoked, QueryError::NotGranted(_)), "{revoked:?}");

    drop(sources);
    drop(app);
    let _ = admin
        .execute(format!("drop owned by {role}").as_str())
        .await;
    let _ = admin.execute(format!("drop role {role}").as_str()).await;
    // The data source pools may still hold the role's connections for a moment.
    drop(admin);
    drop(db);
}

/// The MariaDB server of the tests, or a failure saying how to give one.
fn mysql_url() -> String {
    std::env::var("TESSERA_TEST_MYSQL_URL")
        .ok()
        .filter(|u| !u.is_empty())
        .expect(
            "TESSERA_TEST_MYSQL_URL is not set: start MariaDB and export it \
         (mysql://root@127.0.0.1:3306/test; scripts/test.sh does)",
        )
}

#[tokio::test]
async fn mariadb_sources_read_rows_and_aggregates_read_only_with_caps_and_viewer_variables() {
    let root_url = mysql_url();
    let url = url::Url::parse(&root_url).expect("url");
    let host = url.host_str().expect("host").to_owned();
    let port = url.port().unwrap_or(3306);
    let suffix = random_suffix();
    let database = format!("tessera_ds_{suffix}");
    let user = format!("ro_{suffix}");
    let password = format!("pw-{suffix}-Mq");
    let mut root = sqlx::MySqlConnection::connect(&root_url)
        .await
        .expect("MariaDB at TESSERA_TEST_MYSQL_URL");
    for sql in [
        format!("create database {database}"),
        format!(
            "create table {database}.items (id int auto_increment primary key, name varchar(40) not null, \
             price decimal(10,2), units int, sold_on date, at datetime, ok boolean, blob_col varbinary(10))"
        ),
        format!(
            "insert into {database}.items (name, price, units, sold_on, at, ok, blob_col) values \
             ('apple', 1.25, 3, '2024-02-29', '2024-01-01 00:00:00', true, x'0102'), \
             ('pear', 2.50, 5, null, null, false, null), ('fig', 10.00, 1, null, null, null, null)"
        ),
        format!("create table {database}.docs (id int, owner varchar(20), body text)"),
        format!(
            "insert into {database}.docs values (1, '1', 'for one'), (2, '2', 'for two'), (3, '1', 'one again')"
        ),
        format!("create user '{user}'@'%' identified by '{password}'"),
        format!("create user '{user}'@'localhost' identified by '{password}'"),
        format!("grant select on {database}.* to '{user}'@'%'"),
        format!("grant select on {database}.* to '{user}'@'localhost'"),
    ] {
        root.execute(sql.as_str()).await.expect(&sql);
    }

    let app = TestApp::new().await;
    let (acme, hello) = tenant_with_app(&app, "acme", "hello").await;
    let sources = DataSources::new(
        app.state.store.clone(),
        app.state.secrets.clone(),
        config(),
        app.state.config.sources_dir(),
    );
    let limits = SourceLimits {
        statement_timeout_ms: Some(500),
        max_rows: Some(50),
        max_bytes: Some(20_000),
        pool_size: Some(1),
    };
    let my = |u: &str, pw: Option<&str>| ConnectionInput {
        host: Some(host.clone()),
        port: Some(port),
        database: Some(database.clone()),
        user: Some(u.to_owned()),
        password: pw.map(str::to_owned),
        tls: Some("disable".into()),
        ..Default::default()
    };
    let root_user = url.username().to_owned();
    let root_password = url.password().map(str::to_owned);
    sources
        .put(
            &acme,
            "shop",
            Kind::Mysql,
            &my(&user, Some(&password)),
            &limits,
            &op(),
        )
        .await
        .expect("registered");
    sources
        .put(
            &acme,
            "shop-root",
            Kind::Mysql,
            &my(&root_user, root_password.as_deref()),
            &limits,
            &op(),
        )
        .await
        .expect("registered");
    for name in ["shop", "shop-root"] {
        sources
            .set_grant(acme.id, name, "hello", true, &op())
            .await
            .expect("granted");
    }
    let caller = Caller {
        sources: &sources,
        tenant: acme.id,
        app: hello,
        secrets: vec![password.clone(), user.clone(), host.clone()],
    };

    let out = caller
        .query(
            "shop",
            "select name, price, units, sold_on, at, ok, blob_col from items order by id",
        )
        .await
        .expect("rows");
    let batch = decode(&out);
    assert_eq!(texts(&batch, "name"), ["apple", "pear", "fig"]);
    assert_eq!(floats(&batch, "price"), [1.25, 2.5, 10.0]);
    assert_eq!(ints(&batch, "units"), [3, 5, 1]);
    let dates = batch.column_by_name("sold_on").expect("sold_on");
    assert_eq!(
        dates
            .as_primitive::<arrow_array::types::Date32Type>()
            .value(0),
        19_782
    );
    assert!(dates.is_null(1));
    let at = batch.column_by_name("at").expect("at");
    assert_eq!(
        at.as_primitive::<arrow_array::types::TimestampMicrosecondType>()
            .value(0),
        1_704_067_200_000_000
    );
    let ok = batch.column_by_name("ok").expect("ok").as_boolean();
    assert!(ok.value(0) && !ok.value(1) && ok.is_null(2));
    let blob = batch
        .column_by_name("blob_col")
        .expect("blob")
        .as_binary::<i32>();
    assert_eq!(blob.value(0), [1, 2]);

    let out = caller
        .query_as(
            None,
            "shop",
            "select count(*) as n, sum(price) as total from items where units >= ?",
            &[Param::Int(2)],
        )
        .await
        .expect("aggregate");
    let batch = decode(&out);
    assert_eq!(ints(&batch, "n"), [2]);
    assert_eq!(floats(&batch, "total"), [3.75]);

    let mut writes = WRITES.to_vec();
    writes.push("with gone as (select 1) delete from items");
    writes.push("select * from items into outfile '/tmp/tessera-leak'");
    for source in ["shop", "shop-root"] {
        caller.writes_fail(source, &writes).await;
    }
    let count: i64 = sqlx::query_scalar(&format!("select count(*) from {database}.items"))
        .fetch_one(&mut root)
        .await
        .expect("count");
    assert_eq!(count, 3, "no write went through");

    let started = std::time::Instant::now();
    let slow = caller.query("shop", "select sleep(5)").await;
    assert!(matches!(slow, Err(QueryError::Limit(_))), "{slow:?}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    let many = caller
        .query("shop", "select seq from seq_1_to_1000")
        .await
        .expect_err("rows");
    assert!(
        matches!(many, QueryError::Limit(ref m) if m.contains("50 rows")),
        "{many:?}"
    );
    let big = caller
        .query("shop", "select repeat('x', 1000) as x from seq_1_to_40")
        .await
        .expect_err("bytes");
    assert!(
        matches!(big, QueryError::Limit(ref m) if m.contains("bytes")),
        "{big:?}"
    );

    // The viewer's identity in session variables, cleared after each query (the pool has
    // one connection, so the next query gets the same one).
    let sees = |v: Option<Viewer>| {
        let caller = &caller;
        async move {
            let out = caller
                .query_as(
                    v,
                    "shop",
                    "select body from docs where owner = @tessera_user_id order by id",
                    &[],
                )
                .await
                .expect("docs");
            if out.rows == 0 {
                return Vec::new();
            }
            texts(&decode(&out), "body")
        }
    };
    assert_eq!(
        sees(Some(viewer(1, "one@example.org"))).await,
        ["for one", "one again"]
    );
    assert_eq!(sees(Some(viewer(2, "two@example.org"))).await, ["for two"]);
    assert!(sees(None).await.is_empty());
    // The identity travels as hex literals: quotes and backslashes come back as given.
    let tricky = "o'ne\\'; set @x = 1; --@example.org";
    let out = caller
        .query_as(
            Some(viewer(3, tricky)),
            "shop",
            "select @tessera_email as email",
            &[],
        )
        .await
        .expect("email");
    assert_eq!(texts(&decode(&out), "email"), [tricky]);
    // A query may not set user variables: they would outlive it on the pooled connection
    // and be read by the next query (another app's, another viewer's).
    for sql in [
        "select @leak := 'one'",
        "select 1 into @leak",
        "select 1 /*! into @leak */",
    ] {
        let refused = caller.query("shop", sql).await.expect_err("refused");
        assert!(
            matches!(refused, QueryError::Refused(_)),
            "{sql}: {refused:?}"
        );
    }
    assert!(
        sees(None).await.is_empty(),
        "cleared after the tricky viewer"
    );

    // A named lock outlives a rollback: one a query takes is released when its connection
    // goes back to the pool, so the next query (here on the same, only connection) finds
    // it free instead of held by another app's or viewer's query.
    let locked = caller
        .query(
            "shop",
            "select cast(get_lock('tessera_leak', 0) as signed) as got, \
             cast(connection_id() as signed) as conn",
        )
        .await
        .expect("lock");
    let batch = decode(&locked);
    assert_eq!(ints(&batch, "got"), [1], "the lock was taken");
    let next = caller
        .query(
            "shop",
            "select cast(is_free_lock('tessera_leak') as signed) as free, \
             cast(connection_id() as signed) as conn",
        )
        .await
        .expect("free");
    let next = decode(&next);
    assert_eq!(
        ints(&next, "conn"),
        ints(&batch, "conn"),
        "the same connection"
    );
    assert_eq!(
        ints(&next, "free"),
        [1],
        "the lock did not outlive its query"
    );

    let failed = caller
        .query("shop", "select nope from items")
        .await
        .expect_err("fails");
    assert!(
        matches!(failed, QueryError::Failed(ref m) if m.contains("nope")),
        "{failed:?}"
    );
    // A permission error names the user in MariaDB's own words: scrubbed (assert_clean).
    let denied = caller
        .query("shop", "select * from mysql.user")
        .await
        .expect_err("denied");
    assert!(matches!(denied, QueryError::Failed(_)), "{denied:?}");

    drop(sources);
    drop(app);
    for sql in [
        format!("drop database {database}"),
        format!("drop user '{user}'@'%'"),
        format!("drop user '{user}'@'localhost'"),
    ] {
        let _ = root.execute(sql.as_str()).await;
    }
}

/// `{sources_dir}/{tenant}/{file}` with a table of `rows` items.
async fn sqlite_file(sources_dir: &Path, tenant: &str, file: &str, rows: i64) {
    let dir = sources_dir.join(tenant);
    std::fs::create_dir_all(&dir).expect("tenant folder");
    let options = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(dir.join(file))
        .create_if_missing(true);
    let mut conn = sqlx::SqliteConnection::connect_with(&options)
        .await
        .expect("sqlite");
    conn.execute(
        "create table items (id integer primary key, name text not null, price real, \
         units integer, ok boolean, blob blob)",
    )
    .await
    .expect("table");
    for i in 1..=rows {
        sqlx::query("insert into items (name, price, units, ok, blob) values ($1, $2, $3, $4, $5)")
            .bind(format!("item {i}"))
            .bind(i as f64 * 1.5)
            .bind(i)
            .bind(i % 2 == 0)
            .bind(vec![1u8, 2])
            .execute(&mut conn)
            .await
            .expect("insert");
    }
    conn.close().await.expect("close");
}

#[tokio::test]
async fn sqlite_sources_read_their_tenants_files_only_and_stop_at_their_limits() {
    let app = TestApp::new().await;
    let (acme, hello) = tenant_with_app(&app, "acme", "hello").await;
    let (globex, globex_app) = tenant_with_app(&app, "globex", "hello").await;
    let dir = app.state.config.sources_dir();
    sqlite_file(&dir, "acme", "shop.db", 100).await;
    sqlite_file(&dir, "globex", "theirs.db", 3).await;
    let sources = DataSources::new(
        app.state.store.clone(),
        app.state.secrets.clone(),
        config(),
        dir.clone(),
    );
    let path = |p: &str| ConnectionInput {
        path: Some(p.to_owned()),
        ..Default::default()
    };
    let limits = SourceLimits {
        statement_timeout_ms: Some(300),
        max_rows: Some(50),
        max_bytes: Some(20_000),
        pool_size: Some(1),
    };

    // Paths that leave the tenant's folder are refused: up and out, absolute, into
    // another tenant's folder, the platform's own database, and a symlink pointing out.
    std::os::unix::fs::symlink(
        app.state.config.data_dir.join("tessera.db"),
        dir.join("acme").join("escape.db"),
    )
    .expect("symlink");
    std::os::unix::fs::symlink(dir.join("globex"), dir.join("acme").join("neighbour"))
        .expect("symlink");
    for bad in [
        "../globex/theirs.db",
        "../../tessera.db",
        "/etc/passwd",
        "escape.db",
        "neighbour/theirs.db",
        "missing.db",
        ".",
    ] {
        let refused = sources
            .put(&acme, "bad", Kind::Sqlite, &path(bad), &limits, &op())
            .await
            .expect_err(bad);
        assert!(
            matches!(refused, platform::datasources::Error::Invalid(_)),
            "{bad}: {refused:?}"
        );
    }
    let via_url = ConnectionInput {
        url: Some("sqlite:../globex/theirs.db".into()),
        ..Default::default()
    };
    assert!(
        sources
            .put(&acme, "bad", Kind::Sqlite, &via_url, &limits, &op())
            .await
            .is_err()
    );

    sources
        .put(
            &acme,
            "shop",
            Kind::Sqlite,
            &path("shop.db"),
            &limits,
            &op(),
        )
        .await
        .expect("registered");
    sources
        .set_grant(acme.id, "shop", "hello", true, &op())
        .await
        .expect("granted");
    sources
        .put(
            &globex,
            "theirs",
            Kind::Sqlite,
            &path("theirs.db"),
            &SourceLimits::default(),
            &op(),
        )
        .await
        .expect("registered");
    sources
        .set_grant(globex.id, "theirs", "hello", true, &op())
        .await
        .expect("granted");
    let secret_path = dir.display().to_string();
    let caller = Caller {
        sources: &sources,
        tenant: acme.id,
        app: hello,
        secrets: vec![secret_path.clone()],
    };

    let out = caller
        .query_as(
            None,
            "shop",
            "select name, price, units, ok, blob from items where id <= ?1 order by id",
            &[Param::Int(3)],
        )
        .await
        .expect("rows");
    let batch = decode(&out);
    assert_eq!(texts(&batch, "name"), ["item 1", "item 2", "item 3"]);
    assert_eq!(floats(&batch, "price"), [1.5, 3.0, 4.5]);
    assert_eq!(ints(&batch, "units"), [1, 2, 3]);
    let ok = batch.column_by_name("ok").expect("ok").as_boolean();
    assert!(!ok.value(0) && ok.value(1));
    let out = caller
        .query(
            "shop",
            "select count(*) as n, sum(units) as total from items",
        )
        .await
        .expect("aggregate");
    let batch = decode(&out);
    assert_eq!(
        (ints(&batch, "n"), ints(&batch, "total")),
        (vec![100], vec![5050])
    );
    let empty = caller
        .query("shop", "select name from items where id < 0")
        .await
        .expect("no rows");
    assert_eq!(empty.rows, 0);
    assert_eq!(decode(&empty).schema().field(0).name(), "name");

    let mut writes = WRITES.to_vec();
    writes.push("with x as (select 1) insert into items (name) values ('cte')");
    writes.push("attach database 'other.db' as other");
    writes.push("pragma query_only = off");
    writes.push("select 1; attach database 'x' as y");
    caller.writes_fail("shop", &writes).await;
    let count = caller
        .query("shop", "select count(*) as n from items")
        .await
        .expect("count");
    assert_eq!(ints(&decode(&count), "n"), [100], "no write went through");

    let started = std::time::Instant::now();
    let endless = caller
        .query(
            "shop",
            "with recursive c(x) as (select 1 union all select x + 1 from c) select count(*) from c",
        )
        .await
        .expect_err("timeout");
    assert!(matches!(endless, QueryError::Limit(_)), "{endless:?}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    let many = caller
        .query("shop", "select * from items")
        .await
        .expect_err("rows");
    assert!(
        matches!(many, QueryError::Limit(ref m) if m.contains("50 rows")),
        "{many:?}"
    );
    let big = caller
        .query(
            "shop",
            "select printf('%.2000c', 'x') as x from items limit 20",
        )
        .await
        .expect_err("bytes");
    assert!(
        matches!(big, QueryError::Limit(ref m) if m.contains("bytes")),
        "{big:?}"
    );
    caller
        .query("shop", "select 1 as one")
        .await
        .expect("answers again");

    // Tenant isolation: acme's app cannot name globex's source, globex's app cannot name
    // acme's, and neither can tell the source exists.
    let refused = caller
        .query("theirs", "select 1")
        .await
        .expect_err("other tenant");
    assert_eq!(
        refused,
        QueryError::NotGranted("this app has no data source `theirs`".into())
    );
    let theirs = Caller {
        sources: &sources,
        tenant: globex.id,
        app: globex_app,
        secrets: vec![secret_path.clone()],
    };
    let refused = theirs
        .query("shop", "select 1")
        .await
        .expect_err("other tenant");
    assert_eq!(
        refused,
        QueryError::NotGranted("this app has no data source `shop`".into())
    );
    theirs
        .query("theirs", "select 1 as one")
        .await
        .expect("their own");

    // A file that disappears after registration: unavailable, without its path.
    std::fs::remove_file(dir.join("globex").join("theirs.db")).expect("remove");
    let fresh = DataSources::new(
        app.state.store.clone(),
        app.state.secrets.clone(),
        config(),
        dir.clone(),
    );
    let gone = Caller {
        sources: &fresh,
        tenant: globex.id,
        app: globex_app,
        secrets: vec![secret_path],
    };
    let down = gone.query("theirs", "select 1").await.expect_err("gone");
    assert_eq!(
        down,
        QueryError::Unavailable("the data source `theirs` cannot be reached".into())
    );
}

#[tokio::test]
async fn the_api_registers_grants_and_removes_sources_for_admins_only_and_never_shows_a_password() {
    let app = TestApp::with_data_sources(config()).await;
    let [alice, bob, victor] = people(&app).await;
    app.deploy("acme", "hello", "hello.wasm").await;
    let base = "/api/v1/tenants/acme/data-sources";
    let dir = app.state.config.sources_dir();
    sqlite_file(&dir, "acme", "shop.db", 3).await;
    const PASSWORD: &str = "pw-Api-93kq";

    let sqlite = json!({"kind": "sqlite", "connection": {"path": "shop.db"}}).to_string();
    let pg = json!({
        "connection": {"url": format!("postgres://reader:{PASSWORD}@127.0.0.1:5432/test?sslmode=disable")},
        "limits": {"max_rows": 10}
    })
    .to_string();
    // Authors and viewers of the tenant may not; a stranger does not see the tenant.
    for token in [&bob, &victor] {
        let refused = api(&app, "PUT", &format!("{base}/shop"), Some(token), &sqlite).await;
        assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.text());
        let refused = api(&app, "GET", base, Some(token), "").await;
        assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.text());
    }
    let anonymous = api(&app, "GET", base, None, "").await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);

    let put = api(&app, "PUT", &format!("{base}/shop"), Some(&alice), &sqlite).await;
    assert_eq!(put.status, StatusCode::OK, "{}", put.text());
    assert_eq!(put.json()["created"], true);
    let put = api(&app, "PUT", &format!("{base}/warehouse"), Some(&alice), &pg).await;
    assert_eq!(put.status, StatusCode::OK, "{}", put.text());
    assert_eq!(put.json()["source"]["password_set"], true);
    assert_eq!(put.json()["source"]["user"], "reader");
    assert!(!put.text().contains(PASSWORD), "{}", put.text());

    // Refusals: limits above the operator's, a bad name, a path out of the folder, an
    // unknown field.
    for (uri, body, says) in [
        (
            "warehouse",
            json!({"kind": "sqlite", "connection": {"path": "shop.db"}, "limits": {"max_rows": 10_000_000}}),
            "max_rows",
        ),
        (
            "Bad Name",
            json!({"kind": "sqlite", "connection": {"path": "shop.db"}}),
            "invalid data source name",
        ),
        (
            "x",
            json!({"kind": "sqlite", "connection": {"path": "../../tessera.db"}}),
            "outside",
        ),
        (
            "x",
            json!({"kind": "sqlite", "connection": {"path": "shop.db", "pasword": "x"}}),
            "pasword",
        ),
    ] {
        let reply = api(
            &app,
            "PUT",
            &format!("{base}/{}", uri.replace(' ', "%20")),
            Some(&alice),
            &body.to_string(),
        )
        .await;
        assert_eq!(
            reply.status,
            StatusCode::BAD_REQUEST,
            "{body}: {}",
            reply.text()
        );
        assert!(reply.text().contains(says), "{body}: {}", reply.text());
    }

    let grant = api(
        &app,
        "PUT",
        &format!("{base}/shop/grants/hello"),
        Some(&alice),
        "",
    )
    .await;
    assert_eq!(grant.status, StatusCode::NO_CONTENT, "{}", grant.text());
    let refused = api(
        &app,
        "PUT",
        &format!("{base}/shop/grants/hello"),
        Some(&bob),
        "",
    )
    .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    let missing = api(
        &app,
        "PUT",
        &format!("{base}/shop/grants/nope"),
        Some(&alice),
        "",
    )
    .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND, "{}", missing.text());

    let listed = api(&app, "GET", base, Some(&alice), "").await;
    assert_eq!(listed.status, StatusCode::OK, "{}", listed.text());
    assert!(!listed.text().contains(PASSWORD), "{}", listed.text());
    let list = listed.json();
    assert_eq!(list[0]["name"], "shop");
    assert_eq!(list[0]["granted_to"], json!(["hello"]));
    assert_eq!(list[1]["name"], "warehouse");

    let tested = api(&app, "POST", &format!("{base}/shop/test"), Some(&alice), "").await;
    assert_eq!(tested.status, StatusCode::OK, "{}", tested.text());
    assert_eq!(tested.json()["ok"], true, "{}", tested.text());

    // The running platform's own DataSources answers the granted app.
    let (acme, hello) = tenant_with_app(&app, "acme", "hello").await;
    let call = QueryContext {
        tenant: acme.id,
        app: hello,
        viewer: None,
    };
    let out = app
        .state
        .datasources
        .query(
            call.clone(),
            "shop",
            "select count(*) as n from items",
            &[],
            Instant::now() + Duration::from_secs(5),
        )
        .await
        .expect("query");
    assert_eq!(ints(&decode(&out), "n"), [3]);

    let revoke = api(
        &app,
        "DELETE",
        &format!("{base}/shop/grants/hello"),
        Some(&alice),
        "",
    )
    .await;
    assert_eq!(revoke.status, StatusCode::NO_CONTENT);
    let refused = app
        .state
        .datasources
        .query(
            call,
            "shop",
            "select 1",
            &[],
            Instant::now() + Duration::from_secs(5),
        )
        .await
        .expect_err("revoked");
    assert!(matches!(refused, QueryError::NotGranted(_)));
    let removed = api(&app, "DELETE", &format!("{base}/shop"), Some(&alice), "").await;
    assert_eq!(removed.status, StatusCode::NO_CONTENT);
    let gone = api(&app, "GET", &format!("{base}/shop"), Some(&alice), "").await;
    assert_eq!(gone.status, StatusCode::NOT_FOUND);

    // Every change is in the tenant's audit log, without the password.
    let audit = api(&app, "GET", "/api/v1/tenants/acme/audit", Some(&alice), "").await;
    assert!(!audit.text().contains(PASSWORD));
    let actions: Vec<String> = audit.json()["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|e| e["action"].as_str().unwrap_or_default().to_owned())
        .filter(|a| a.starts_with("data_source."))
        .collect();
    for want in [
        "data_source.create",
        "data_source.grant",
        "data_source.revoke",
        "data_source.remove",
    ] {
        assert!(actions.iter().any(|a| a == want), "{want} in {actions:?}");
    }

    // With the operator's default, a source naming a loopback address is refused.
    let strict = TestApp::new().await;
    let [alice, _, _] = people(&strict).await;
    let refused = api(
        &strict,
        "PUT",
        "/api/v1/tenants/acme/data-sources/local",
        Some(&alice),
        &pg,
    )
    .await;
    assert_eq!(
        refused.status,
        StatusCode::BAD_REQUEST,
        "{}",
        refused.text()
    );
    assert!(refused.text().contains("private"), "{}", refused.text());
}

#[tokio::test]
async fn the_cli_adds_lists_grants_revokes_tests_and_removes_sources() {
    let data = tempfile::tempdir().expect("tempdir");
    let config = data.path().join("tessera.toml");
    std::fs::write(&config, "[data_sources]\nallow_private_hosts = true\n").expect("config");
    let run = |args: &[&str], stdin: Option<&str>| {
        let mut command = tessera_command(data.path());
        command
            .arg("--config")
            .arg(&config)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command.spawn().expect("tessera");
        if let Some(text) = stdin {
            use std::io::Write;
            child
                .stdin
                .take()
                .expect("stdin")
                .write_all(text.as_bytes())
                .expect("write");
        }
        let out = child.wait_with_output().expect("tessera runs");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned()
                + &String::from_utf8_lossy(&out.stderr),
        )
    };
    let ok = |args: &[&str], stdin: Option<&str>| {
        let (success, out) = run(args, stdin);
        assert!(success, "tessera {args:?}: {out}");
        out
    };
    ok(&["admin", "create-tenant", "acme"], None);
    let wasm = crate::support::repo_root().join("target/wasm32-wasip2/guest/hello.wasm");
    ok(
        &["deploy", "acme/hello", wasm.to_str().expect("path")],
        None,
    );
    sqlite_file(&data.path().join("sources"), "acme", "shop.db", 3).await;

    const PASSWORD: &str = "pw-Cli-4kd8";
    let out = ok(
        &[
            "sources", "add", "acme", "shop", "--kind", "sqlite", "--path", "shop.db",
        ],
        None,
    );
    assert!(out.contains("registered data source shop"), "{out}");
    let out = ok(
        &[
            "sources",
            "add",
            "acme",
            "warehouse",
            "--url",
            "postgres://reader@127.0.0.1:5432/test?sslmode=disable",
            "--password-stdin",
        ],
        Some(&format!("{PASSWORD}\n")),
    );
    assert!(out.contains("registered data source warehouse"), "{out}");
    let (refused, out) = run(
        &[
            "sources",
            "add",
            "acme",
            "bad",
            "--kind",
            "sqlite",
            "--path",
            "../../tessera.db",
        ],
        None,
    );
    assert!(!refused && out.contains("outside"), "{out}");

    let out = ok(&["sources", "grant", "acme", "shop", "hello"], None);
    assert!(out.contains("acme/hello may now query shop"), "{out}");
    let out = ok(&["sources", "list", "acme"], None);
    assert!(
        out.contains("shop\tsqlite\tshop.db\tgranted to: hello"),
        "{out}"
    );
    assert!(
        out.contains("warehouse\tpostgres\treader@127.0.0.1:5432/test"),
        "{out}"
    );
    assert!(!out.contains(PASSWORD), "{out}");
    let out = ok(&["sources", "show", "acme", "warehouse"], None);
    assert!(
        out.contains("\"password_set\": true") && !out.contains(PASSWORD),
        "{out}"
    );
    let out = ok(&["sources", "test", "acme", "shop"], None);
    assert!(out.contains("connected to the data source `shop`"), "{out}");
    let out = ok(&["sources", "revoke", "acme", "shop", "hello"], None);
    assert!(out.contains("may no longer query shop"), "{out}");
    let out = ok(&["sources", "remove", "acme", "shop"], None);
    assert!(out.contains("removed data source shop"), "{out}");
    let out = ok(&["sources", "list", "acme"], None);
    assert!(!out.contains("shop\t"), "{out}");
    let (failed, out) = run(&["sources", "remove", "acme", "shop"], None);
    assert!(!failed && out.contains("no data source"), "{out}");
}

#[tokio::test]
async fn the_demo_tenant_gets_its_sales_source_granted_to_the_sales_explorer() {
    let app = TestApp::new().await;
    let (demo, explorer) = tenant_with_app(&app, "demo", "sales-explorer").await;
    platform::demo::install_sales_source(&app.state)
        .await
        .expect("installed");
    // Idempotent: a second start keeps the file, the source and the grant.
    platform::demo::install_sales_source(&app.state)
        .await
        .expect("installed again");
    let call = QueryContext {
        tenant: demo.id,
        app: explorer,
        viewer: None,
    };
    let out = app
        .state
        .datasources
        .query(
            call,
            "sales",
            "select region, count(*) as n, sum(revenue_cents) as revenue from sales \
             group by region order by region",
            &[],
            Instant::now() + Duration::from_secs(5),
        )
        .await
        .expect("the demo's sales");
    let batch = decode(&out);
    assert_eq!(batch.num_rows(), 8, "eight regions");
    assert_eq!(
        ints(&batch, "n").iter().sum::<i64>(),
        platform::demo::SALES_ROWS as i64
    );
    assert!(ints(&batch, "revenue").iter().all(|r| *r > 0));

    // The live-orders example's table, seeded once; granted once that app exists.
    let live = QueryContext {
        tenant: demo.id,
        app: deployed_app(&app, &demo, "live-orders").await,
        viewer: None,
    };
    let orders = "select count(*) as n from orders";
    let refused = app
        .state
        .datasources
        .query(
            live.clone(),
            "sales",
            orders,
            &[],
            Instant::now() + Duration::from_secs(5),
        )
        .await
        .expect_err("not granted before the app exists");
    assert!(matches!(refused, QueryError::NotGranted(_)), "{refused:?}");
    platform::demo::install_sales_source(&app.state)
        .await
        .expect("installed with live orders");
    let out = app
        .state
        .datasources
        .query(
            live,
            "sales",
            orders,
            &[],
            Instant::now() + Duration::from_secs(5),
        )
        .await
        .expect("the demo's orders");
    assert_eq!(ints(&decode(&out), "n"), [500]);
}

async fn deployed_app(app: &TestApp, tenant: &Tenant, name: &str) -> AppId {
    app.deploy(tenant.slug.as_str(), name, "hello.wasm").await;
    app.state
        .store
        .app_id(tenant.id, &slug(name))
        .await
        .expect("store")
        .expect("app")
}

#[tokio::test]
async fn a_tenant_runs_at_most_its_share_of_queries_at_once() {
    let app = TestApp::new().await;
    let (acme, hello) = tenant_with_app(&app, "acme", "hello").await;
    let dir = app.state.config.sources_dir();
    sqlite_file(&dir, "acme", "shop.db", 3).await;
    let sources = DataSources::new(
        app.state.store.clone(),
        app.state.secrets.clone(),
        DataSourcesConfig {
            tenant_queries: 1,
            statement_timeout_ms: 1_000,
            ..config()
        },
        dir,
    );
    let path = ConnectionInput {
        path: Some("shop.db".into()),
        ..Default::default()
    };
    sources
        .put(
            &acme,
            "shop",
            Kind::Sqlite,
            &path,
            &SourceLimits::default(),
            &op(),
        )
        .await
        .expect("registered");
    sources
        .set_grant(acme.id, "shop", "hello", true, &op())
        .await
        .expect("granted");
    let call = || QueryContext {
        tenant: acme.id,
        app: hello,
        viewer: None,
    };
    let endless =
        "with recursive c(x) as (select 1 union all select x + 1 from c) select count(*) from c";
    let long = sources.query(
        call(),
        "shop",
        endless,
        &[],
        Instant::now() + Duration::from_secs(5),
    );
    let waiting = async {
        // Starts once the long one holds the tenant's only turn.
        tokio::time::sleep(Duration::from_millis(100)).await;
        sources
            .query(
                call(),
                "shop",
                "select 1",
                &[],
                Instant::now() + Duration::from_millis(300),
            )
            .await
    };
    let (long, waiting) = tokio::join!(long, waiting);
    assert!(
        matches!(long, Err(QueryError::Limit(ref m)) if m.contains("ran longer")),
        "{long:?}"
    );
    assert!(
        matches!(waiting, Err(QueryError::Limit(ref m)) if m.contains("at once")),
        "{waiting:?}"
    );
    // The turn is back: the next query runs.
    sources
        .query(
            call(),
            "shop",
            "select 1",
            &[],
            Instant::now() + Duration::from_secs(5),
        )
        .await
        .expect("runs");
}

/// What `{callback}.children` of tests/guests/capable answered in `acme/{app}`, given `arg`.
async fn capable(
    app: &TestApp,
    name: &str,
    callback: &str,
    arg: serde_json::Value,
) -> serde_json::Value {
    let body = json!({
        "output": format!("{callback}.children"),
        "outputs": {"id": callback, "property": "children"},
        "inputs": [{"id": "go", "property": "n_clicks", "value": arg}],
        "changedPropIds": ["go.n_clicks"]
    });
    let reply = app
        .post_json(
            &format!("/apps/acme/{name}/_dash-update-component"),
            body.to_string(),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    reply.json()["response"][callback]["children"].clone()
}

/// Tenant `acme`'s SQLite source `shop` (10 items), registered and granted to its app
/// `app_name`.
pub(crate) async fn shop_granted_to(app: &TestApp, app_name: &str) {
    let acme = app
        .state
        .store
        .tenant_by_slug(&slug("acme"))
        .await
        .expect("store")
        .expect("tenant");
    sqlite_file(&app.state.config.sources_dir(), "acme", "shop.db", 10).await;
    let sources = &app.state.datasources;
    let input = ConnectionInput {
        path: Some("shop.db".to_owned()),
        ..Default::default()
    };
    sources
        .put(
            &acme,
            "shop",
            Kind::Sqlite,
            &input,
            &SourceLimits::default(),
            &op(),
        )
        .await
        .expect("registered");
    sources
        .set_grant(acme.id, "shop", app_name, true, &op())
        .await
        .expect("granted");
}

/// The platform's data sources and cache reach a 0.2.0 guest through the real router
/// (`capabilities.rs`): the app granted the source reads its rows, another app of the same
/// tenant gets `not-granted`, a write is refused, and each app's cache is its own.
#[tokio::test]
async fn a_guest_queries_its_granted_source_and_keeps_its_own_cache_through_the_router() {
    let app = TestApp::new().await;
    for name in ["cap", "other"] {
        app.deploy("acme", name, "guest_capable.wasm").await;
        platform::admin::set_visibility(&app.state.store, &format!("acme/{name}"), "public", &op())
            .await
            .expect("public");
    }
    shop_granted_to(&app, "cap").await;

    let select = json!({
        "source": "shop",
        "sql": "select name, units from items where units > ? order by units",
        "params": [7],
    });
    let answer = capable(&app, "cap", "query", select.clone()).await;
    let rows = answer["ok"].as_str().unwrap_or_else(|| panic!("{answer}"));
    assert!(
        rows.contains("item 8") && rows.contains("item 10"),
        "{answer}"
    );
    assert!(!rows.contains("item 7"), "the parameter filters: {answer}");

    let refused = capable(&app, "other", "query", select).await;
    assert_eq!(refused["err"]["kind"], "not-granted", "{refused}");
    let write = json!({"source": "shop", "sql": "delete from items", "params": []});
    let refused = capable(&app, "cap", "query", write).await;
    assert_eq!(refused["err"]["kind"], "refused", "{refused}");
    let still = capable(
        &app,
        "cap",
        "query",
        json!({"source": "shop", "sql": "select count(*) from items", "params": []}),
    )
    .await;
    assert!(still["ok"].is_string(), "{still}");

    let set = json!({"op": "set", "key": "k", "value": "cap's value", "ttl": 60});
    assert_eq!(
        capable(&app, "cap", "cache", set).await,
        json!({"ok": null})
    );
    let get = json!({"op": "get", "key": "k"});
    assert_eq!(
        capable(&app, "cap", "cache", get.clone()).await,
        json!({"ok": "cap's value"})
    );
    assert_eq!(
        capable(&app, "other", "cache", get).await,
        json!({"ok": null})
    );
}

/// The grant lookup of `data.query` is cached per replica under the change counter (issue
/// 14): warm queries ask the platform's database nothing, and a revocation, an edit or a
/// removal made through one replica is seen by the very next query on that replica and,
/// once the other replica has polled the change counter (every 500 ms), by the next query
/// there. On SQLite and PostgreSQL stores.
#[tokio::test]
async fn grants_are_cached_until_a_change_and_a_revocation_is_refused_on_every_replica() {
    for db in platform::store::testing::TestDatabase::all()
        .await
        .expect("databases")
    {
        let backend = db.backend;
        let first = TestApp::on(db).await;
        let (acme, hello) = tenant_with_app(&first, "acme", "hello").await;
        let second = TestApp::replica_of(&first).await;
        let dir = first.state.config.sources_dir();
        sqlite_file(&dir, "acme", "shop.db", 5).await;
        sqlite_file(&dir, "acme", "bigger.db", 7).await;
        let sources = &first.state.datasources;
        let file = |p: &str| ConnectionInput {
            path: Some(p.to_owned()),
            ..Default::default()
        };
        let tenant = &acme;
        let put = |p: &'static str| async move {
            sources
                .put(
                    tenant,
                    "shop",
                    Kind::Sqlite,
                    &file(p),
                    &SourceLimits::default(),
                    &op(),
                )
                .await
        };
        put("shop.db").await.expect("registered");
        let grant = |granted: bool| async move {
            sources
                .set_grant(tenant.id, "shop", "hello", granted, &op())
                .await
        };
        assert!(grant(true).await.expect("granted"), "{backend:?}");
        let count = |replica: &TestApp| {
            let sources = replica.state.datasources.clone();
            async move {
                let call = QueryContext {
                    tenant: acme.id,
                    app: hello,
                    viewer: None,
                };
                sources
                    .query(
                        call,
                        "shop",
                        "select count(*) as n from items",
                        &[],
                        Instant::now() + Duration::from_secs(5),
                    )
                    .await
                    .map(|out| ints(&decode(&out), "n")[0])
            }
        };
        // What the second replica's poller does every 500 ms, done now.
        let poll = || async { second.state.changes.poll().await.expect("poll") };
        poll().await;
        for replica in [&first, &second] {
            assert_eq!(count(replica).await, Ok(5), "{backend:?}");
        }

        // Warm: the grant comes from memory, the platform's database is not asked.
        let store = &first.state.store;
        let (queries_before, polls_before) = (store.acquisitions(), first.state.changes.polls());
        for _ in 0..10 {
            assert_eq!(count(&first).await, Ok(5), "{backend:?}");
        }
        let queries = store.acquisitions() - queries_before;
        let polls = first.state.changes.polls() - polls_before;
        assert!(
            queries <= polls,
            "{backend:?}: 10 warm queries used the platform's database {queries} times \
             ({polls} of them the change-counter poll)"
        );

        // Revoked through the first replica: refused by its very next query, and by the
        // second's next query after its poll.
        assert!(grant(false).await.expect("revoked"), "{backend:?}");
        let not_granted = |result: Result<i64, QueryError>| matches!(result, Err(QueryError::NotGranted(ref m)) if m.contains("no data source `shop`"));
        let refused = count(&first).await;
        assert!(not_granted(refused.clone()), "{backend:?}: {refused:?}");
        poll().await;
        let refused = count(&second).await;
        assert!(not_granted(refused.clone()), "{backend:?}: {refused:?}");

        // Granted again, then edited to point at another file: both replicas read it.
        assert!(grant(true).await.expect("granted"), "{backend:?}");
        poll().await;
        for replica in [&first, &second] {
            assert_eq!(count(replica).await, Ok(5), "{backend:?}");
        }
        put("bigger.db").await.expect("edited");
        assert_eq!(count(&first).await, Ok(7), "{backend:?}: the edit at once");
        poll().await;
        assert_eq!(
            count(&second).await,
            Ok(7),
            "{backend:?}: the edit after a poll"
        );

        // Removed: refused everywhere.
        assert!(
            sources
                .remove(acme.id, "shop", &op())
                .await
                .expect("removed"),
            "{backend:?}"
        );
        let refused = count(&first).await;
        assert!(not_granted(refused.clone()), "{backend:?}: {refused:?}");
        poll().await;
        let refused = count(&second).await;
        assert!(not_granted(refused.clone()), "{backend:?}: {refused:?}");
    }
}
