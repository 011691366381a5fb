//! The connections the host used last, kept checked out of sqlx's pool between queries.
//!
//! sqlx's pool tests a connection with a round trip when it hands it out
//! (`test_before_acquire`), tests it again with a second round trip when it comes back, and
//! spawns a task to take it back: for a one-row query, three round trips to the database
//! instead of one, each one a wake-up of the database and of the host. The host instead keeps
//! the connections it used last on a stack (most recent on top) and hands them out again
//! untested, as PgBouncer does: a connection idle for longer than [`CHECK_AFTER`] is tested
//! before it is used (PgBouncer's `server_check_delay`), one that failed a query goes back
//! through sqlx (which tests it and drops it if it is broken), and every connection passes
//! through sqlx's pool again at least every [`RECYCLE_AFTER`], where its `max_lifetime` and
//! `idle_timeout` apply.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use sqlx::pool::PoolConnection;
use sqlx::{Connection as _, Database, Pool};

/// A kept connection idle for longer than this is tested with a round trip before use, so a
/// database restart costs at most one failed query per connection used within the last
/// second.
pub(crate) const CHECK_AFTER: Duration = Duration::from_secs(1);

/// A connection goes back through sqlx's pool (lifetime and idle limits, its own test) at
/// least this often.
pub(crate) const RECYCLE_AFTER: Duration = Duration::from_secs(30);

/// A kept connection unused for this long goes back to sqlx's pool, where `idle_timeout`
/// and `min_connections` decide whether it stays open.
pub(crate) const RETURN_AFTER: Duration = Duration::from_secs(10);

/// A sqlx pool and the connections kept out of it.
#[derive(Debug)]
pub(crate) struct Warm<DB: Database> {
    /// The connection's name and the pool's role (`primary`, `replica`), for metrics.
    label: (String, &'static str),
    pool: Pool<DB>,
    state: Mutex<State<DB>>,
}

#[derive(Debug)]
struct State<DB: Database> {
    /// Kept connections, the most recently used last.
    kept: Vec<Kept<DB>>,
    /// Callers waiting in sqlx's pool: while there are any, a connection that comes back goes
    /// to sqlx's pool (which hands it to them) instead of onto the stack.
    waiting: usize,
}

#[derive(Debug)]
struct Kept<DB: Database> {
    conn: PoolConnection<DB>,
    /// When it last finished a query.
    since: Instant,
    /// When it last came out of sqlx's pool.
    out_since: Instant,
}

/// A connection lent to one query. Give it back with [`Lease::keep`] once the query
/// succeeded; dropped instead, it returns to sqlx's pool, which tests it.
pub(crate) struct Lease<'a, DB: Database> {
    warm: &'a Warm<DB>,
    conn: PoolConnection<DB>,
    out_since: Instant,
}

impl<DB: Database> Warm<DB> {
    pub(crate) fn new(label: (String, &'static str), pool: Pool<DB>) -> Self {
        Warm {
            label,
            pool,
            state: Mutex::new(State {
                kept: Vec::new(),
                waiting: 0,
            }),
        }
    }

    /// Runs `op` on sqlx's pool itself (transactions, unprepared SQL). When sqlx's pool has
    /// no idle connection, the kept ones go back to it first, so `op` never waits for
    /// connections that sit here unused; while `op` runs, connections coming back go to sqlx.
    pub(crate) async fn through_pool<'p, T, F>(&'p self, op: impl FnOnce(&'p Pool<DB>) -> F) -> T
    where
        F: std::future::Future<Output = T>,
    {
        let returned = {
            let mut state = self.lock();
            state.waiting += 1;
            if self.pool.num_idle() == 0 {
                std::mem::take(&mut state.kept)
            } else {
                Vec::new()
            }
        };
        let waiting = Waiting(self);
        drop(returned);
        let output = op(&self.pool).await;
        drop(waiting);
        output
    }

    /// Connections open, and of those idle (in sqlx's pool or kept here).
    pub(crate) fn counts(&self) -> (u32, usize) {
        let kept = self.lock().kept.len();
        (self.pool.size(), self.pool.num_idle() + kept)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State<DB>> {
        // A panic while holding the lock leaves a consistent Vec; keep going.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The most recently used kept connection (tested first if it sat idle), or one from
    /// sqlx's pool.
    pub(crate) async fn acquire(&self) -> Result<Lease<'_, DB>, sqlx::Error> {
        let started = Instant::now();
        let lease = self.lease().await;
        metrics::histogram!(
            "zeno_db_acquire_seconds",
            "db" => self.label.0.clone(),
            "role" => self.label.1
        )
        .record(started.elapsed().as_secs_f64());
        lease
    }

    async fn lease(&self) -> Result<Lease<'_, DB>, sqlx::Error> {
        loop {
            let kept = {
                let mut state = self.lock();
                match state.kept.pop() {
                    Some(kept) => kept,
                    None => {
                        state.waiting += 1;
                        break;
                    }
                }
            };
            let mut kept = kept;
            if kept.since.elapsed() < CHECK_AFTER || kept.conn.ping().await.is_ok() {
                return Ok(Lease {
                    warm: self,
                    conn: kept.conn,
                    out_since: kept.out_since,
                });
            }
            tracing::debug!("a kept database connection failed its test; closing it");
            kept.conn.close_on_drop();
        }
        let waiting = Waiting(self);
        let conn = self.pool.acquire().await;
        drop(waiting);
        Ok(Lease {
            warm: self,
            conn: conn?,
            out_since: Instant::now(),
        })
    }
}

/// Counts a caller waiting in sqlx's pool until it gets a connection or gives up.
struct Waiting<'a, DB: Database>(&'a Warm<DB>);

impl<DB: Database> Drop for Waiting<'_, DB> {
    fn drop(&mut self) {
        let mut state = self.0.lock();
        state.waiting = state.waiting.saturating_sub(1);
    }
}

impl<DB: Database> Lease<'_, DB> {
    /// The connection is in a state no later query should inherit: it is closed, not pooled.
    pub(crate) fn discard(mut self) {
        self.conn.close_on_drop();
    }

    /// The query succeeded: keep the connection for the next one, unless someone is waiting
    /// in sqlx's pool or it is due to pass through it again. Kept connections unused for
    /// [`RETURN_AFTER`] go back to sqlx's pool now.
    pub(crate) fn keep(self) {
        let now = Instant::now();
        let mut returned = Vec::new();
        {
            let mut state = self.warm.lock();
            if state.waiting > 0 || now.duration_since(self.out_since) >= RECYCLE_AFTER {
                returned.push(self.conn);
            } else {
                state.kept.push(Kept {
                    conn: self.conn,
                    since: now,
                    out_since: self.out_since,
                });
            }
            // The oldest are at the bottom.
            let stale = state
                .kept
                .iter()
                .take_while(|kept| now.duration_since(kept.since) >= RETURN_AFTER)
                .count();
            returned.extend(state.kept.drain(..stale).map(|kept| kept.conn));
        }
        // Dropped outside the lock: each goes back to sqlx's pool.
        drop(returned);
    }
}

impl<DB: Database> std::ops::Deref for Lease<'_, DB> {
    type Target = DB::Connection;

    fn deref(&self) -> &Self::Target {
        &self.conn
    }
}

impl<DB: Database> std::ops::DerefMut for Lease<'_, DB> {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.conn
    }
}
