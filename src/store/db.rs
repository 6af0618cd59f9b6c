//! One database interface over the two backends of the store: the embedded SQLite file
//! (the default) and PostgreSQL (a cluster's shared store). Every query of the store is
//! written once, in the SQL both understand, with `?N` placeholders; for PostgreSQL the
//! few spellings that differ are translated once per statement and the statement is
//! prepared once per connection. Values cross as [`Value`]: integers, reals, text, null.
//!
//! The PostgreSQL client is the synchronous `postgres` crate (the blocking face of
//! `tokio-postgres`, which the cluster membership already uses): the store's writer is a
//! thread of its own and its readers run on blocking threads, as with SQLite, so one
//! store code serves both without an async rewrite of every page and report.

use std::collections::HashMap;
use std::sync::OnceLock;

use bytes::BytesMut;
use postgres::types::{IsNull, ToSql, Type, to_sql_checked};

/// A value bound to a statement or read from a row.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Int(i64),
    Real(f64),
    Text(String),
}

/// What can be bound as a [`Value`] (by reference, so fields need no cloning at the call).
pub trait ToValue {
    /// The value to bind.
    fn to_value(&self) -> Value;
}

impl ToValue for i64 {
    fn to_value(&self) -> Value {
        Value::Int(*self)
    }
}
impl ToValue for u32 {
    fn to_value(&self) -> Value {
        Value::Int(i64::from(*self))
    }
}
impl ToValue for bool {
    fn to_value(&self) -> Value {
        Value::Int(i64::from(*self))
    }
}
impl ToValue for f64 {
    fn to_value(&self) -> Value {
        Value::Real(*self)
    }
}
impl ToValue for str {
    fn to_value(&self) -> Value {
        Value::Text(self.to_string())
    }
}
impl ToValue for String {
    fn to_value(&self) -> Value {
        Value::Text(self.clone())
    }
}
impl<T: ToValue + ?Sized> ToValue for &T {
    fn to_value(&self) -> Value {
        (**self).to_value()
    }
}
impl<T: ToValue> ToValue for Option<T> {
    fn to_value(&self) -> Value {
        self.as_ref().map_or(Value::Null, ToValue::to_value)
    }
}

impl From<i64> for Value {
    fn from(v: i64) -> Value {
        Value::Int(v)
    }
}
impl From<u32> for Value {
    fn from(v: u32) -> Value {
        Value::Int(i64::from(v))
    }
}
impl From<bool> for Value {
    fn from(v: bool) -> Value {
        Value::Int(i64::from(v))
    }
}
impl From<f64> for Value {
    fn from(v: f64) -> Value {
        Value::Real(v)
    }
}
impl From<&str> for Value {
    fn from(v: &str) -> Value {
        Value::Text(v.to_string())
    }
}
impl From<&String> for Value {
    fn from(v: &String) -> Value {
        Value::Text(v.clone())
    }
}
impl From<String> for Value {
    fn from(v: String) -> Value {
        Value::Text(v)
    }
}
impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(v: Option<T>) -> Value {
        v.map_or(Value::Null, Into::into)
    }
}

/// Binds values: `vals![a, b]` is `[Value::from(a), Value::from(b)]`.
macro_rules! vals {
    ($($v:expr),* $(,)?) => { [$($crate::store::db::ToValue::to_value(&$v)),*] };
}
pub(crate) use vals;

/// A database error, from either backend or from reading a column as the wrong type.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("{0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("PostgreSQL: {}", postgres_message(.0))]
    Postgres(#[from] postgres::Error),
    #[error("column {0}: {1}")]
    Column(usize, &'static str),
    /// The connection string does not parse. Nothing of it is kept: the parser's own error
    /// can quote a piece of it, which may be the password.
    #[error("PostgreSQL: the connection string is not valid (it is not shown: it holds the password)")]
    Dsn,
}

/// The server's message when there is one (the crate's own Display says only "db error").
fn postgres_message(e: &postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{} ({})", db.message(), db.code().code()),
        None => e.to_string(),
    }
}

impl rusqlite::ToSql for Value {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        use rusqlite::types::ToSqlOutput;
        Ok(match self {
            Value::Null => ToSqlOutput::Owned(rusqlite::types::Value::Null),
            Value::Int(i) => ToSqlOutput::from(*i),
            Value::Real(f) => ToSqlOutput::from(*f),
            Value::Text(s) => ToSqlOutput::from(s.as_str()),
        })
    }
}

impl ToSql for Value {
    fn to_sql(&self, ty: &Type, out: &mut BytesMut) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        match (self, ty) {
            (Value::Null, _) => Ok(IsNull::Yes),
            (Value::Int(i), &Type::INT8) => i.to_sql(ty, out),
            (Value::Int(i), &Type::INT4) => i32::try_from(*i)?.to_sql(ty, out),
            (Value::Int(i), &Type::INT2) => i16::try_from(*i)?.to_sql(ty, out),
            (Value::Int(i), &Type::BOOL) => (*i != 0).to_sql(ty, out),
            (Value::Int(i), &Type::FLOAT8) => (*i as f64).to_sql(ty, out),
            (Value::Real(f), &Type::FLOAT8) => f.to_sql(ty, out),
            (Value::Real(f), &Type::FLOAT4) => (*f as f32).to_sql(ty, out),
            (Value::Text(s), _) => s.as_str().to_sql(ty, out),
            (value, ty) => Err(format!("cannot bind {value:?} as {ty}").into()),
        }
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    to_sql_checked!();
}

/// One row read, its columns in order.
#[derive(Debug, Clone, PartialEq)]
pub struct Row(pub Vec<Value>);

impl Row {
    fn at(&self, i: usize) -> Result<&Value, DbError> {
        self.0.get(i).ok_or(DbError::Column(i, "no such column"))
    }

    /// An integer column (not null).
    pub fn int(&self, i: usize) -> Result<i64, DbError> {
        self.opt_int(i)?.ok_or(DbError::Column(i, "null where an integer was expected"))
    }

    /// An integer column that may be null.
    pub fn opt_int(&self, i: usize) -> Result<Option<i64>, DbError> {
        match self.at(i)? {
            Value::Null => Ok(None),
            Value::Int(v) => Ok(Some(*v)),
            _ => Err(DbError::Column(i, "not an integer")),
        }
    }

    /// A real column (an integer is taken as a real), not null.
    pub fn real(&self, i: usize) -> Result<f64, DbError> {
        self.opt_real(i)?.ok_or(DbError::Column(i, "null where a number was expected"))
    }

    /// A real column that may be null.
    pub fn opt_real(&self, i: usize) -> Result<Option<f64>, DbError> {
        match self.at(i)? {
            Value::Null => Ok(None),
            Value::Real(v) => Ok(Some(*v)),
            Value::Int(v) => Ok(Some(*v as f64)),
            Value::Text(_) => Err(DbError::Column(i, "not a number")),
        }
    }

    /// A text column (not null), borrowed.
    pub fn str(&self, i: usize) -> Result<&str, DbError> {
        match self.at(i)? {
            Value::Text(s) => Ok(s),
            Value::Null => Err(DbError::Column(i, "null where text was expected")),
            _ => Err(DbError::Column(i, "not text")),
        }
    }

    /// A text column (not null).
    pub fn text(&self, i: usize) -> Result<String, DbError> {
        self.str(i).map(str::to_string)
    }

    /// A text column that may be null.
    pub fn opt_text(&self, i: usize) -> Result<Option<String>, DbError> {
        match self.at(i)? {
            Value::Null => Ok(None),
            _ => self.text(i).map(Some),
        }
    }
}

/// A PostgreSQL connection with the statements it has prepared.
pub struct Postgres {
    client: Client,
    statements: HashMap<String, postgres::Statement>,
}

/// The synchronous client, closed off any async runtime when dropped (its close blocks).
struct Client(Option<postgres::Client>);

impl std::ops::Deref for Client {
    type Target = postgres::Client;
    fn deref(&self) -> &postgres::Client {
        self.0.as_ref().expect("a client until dropped")
    }
}

impl std::ops::DerefMut for Client {
    fn deref_mut(&mut self) -> &mut postgres::Client {
        self.0.as_mut().expect("a client until dropped")
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        if let Some(client) = self.0.take() {
            outside_runtime(move || drop(client));
        }
    }
}

impl std::fmt::Debug for Postgres {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Postgres")
    }
}

/// An open database of either backend.
#[derive(Debug)]
pub enum Database {
    Sqlite(rusqlite::Connection),
    Postgres(Box<Postgres>),
}

/// Runs `f` off any async runtime: the synchronous PostgreSQL client runs a runtime of its
/// own, which cannot start on a thread that is inside one (`vigil report` reads from async
/// code). On such a thread `f` runs on a short-lived scoped thread.
fn outside_runtime<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    if tokio::runtime::Handle::try_current().is_err() {
        return f();
    }
    std::thread::scope(|s| s.spawn(f).join()).unwrap_or_else(|p| std::panic::resume_unwind(p))
}

impl Database {
    /// Connects to PostgreSQL (`dsn`: `host=… user=…` or a `postgres://` URL), plain TCP.
    pub fn postgres(dsn: &str) -> Result<Database, DbError> {
        let mut config: postgres::Config = dsn.parse().map_err(|_| DbError::Dsn)?;
        let client = outside_runtime(|| {
            if config.get_connect_timeout().is_none() {
                config.connect_timeout(std::time::Duration::from_secs(5));
            }
            config.application_name("vigil");
            config.connect(postgres::NoTls)
        })?;
        Ok(Database::Postgres(Box::new(Postgres { client: Client(Some(client)), statements: HashMap::new() })))
    }

    /// Whether the connection is gone for good (a database server that restarted or cut
    /// it): it must be made anew.
    pub fn is_broken(&self) -> bool {
        match self {
            Database::Sqlite(_) => false,
            Database::Postgres(pg) => pg.client.is_closed(),
        }
    }

    /// Whether this is the PostgreSQL backend.
    pub fn is_postgres(&self) -> bool {
        matches!(self, Database::Postgres(_))
    }

    /// Runs one statement; returns the rows it changed.
    pub fn exec(&mut self, sql: &str, params: &[Value]) -> Result<u64, DbError> {
        match self {
            Database::Sqlite(c) => {
                Ok(c.prepare_cached(sql)?.execute(rusqlite::params_from_iter(params.iter()))? as u64)
            }
            Database::Postgres(pg) => pg.run(sql, params, |client, stmt, p| Ok(client.execute(stmt, p)?)),
        }
    }

    /// Runs one query; returns every row.
    pub fn query(&mut self, sql: &str, params: &[Value]) -> Result<Vec<Row>, DbError> {
        match self {
            Database::Sqlite(c) => {
                let mut stmt = c.prepare_cached(sql)?;
                let width = stmt.column_count();
                let mut rows = stmt.query(rusqlite::params_from_iter(params.iter()))?;
                let mut out = Vec::new();
                while let Some(row) = rows.next()? {
                    out.push(Row((0..width).map(|i| sqlite_value(row.get_ref(i))).collect::<Result<_, _>>()?));
                }
                Ok(out)
            }
            Database::Postgres(pg) => {
                pg.run(sql, params, |client, stmt, p| client.query(stmt, p)?.iter().map(postgres_row).collect())
            }
        }
    }

    /// The first row of a query, if there is one.
    pub fn query_opt(&mut self, sql: &str, params: &[Value]) -> Result<Option<Row>, DbError> {
        Ok(self.query(sql, params)?.into_iter().next())
    }

    /// Runs statements without parameters (a schema step, BEGIN, COMMIT).
    pub fn batch(&mut self, sql: &str) -> Result<(), DbError> {
        match self {
            Database::Sqlite(c) => Ok(c.execute_batch(sql)?),
            Database::Postgres(pg) => Ok(outside_runtime(|| pg.client.batch_execute(sql))?),
        }
    }

    /// Runs `f` in one transaction: all of it is committed, or none of it.
    pub fn transaction<T>(&mut self, f: impl FnOnce(&mut Database) -> Result<T, DbError>) -> Result<T, DbError> {
        self.batch("BEGIN")?;
        let done = f(self).and_then(|v| self.batch("COMMIT").map(|()| v));
        if done.is_err() {
            let _ = self.batch("ROLLBACK");
        }
        done
    }
}

impl Postgres {
    /// Prepares `sql` (translated, once per connection) and runs `f` with it.
    fn run<T: Send>(
        &mut self,
        sql: &str,
        params: &[Value],
        f: impl FnOnce(&mut postgres::Client, &postgres::Statement, &[&(dyn ToSql + Sync)]) -> Result<T, DbError> + Send,
    ) -> Result<T, DbError> {
        outside_runtime(|| {
            let stmt = match self.statements.get(sql) {
                Some(s) => s.clone(),
                None => {
                    let prepared = self.client.prepare(&postgres_sql(sql))?;
                    self.statements.insert(sql.to_string(), prepared.clone());
                    prepared
                }
            };
            let bound: Vec<&(dyn ToSql + Sync)> = params.iter().map(|p| p as &(dyn ToSql + Sync)).collect();
            f(&mut self.client, &stmt, &bound)
        })
    }
}

fn sqlite_value(v: rusqlite::Result<rusqlite::types::ValueRef<'_>>) -> Result<Value, DbError> {
    use rusqlite::types::ValueRef;
    Ok(match v? {
        ValueRef::Null => Value::Null,
        ValueRef::Integer(i) => Value::Int(i),
        ValueRef::Real(f) => Value::Real(f),
        ValueRef::Text(t) | ValueRef::Blob(t) => Value::Text(String::from_utf8_lossy(t).into_owned()),
    })
}

fn postgres_row(row: &postgres::Row) -> Result<Row, DbError> {
    let mut out = Vec::with_capacity(row.len());
    for (i, column) in row.columns().iter().enumerate() {
        let v = match *column.type_() {
            Type::INT8 => row.try_get::<_, Option<i64>>(i)?.map(Value::Int),
            Type::INT4 => row.try_get::<_, Option<i32>>(i)?.map(|v| Value::Int(v.into())),
            Type::INT2 => row.try_get::<_, Option<i16>>(i)?.map(|v| Value::Int(v.into())),
            Type::BOOL => row.try_get::<_, Option<bool>>(i)?.map(|v| Value::Int(v.into())),
            Type::FLOAT8 => row.try_get::<_, Option<f64>>(i)?.map(Value::Real),
            Type::FLOAT4 => row.try_get::<_, Option<f32>>(i)?.map(|v| Value::Real(v.into())),
            _ => row.try_get::<_, Option<String>>(i)?.map(Value::Text),
        };
        out.push(v.unwrap_or(Value::Null));
    }
    Ok(Row(out))
}

/// The store's SQL as PostgreSQL spells it: `$N` placeholders, `->>` for SQLite's
/// `json_extract(x, '$.f')`, no `INDEXED BY` hint, the outbox's `id` for SQLite's `rowid`.
pub fn postgres_sql(sql: &str) -> String {
    static RULES: OnceLock<Vec<(regex::Regex, &'static str)>> = OnceLock::new();
    let rules = RULES.get_or_init(|| {
        [
            (r"\?(\d+)", "$$$1"),
            (r"json_extract\(([\w.]+), '\$\.(\w+)'\)", "($1::jsonb ->> '$2')"),
            (r"\s+INDEXED BY \w+", ""),
            (r"\browid\b", "id"),
        ]
        .into_iter()
        .map(|(pattern, with)| (regex::Regex::new(pattern).expect("a fixed pattern"), with))
        .collect()
    });
    rules.iter().fold(sql.to_string(), |sql, (pattern, with)| pattern.replace_all(&sql, *with).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postgres_spelling_of_the_store_sql() {
        assert_eq!(
            postgres_sql("SELECT a FROM t WHERE b = ?1 AND c > ?12"),
            "SELECT a FROM t WHERE b = $1 AND c > $12"
        );
        assert_eq!(
            postgres_sql("SELECT json_extract(r.data, '$.to') FROM r INDEXED BY r_cover WHERE 1 ORDER BY x, rowid"),
            "SELECT (r.data::jsonb ->> 'to') FROM r WHERE 1 ORDER BY x, id"
        );
    }

    #[test]
    fn a_connection_string_never_shows_in_an_error() {
        let secret = "s3cr3t-Pa55";
        for dsn in [
            format!("host=127.0.0.1 port=1 user=vigil password={secret} connect_timeout=2"),
            format!("postgres://vigil:{secret}@127.0.0.1:1/vigil"),
            format!("host=127.0.0.1 password={secret} port=not-a-port"),
            format!("host=127.0.0.1 password='{secret} unclosed"),
            format!("host=127.0.0.1 {secret}=x"),
            format!("postgres://vigil:{secret}@127.0.0.1:99999/vigil"),
        ] {
            let error = Database::postgres(&dsn).expect_err("nothing listens on port 1; the others are malformed");
            let shown = format!("{error} {error:?}");
            assert!(!shown.contains(secret), "{shown}");
        }
    }

    #[test]
    fn rows_read_from_sqlite_have_typed_columns() {
        let mut db = Database::Sqlite(rusqlite::Connection::open_in_memory().expect("memory"));
        let rows = db.query("SELECT ?1, ?2, ?3, NULL", &vals![7i64, 1.5f64, "x"]).expect("query");
        let row = &rows[0];
        assert_eq!((row.int(0).unwrap(), row.real(1).unwrap(), row.str(2).unwrap()), (7, 1.5, "x"));
        assert_eq!(row.opt_text(3).unwrap(), None);
        assert!(row.int(2).is_err(), "text read as an integer is an error, not a zero");
    }
}
