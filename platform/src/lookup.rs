//! One lookup per request: the facts a Dash request needs about its app (who may open it;
//! the runtime keeps which version serves it) come from this replica's memory, and the
//! database is asked only when something changed.
//!
//! Freshness rests on two numbers, read together as a [`Stamp`]: the database's change
//! counter (bumped by trigger in every transaction that changes tenants, apps, members,
//! teams, grants or collaborators, migration 0023, or users, 0031, and by the store in every
//! change of a data source or its grants to apps), polled once per [`Changes::POLL`] by a
//! task of each replica, and the count of such transactions this process committed itself
//! (so its own changes count at once). An answer is cached with the stamp read *before*
//! the database was asked, and served only while the stamp is the same: a change that
//! commits during the lookup makes it stale rather than lost.
//!
//! The same stamps keep the account behind each signed-in session and app session
//! ([`AccountCache`]): the session record itself is still read per request, so a sign-out
//! (its record deleted) ends the session on every replica at once; a change to the user
//! (counted since migration 0031) or their memberships within one poll.
//!
//! When polling fails for longer than [`Changes::STALE_AFTER`] (the database is down)
//! there is no stamp and every lookup asks the database, as before this cache existed.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use crate::ids::{AppId, Slug, TenantId, UserId};
use crate::store::{self, AppAccess, SessionAccount, Store, StoredDataSource};

/// When cached facts were true: the change counter's generation as this replica saw it and
/// this process's own committed changes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stamp {
    generation: u64,
    local: u64,
}

/// This replica's view of the database's change counter.
pub struct Changes {
    store: Store,
    /// The counter's value at the last poll (`i64::MIN` before the first).
    counter: AtomicI64,
    /// Bumped whenever the counter moved.
    generation: AtomicU64,
    /// When the counter was last read successfully.
    polled_at: Mutex<Option<Instant>>,
    /// Polls made (each is exactly one query).
    polls: AtomicU64,
}

impl Changes {
    /// How often each replica reads the change counter: a change anywhere is seen by
    /// every replica within this time.
    pub const POLL: Duration = Duration::from_millis(500);

    /// Without a successful poll for this long, nothing is served from memory.
    pub const STALE_AFTER: Duration = Duration::from_secs(3);

    /// Changes of `store`'s database; nothing is fresh until the first [`Changes::poll`].
    pub fn new(store: Store) -> Self {
        Self {
            store,
            counter: AtomicI64::new(i64::MIN),
            generation: AtomicU64::new(0),
            polled_at: Mutex::new(None),
            polls: AtomicU64::new(0),
        }
    }

    /// Read the change counter once; a move makes every earlier stamp stale.
    pub async fn poll(&self) -> store::Result<()> {
        self.polls.fetch_add(1, Ordering::Relaxed);
        let counter = self.store.change_counter().await?;
        if self.counter.swap(counter, Ordering::AcqRel) != counter {
            self.generation.fetch_add(1, Ordering::AcqRel);
        }
        *lock(&self.polled_at) = Some(Instant::now());
        Ok(())
    }

    /// Poll every [`Changes::POLL`] until `self` is dropped.
    pub fn spawn_polling(self: &Arc<Self>) {
        let changes: Weak<Self> = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(Self::POLL);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticks.tick().await;
                let Some(changes) = changes.upgrade() else {
                    return;
                };
                if let Err(error) = changes.poll().await {
                    tracing::warn!(%error, "reading the change counter failed");
                }
            }
        });
    }

    /// The stamp for an answer about to be read from the database; `None` when polling
    /// has not succeeded recently (then nothing may be served from memory).
    pub fn stamp(&self) -> Option<Stamp> {
        let fresh = lock(&self.polled_at).is_some_and(|at| at.elapsed() < Self::STALE_AFTER);
        fresh.then(|| Stamp {
            generation: self.generation.load(Ordering::Acquire),
            local: self.store.local_changes(),
        })
    }

    /// How many polls this replica made (each one query): what the database served that
    /// no request asked for.
    pub fn polls(&self) -> u64 {
        self.polls.load(Ordering::Relaxed)
    }
}

type AccessKey = (Slug, Slug, Option<UserId>);

/// Who may open which app, per user, as of a [`Stamp`].
pub struct AccessCache {
    changes: Arc<Changes>,
    entries: moka::sync::Cache<AccessKey, (Stamp, Option<AppAccess>)>,
}

impl AccessCache {
    /// At most this many (app, user) answers are kept; the least used go first.
    pub const CAPACITY: u64 = 100_000;

    /// A cache over `changes`' store.
    pub fn new(changes: Arc<Changes>) -> Self {
        Self {
            changes,
            entries: moka::sync::Cache::new(Self::CAPACITY),
        }
    }

    /// [`Store::app_access`], from memory while nothing changed.
    pub async fn app_access(
        &self,
        tenant: &Slug,
        app: &Slug,
        user: Option<UserId>,
    ) -> store::Result<Option<AppAccess>> {
        let stamp = self.changes.stamp();
        let key = (tenant.clone(), app.clone(), user);
        if let Some(stamp) = stamp
            && let Some((at, access)) = self.entries.get(&key)
            && at == stamp
        {
            crate::observe::cache_lookup("access", true);
            return Ok(access);
        }
        crate::observe::cache_lookup("access", false);
        let access = self.changes.store.app_access(tenant, app, user).await?;
        if let Some(stamp) = stamp {
            self.entries.insert(key, (stamp, access));
        }
        Ok(access)
    }
}

type GrantKey = (TenantId, AppId, String);

/// Which data source of its tenant each app may query (the guest's `data.query`), as of a
/// [`Stamp`]: a warm query asks the platform's database nothing. Every change of a source
/// or of its grants moves the change counter (`store::datasources`), so a revoked grant is
/// refused by the next query on the replica that revoked it and, after its next poll, on
/// every other.
pub struct GrantCache {
    changes: Arc<Changes>,
    entries: moka::sync::Cache<GrantKey, (Stamp, Option<StoredDataSource>)>,
}

impl GrantCache {
    /// At most this many (app, source name) answers are kept, refusals included (a name a
    /// guest makes up is asked once per change, not once per call); the least used go first.
    pub const CAPACITY: u64 = 20_000;

    /// A cache over `changes`' store.
    pub fn new(changes: Arc<Changes>) -> Self {
        Self {
            changes,
            entries: moka::sync::Cache::new(Self::CAPACITY),
        }
    }

    /// [`Store::granted_data_source`], from memory while nothing changed.
    pub async fn granted_data_source(
        &self,
        tenant: TenantId,
        app: AppId,
        name: &str,
    ) -> store::Result<Option<StoredDataSource>> {
        let stamp = self.changes.stamp();
        let key = (tenant, app, name.to_owned());
        if let Some(stamp) = stamp
            && let Some((at, source)) = self.entries.get(&key)
            && at == stamp
        {
            crate::observe::cache_lookup("data_source_grant", true);
            return Ok(source);
        }
        crate::observe::cache_lookup("data_source_grant", false);
        let source = self
            .changes
            .store
            .granted_data_source(tenant, app, name)
            .await?;
        if let Some(stamp) = stamp {
            self.entries.insert(key, (stamp, source.clone()));
        }
        Ok(source)
    }
}

/// What sessions need about their user (epoch, superadmin, forced password change,
/// memberships), per user, as of a [`Stamp`]: a signed-in request reads its session record
/// and nothing else.
pub struct AccountCache {
    changes: Arc<Changes>,
    entries: moka::sync::Cache<UserId, (Stamp, Option<SessionAccount>)>,
}

impl AccountCache {
    /// At most this many users' accounts are kept; the least used go first.
    pub const CAPACITY: u64 = 100_000;

    /// A cache over `changes`' store.
    pub fn new(changes: Arc<Changes>) -> Self {
        Self {
            changes,
            entries: moka::sync::Cache::new(Self::CAPACITY),
        }
    }

    /// [`Store::session_account`], from memory while nothing changed.
    pub async fn account(&self, user: UserId) -> store::Result<Option<SessionAccount>> {
        let stamp = self.changes.stamp();
        if let Some(stamp) = stamp
            && let Some((at, account)) = self.entries.get(&user)
            && at == stamp
        {
            crate::observe::cache_lookup("account", true);
            return Ok(account);
        }
        crate::observe::cache_lookup("account", false);
        let account = self.changes.store.session_account(user).await?;
        if let Some(stamp) = stamp {
            self.entries.insert(user, (stamp, account.clone()));
        }
        Ok(account)
    }
}

/// Which tenants are suspended, as of a [`Stamp`]: one query per change of the counter
/// (a suspension moves it with the tenants row), so the apps gate asks the database
/// nothing per request and every replica sees a suspension or a resumption within one poll.
pub struct Suspensions {
    changes: Arc<Changes>,
    known: Mutex<Option<(Stamp, Arc<std::collections::HashSet<String>>)>>,
}

impl Suspensions {
    /// Suspensions in `changes`' store.
    pub fn new(changes: Arc<Changes>) -> Self {
        Self {
            changes,
            known: Mutex::new(None),
        }
    }

    /// Whether the tenant `slug` is suspended (or deleted).
    pub async fn is_suspended(&self, slug: &Slug) -> store::Result<bool> {
        let stamp = self.changes.stamp();
        if let Some(stamp) = stamp
            && let Some((at, slugs)) = lock(&self.known).as_ref()
            && *at == stamp
        {
            crate::observe::cache_lookup("suspensions", true);
            return Ok(slugs.contains(slug.as_str()));
        }
        crate::observe::cache_lookup("suspensions", false);
        let slugs: Arc<std::collections::HashSet<String>> = Arc::new(
            self.changes
                .store
                .suspended_tenants()
                .await?
                .into_iter()
                .map(|(_, slug)| slug)
                .collect(),
        );
        let suspended = slugs.contains(slug.as_str());
        if let Some(stamp) = stamp {
            *lock(&self.known) = Some((stamp, slugs));
        }
        Ok(suspended)
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Every update is one assignment: a poisoned lock still holds a valid value.
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}
