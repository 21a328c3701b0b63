//! Per-backend state behind the claim functions: which token is current, and what its
//! verification gave.
//!
//! A backend is one single-threaded process, so plain `thread_local!` `RefCell`s are safe.
//! The hot path (every claim function, possibly once per row under RLS) compares two
//! generation counters, re-checks `exp`/`nbf` against a coarse wall clock, and reads the
//! cached claims: no setting lookup, no string comparison, no JSON parsing.
//!
//! What invalidates what:
//! - [`settings::TOKEN_GENERATION`] (assign hooks on the token settings) → the current
//!   token is resolved again (LRU lookup by SHA-256, verification on a miss);
//! - [`trust::config_generation`] (relcache invalidation of `oidc.issuers`) → the trust
//!   configuration is reloaded and every cached verification dropped;
//! - [`trust::revocation_generation`] (of `oidc.revocations`) → the revocations are
//!   reloaded and the current token checked against them again, from the cache: no
//!   signature is verified again.
//!
//! Bounds: at most `oidc.cache_size` verified tokens (least recently used evicted).

use crate::error::Error;
use crate::stats;
use crate::{settings, trust};
use oidc_authz_core::revocation::Revocations;
use oidc_authz_core::rules::value::Val;
use oidc_authz_core::rules::RuleSet;
use oidc_authz_core::stats::Counter;
use oidc_authz_core::{
    bearer_from_headers, fingerprint, parse_uuid, verify_untimed, TokenError, TrustConfig, Verified,
};
use std::cell::OnceCell;
use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::atomic::Ordering;

/// Where the current token came from.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Setting,
    Headers,
}

impl Source {
    pub fn name(self) -> &'static str {
        match self {
            Source::Setting => "oidc.token",
            Source::Headers => "request.headers",
        }
    }
}

/// A verified token and what is derived from it once.
pub struct Entry {
    pub verified: Verified,
    /// `sub` parsed as a uuid, if it is one.
    pub uid: Option<[u8; 16]>,
    /// The rule engine's view of the claims, built at the first decision.
    inputs: OnceCell<Inputs>,
}

/// What rules see of a principal: `claims`, `scopes`, `roles`.
pub struct Inputs {
    pub claims: Val,
    pub scopes: Val,
    pub roles: Val,
}

impl Inputs {
    pub fn new(claims: &serde_json::Value, scopes: &[String], roles: &[String]) -> Inputs {
        Inputs {
            claims: Val::from_json(claims),
            scopes: Val::list_of_strings(scopes),
            roles: Val::list_of_strings(roles),
        }
    }
}

impl Entry {
    pub fn inputs(&self) -> &Inputs {
        self.inputs.get_or_init(|| {
            let v = &self.verified;
            Inputs::new(&v.claims, &v.scopes, &v.roles)
        })
    }
}

#[derive(Clone)]
pub enum Current {
    Anonymous,
    Valid { entry: Rc<Entry>, source: Source },
    Invalid { error: TokenError, source: Source },
}

struct State {
    token_generation: u64,
    config_generation: u64,
    revocation_generation: u64,
    current: Option<Current>,
    trust: Option<Rc<TrustConfig>>,
    rules: Option<Rc<RuleSet>>,
    revocations: Option<Rc<Revocations>>,
    lru: Lru,
}

thread_local! {
    static STATE: RefCell<State> = const { RefCell::new(State {
        token_generation: 0,
        config_generation: 0,
        revocation_generation: 0,
        current: None,
        trust: None,
        rules: None,
        revocations: None,
        lru: Lru::new(),
    }) };
}

/// Seconds since the epoch from the coarse real-time clock (a few ns to read, a few ms
/// behind at most): tokens carry whole seconds and a leeway of seconds.
pub fn now() -> i64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: writes into the local timespec only.
    unsafe { libc::clock_gettime(libc::CLOCK_REALTIME_COARSE, &mut ts) };
    ts.tv_sec
}

/// Runs `f` on the current verified token; `Ok(None)` when there is no token (anonymous),
/// an error when a token is present but invalid or no longer valid.
#[inline]
pub fn with_token<R>(f: impl FnOnce(&Entry) -> R) -> Result<Option<R>, Error> {
    with_principal(|entry| entry.map(f))
}

/// Runs `f` on the current principal: the verified token's entry, or `None` when
/// anonymous; an error when a token is present but invalid or no longer valid.
///
/// The fast path runs `f` inside a shared borrow of the state, without cloning anything;
/// `f` must not call back into this module (the SQL functions' closures do not).
#[inline]
pub fn with_principal<R>(f: impl FnOnce(Option<&Entry>) -> R) -> Result<R, Error> {
    let token_generation = settings::TOKEN_GENERATION.load(Ordering::Relaxed);
    let config_generation = trust::config_generation();
    let mut f = Some(f);
    let fast = STATE.with_borrow(|s| {
        if !s.fresh(token_generation, config_generation) {
            return None;
        }
        match &s.current {
            Some(Current::Anonymous) => f.take().map(|f| Ok(f(None))),
            Some(Current::Valid { entry, .. }) => match entry.verified.check_time(now()) {
                Ok(()) => f.take().map(|f| Ok(f(Some(entry)))),
                Err(e) => Some(Err(Error::Token(e))),
            },
            _ => None,
        }
    });
    if let Some(result) = fast {
        return result;
    }
    let Some(f) = f.take() else {
        return Err(Error::Internal(
            "the fast path consumed the closure without deciding",
        ));
    };
    match current() {
        Current::Anonymous => Ok(f(None)),
        Current::Valid { entry, .. } => {
            entry.verified.check_time(now()).map_err(Error::Token)?;
            Ok(f(Some(&entry)))
        }
        Current::Invalid { error, .. } => Err(Error::Token(error)),
    }
}

/// [`with_token`] for a string borrowed from the current token, handed back as `'static`
/// so that pgrx copies it straight into the result `text` without an intermediate `String`.
///
/// SAFETY (of the lifetime extension): the string lives in an `Rc<Entry>` held by this
/// backend's state until the current token is resolved again, which happens only inside a
/// later call into this module; pgrx copies the returned `&str` into a palloc'd `text`
/// before the calling SQL function returns. A backend runs one thread, so nothing else can
/// drop the entry in between. Callers must not keep the reference beyond that copy.
#[inline]
pub fn with_token_str(
    f: impl FnOnce(&Entry) -> Option<&str>,
) -> Result<Option<&'static str>, Error> {
    with_token(|entry| {
        f(entry).map(|s| {
            // SAFETY: see the function's documentation.
            unsafe { std::mem::transmute::<&str, &'static str>(s) }
        })
    })
    .map(Option::flatten)
}

/// The current token's state, resolved again only when a generation counter moved.
pub fn current() -> Current {
    let token_generation = settings::TOKEN_GENERATION.load(Ordering::Relaxed);
    let config_generation = trust::config_generation();
    let cached = STATE.with_borrow(|s| {
        if s.fresh(token_generation, config_generation) {
            s.current.clone()
        } else {
            None
        }
    });
    if let Some(current) = cached {
        return current;
    }
    let current = resolve(config_generation);
    STATE.with_borrow_mut(|s| {
        s.token_generation = token_generation;
        s.current = Some(current.clone());
    });
    current
}

impl State {
    /// Whether `current` still describes the token settings and the configuration.
    #[inline]
    fn fresh(&self, token_generation: u64, config_generation: u64) -> bool {
        self.token_generation == token_generation
            && self.config_generation == config_generation
            && self.revocation_generation == trust::revocation_generation()
            && self.current.is_some()
            && settings::token_sources_watched()
    }
}

/// Drops everything derived from the configuration tables when they changed.
fn sync_config(config_generation: u64) {
    STATE.with_borrow_mut(|s| {
        if s.config_generation != config_generation {
            s.trust = None;
            s.rules = None;
            s.lru.clear();
            s.current = None;
            s.config_generation = config_generation;
        }
    });
}

/// Drops the revocations, and the current token's state that was checked against them,
/// when the table changed; the verified tokens stay cached.
fn sync_revocations(revocation_generation: u64) {
    STATE.with_borrow_mut(|s| {
        if s.revocation_generation != revocation_generation {
            s.revocations = None;
            s.current = None;
            s.revocation_generation = revocation_generation;
        }
    });
}

/// What is revoked, loaded at first use after a change.
fn revocations() -> Rc<Revocations> {
    sync_revocations(trust::revocation_generation());
    if let Some(r) = STATE.with_borrow(|s| s.revocations.clone()) {
        return r;
    }
    let r = Rc::new(trust::load_revocations());
    STATE.with_borrow_mut(|s| s.revocations = Some(r.clone()));
    r
}

/// The trust configuration, loaded at first use after a change.
pub fn trust() -> Rc<TrustConfig> {
    sync_config(trust::config_generation());
    if let Some(t) = STATE.with_borrow(|s| s.trust.clone()) {
        return t;
    }
    // Loading runs SQL: no borrow of the state may be held across it.
    let t = Rc::new(trust::load());
    STATE.with_borrow_mut(|s| s.trust = Some(t.clone()));
    t
}

/// The compiled rules, loaded at first use after a change.
pub fn rules() -> Rc<RuleSet> {
    sync_config(trust::config_generation());
    if let Some(r) = STATE.with_borrow(|s| s.rules.clone()) {
        return r;
    }
    let r = Rc::new(trust::load_rules());
    STATE.with_borrow_mut(|s| s.rules = Some(r.clone()));
    r
}

fn resolve(config_generation: u64) -> Current {
    sync_config(config_generation);
    sync_revocations(trust::revocation_generation());
    // A value that is not UTF-8 (a SQL_ASCII or LATIN1 database) is a present token that
    // cannot be decoded: refused, never taken for "no token".
    let undecodable = |source| {
        counted(Current::Invalid {
            error: TokenError::NotUtf8,
            source,
        })
    };
    let (token, source) = match settings::token() {
        Some(Ok(t)) => (t, Source::Setting),
        Some(Err(settings::NotUtf8)) => return undecodable(Source::Setting),
        None => match settings::header_fallback()
            .then(settings::request_headers)
            .flatten()
        {
            Some(Err(settings::NotUtf8)) => return undecodable(Source::Headers),
            Some(Ok(headers)) => match bearer_from_headers(&headers) {
                Some(t) => (t, Source::Headers),
                None => return Current::Anonymous,
            },
            None => return Current::Anonymous,
        },
    };
    // The size limit applies to cached verifications too (it may have been lowered since).
    let max = settings::max_token_bytes();
    if token.len() > max {
        return counted(Current::Invalid {
            error: TokenError::TooLarge {
                len: token.len(),
                max,
            },
            source,
        });
    }
    let key = fingerprint(&token);
    if let Some(entry) = STATE.with_borrow_mut(|s| s.lru.get(&key)) {
        stats::count(Counter::CacheHits, "");
        return counted(checked(entry, source));
    }
    stats::count(Counter::CacheMisses, "");
    let trust = trust();
    // Time claims are checked at every use (`with_token`), so an expired token is still
    // cached as verified: `token_status()` can then say whose token expired, and when.
    let mut verified = verify_untimed(&token, &trust, settings::max_token_bytes());
    if let Err(TokenError::UnknownKid(_) | TokenError::NoKey(_)) = &verified {
        // A discovery issuer may have rotated its keys: its worker refreshes them early
        // (at most once per cooldown); then the token is verified once more.
        let discovery = oidc_authz_core::token::unverified_issuer(&token)
            .filter(|iss| trust.issuer(iss).is_some_and(|c| c.discovery));
        if let Some(iss) = discovery {
            if crate::worker::refresh_and_wait(&iss) {
                let trust = self::trust();
                verified = verify_untimed(&token, &trust, settings::max_token_bytes());
            }
        }
    }
    match verified {
        Ok(verified) => {
            stats::count(Counter::TokensVerified, verified.alg.name());
            let uid = verified.sub.as_deref().and_then(parse_uuid);
            let entry = Rc::new(Entry {
                verified,
                uid,
                inputs: OnceCell::new(),
            });
            STATE.with_borrow_mut(|s| s.lru.insert(key, entry.clone(), settings::cache_size()));
            counted(checked(entry, source))
        }
        Err(error) => counted(Current::Invalid { error, source }),
    }
}

/// Counts a resolved token that is refused (`tokens_refused` by check): invalid, revoked,
/// or out of its validity period now (checked again at each use, but counted here, once
/// per resolution).
fn counted(current: Current) -> Current {
    let refused = match &current {
        Current::Invalid { error, .. } => Some(error.check()),
        Current::Valid { entry, .. } => entry.verified.check_time(now()).err().map(|e| e.check()),
        Current::Anonymous => None,
    };
    if let Some(check) = refused {
        stats::count(Counter::TokensRefused, check);
    }
    current
}

/// A verified token, unless `oidc.revocations` revokes it (checked at every resolution: a
/// new token, or a change of the table).
fn checked(entry: Rc<Entry>, source: Source) -> Current {
    match revocations().check(&entry.verified) {
        Ok(()) => Current::Valid { entry, source },
        Err(error) => Current::Invalid { error, source },
    }
}

type Slot = (Rc<Entry>, u64);

/// Verified tokens by fingerprint, least recently used evicted first. Eviction scans the
/// map (O(size)), which happens only on a miss of a full cache, next to a signature check.
struct Lru {
    /// Entry and the tick of its last use; `None` until the first insert (a const start).
    map: Option<HashMap<[u8; 32], Slot>>,
    tick: u64,
}

impl Lru {
    const fn new() -> Lru {
        Lru { map: None, tick: 0 }
    }

    fn clear(&mut self) {
        self.map = None;
    }

    fn get(&mut self, key: &[u8; 32]) -> Option<Rc<Entry>> {
        self.tick += 1;
        let tick = self.tick;
        let (entry, used) = self.map.as_mut()?.get_mut(key)?;
        *used = tick;
        Some(entry.clone())
    }

    fn insert(&mut self, key: [u8; 32], entry: Rc<Entry>, capacity: usize) {
        self.tick += 1;
        let map = self.map.get_or_insert_with(HashMap::new);
        while map.len() >= capacity {
            let Some(oldest) = map
                .iter()
                .min_by_key(|(_, (_, used))| *used)
                .map(|(k, _)| *k)
            else {
                break;
            };
            map.remove(&oldest);
        }
        map.insert(key, (entry, self.tick));
    }
}
