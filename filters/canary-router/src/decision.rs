//! The routing decision for one request.
//!
//! In order:
//! 1. The first rule that matches picks the subset. The cookie is neither
//!    read nor written: a rule is an override, not an assignment.
//! 2. A request whose path does not path-match the cookie's `Path` (RFC
//!    6265 §5.1.4) goes to the default subset (the first with a weight), and
//!    its cookie is neither read nor written: the browser does not send the
//!    cookie there, so a bucket drawn there would be a new user each time,
//!    and its `Set-Cookie` would overwrite the cookie the user has under
//!    `Path` (fluxcd/flagger#1339).
//!    Without a clock (the host failed to give the time) every request
//!    outside a rule goes there too, cookies untouched: no cookie can be
//!    checked for age or stamped.
//! 3. A valid cookie (well-formed, signed with the current or previous key,
//!    not expired) gives the user's bucket. The subset is the one that owns
//!    the bucket under the current weights: the cookie's own subset when the
//!    split still puts the bucket there (a sticky hit), another one after a
//!    ramp or a rollback (a reassignment, and the cookie is rewritten). A
//!    cookie whose subset is no longer configured (removed in a rollback)
//!    keeps its bucket too, and is re-mapped and rewritten the same way: so
//!    removing a subset moves exactly that subset's users, each to the
//!    subset that now owns their bucket, the same one on every proxy.
//! 4. Otherwise the user gets a new bucket: the hash of the `identity`
//!    header when the request has one, else a random draw; and a new cookie.
//!
//! A cookie is rewritten when the subset changed, when it was signed with
//! the previous key, when less than half of its lifetime is left, or when
//! it was issued more than [`CLOCK_SKEW_SECS`] in the future: the signature
//! proves this router wrote it, so the clock that stamped it (another
//! proxy's, or this one's before a step back) was wrong, not the user. Its
//! bucket is kept and it is re-issued stamped with the local time, so its
//! lifetime is counted from a time this clock knows.

use crate::bucket::{identity_bucket, random_bucket};
use crate::config::Config;
use crate::cookie::{Rejection, Verified};
use crate::matching::{ParsedRequest, path_matches};

/// How far in the future a cookie's issue time may be (clock skew between
/// proxies) before it is re-issued with the local time.
pub const CLOCK_SKEW_SECS: u64 = 300;

/// What the decision needs from a request, as plain values.
#[derive(Debug, Clone, Copy)]
pub struct RequestView<'a> {
    /// Every request header (names in any case; Envoy's are lower-case).
    pub headers: &'a [(String, String)],
    /// The `:path` pseudo-header, query string included.
    pub path: &'a str,
    /// Wall-clock time, Unix seconds; `None` when the host's clock failed.
    pub now: Option<u64>,
    /// A uniformly random number, used only for a new user without identity.
    pub random: u64,
}

/// Where a new user's bucket came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BucketSource {
    Identity,
    Random,
}

/// Why the request goes where it goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// Rule `index` (in configuration order) matched.
    Rule { index: usize },
    /// A valid cookie, and its bucket still maps to its subset.
    Sticky,
    /// A valid cookie whose bucket now maps to another subset (after a
    /// ramp or a rollback); `from` is the cookie's subset index, `None` when
    /// the configuration no longer has the cookie's subset (it was removed).
    Reassigned { from: Option<usize> },
    /// No valid cookie: a new bucket.
    Assigned { source: BucketSource },
    /// The path is outside the cookie's `Path`: the default subset, no
    /// cookie read or written.
    OutsideCookiePath,
    /// The host gave no time, so no cookie can be checked for age nor
    /// stamped: the default subset, no cookie read or written (a cookie
    /// stamped 0 would expire at once and the user become new everywhere).
    NoClock,
}

/// The decision for one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision<'c> {
    /// Index into [`Config::subsets`].
    pub subset: usize,
    /// The subset's name: the route header's value.
    pub subset_name: &'c str,
    /// The user's bucket (`None` when a rule decided).
    pub bucket: Option<u16>,
    pub reason: Reason,
    /// The whole `Set-Cookie` header value to add to the response, if any.
    pub set_cookie: Option<String>,
    /// Why the request's cookie was refused, when it had one and no valid one.
    pub rejected: Option<Rejection>,
}

/// A cookie that passed every check.
#[derive(Debug, Clone, Copy)]
struct ValidCookie {
    bucket: u16,
    /// The cookie's subset, `None` when it is no longer configured.
    subset: Option<usize>,
    issued: u64,
    verified: Verified,
}

impl ValidCookie {
    /// Whether it was issued further in the future than clock skew explains.
    fn issued_in_the_future(&self, now: u64) -> bool {
        self.issued > now.saturating_add(CLOCK_SKEW_SECS)
    }
}

impl Config {
    /// Decides where `view` goes. Never fails: anything unusable in the
    /// request is treated as absent.
    pub fn decide(&self, view: &RequestView<'_>) -> Decision<'_> {
        let request = ParsedRequest::new(view.headers, view.path);
        if let Some((index, rule)) = self
            .rules
            .iter()
            .enumerate()
            .find(|(_, rule)| rule.matches(&request))
        {
            return self.decision(rule.subset, None, Reason::Rule { index }, None, None);
        }
        if !path_matches(request.path, &self.cookie.path) {
            return self.decision(
                self.default_subset,
                None,
                Reason::OutsideCookiePath,
                None,
                None,
            );
        }
        let Some(now) = view.now else {
            return self.decision(self.default_subset, None, Reason::NoClock, None, None);
        };

        let mut rejected = None;
        let mut valid = None;
        for value in request.cookie_values(self.cookie.codec.name()) {
            match self.check_cookie(value, now) {
                Ok(cookie) => {
                    valid = Some(cookie);
                    break;
                }
                Err(why) => {
                    rejected.get_or_insert(why);
                }
            }
        }

        if let Some(cookie) = valid {
            let subset = self.split.subset_of(cookie.bucket);
            let (reason, rewrite) = if cookie.subset == Some(subset) {
                let age = now.saturating_sub(cookie.issued);
                let stale = age.saturating_mul(2) >= self.cookie.max_age;
                (
                    Reason::Sticky,
                    stale
                        || cookie.verified == Verified::Previous
                        || cookie.issued_in_the_future(now),
                )
            } else {
                (
                    Reason::Reassigned {
                        from: cookie.subset,
                    },
                    true,
                )
            };
            let set_cookie = rewrite.then(|| self.set_cookie(cookie.bucket, subset, now));
            return self.decision(subset, Some(cookie.bucket), reason, set_cookie, None);
        }

        let identity = self
            .identity
            .as_deref()
            .and_then(|name| request.header_values(name).find(|v| !v.is_empty()));
        let (bucket, source) = match identity {
            Some(identity) => (identity_bucket(identity), BucketSource::Identity),
            None => (random_bucket(view.random), BucketSource::Random),
        };
        let subset = self.split.subset_of(bucket);
        let set_cookie = Some(self.set_cookie(bucket, subset, now));
        self.decision(
            subset,
            Some(bucket),
            Reason::Assigned { source },
            set_cookie,
            rejected,
        )
    }

    fn decision(
        &self,
        subset: usize,
        bucket: Option<u16>,
        reason: Reason,
        set_cookie: Option<String>,
        rejected: Option<Rejection>,
    ) -> Decision<'_> {
        Decision {
            subset,
            subset_name: self.subsets.get(subset).map_or("", |s| s.name.as_str()),
            bucket,
            reason,
            set_cookie,
            rejected,
        }
    }

    /// The whole `Set-Cookie` value assigning `bucket` to subset `subset`.
    pub fn set_cookie(&self, bucket: u16, subset: usize, now: u64) -> String {
        let name = self.subsets.get(subset).map_or("", |s| s.name.as_str());
        self.cookie
            .set_cookie(&self.cookie.codec.encode(bucket, name, now))
    }

    /// Checks one cookie value: format and signature, then age. A subset the
    /// configuration does not have is no reason to refuse it: the bucket,
    /// which the signature vouches for, is what places the user.
    fn check_cookie(&self, value: &str, now: u64) -> Result<ValidCookie, Rejection> {
        let (cookie, verified) = self.cookie.codec.decode(value)?;
        let subset = self.subset_index(cookie.subset);
        // A cookie from the future is not refused (see the module comment);
        // it cannot have expired either.
        if now >= cookie.issued.saturating_add(self.cookie.max_age) {
            return Err(Rejection::Expired);
        }
        Ok(ValidCookie {
            bucket: cookie.bucket,
            subset,
            issued: cookie.issued,
            verified,
        })
    }
}
