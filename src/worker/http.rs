//! The worker's HTTPS GET: ureq over rustls (aws-lc-rs), the system's CA store or the
//! superuser's CA file, no redirects, no proxy, a deadline, a body limit. What is fetched and
//! how it is judged is `oidc_authz_core::discovery`.

use oidc_authz_core::discovery::{check_url, FetchError, MAX_BODY_BYTES};
use std::sync::Arc;
use std::time::Instant;
use ureq::tls::{Certificate, PemItem, RootCerts, TlsConfig, TlsProvider};

/// How the worker fetches (from the `oidc.fetch_*` settings).
pub struct Client {
    agent_tls: TlsConfig,
    pub insecure_loopback: bool,
}

fn fail<T>(msg: impl Into<String>) -> Result<T, FetchError> {
    Err(FetchError(msg.into()))
}

impl Client {
    /// Trusts the certificates of `ca_file` (PEM) when given, else the system's store.
    pub fn new(ca_file: Option<&str>, insecure_loopback: bool) -> Result<Client, FetchError> {
        let roots: Vec<Certificate<'static>> = match ca_file {
            Some(path) => {
                let pem = std::fs::read(path)
                    .or_else(|e| fail(format!("cannot read oidc.fetch_ca_file: {e}")))?;
                let certs: Vec<_> = ureq::tls::parse_pem(&pem)
                    .filter_map(|item| match item {
                        Ok(PemItem::Certificate(c)) => Some(c),
                        _ => None,
                    })
                    .collect();
                if certs.is_empty() {
                    return fail("oidc.fetch_ca_file holds no PEM certificate");
                }
                certs
            }
            None => {
                let found = rustls_native_certs::load_native_certs();
                let certs: Vec<_> = found
                    .certs
                    .iter()
                    .map(|der| Certificate::from_der(der.as_ref()).to_owned())
                    .collect();
                if certs.is_empty() {
                    return fail("the system's CA store holds no certificate");
                }
                certs
            }
        };
        let tls = TlsConfig::builder()
            .provider(TlsProvider::Rustls)
            .unversioned_rustls_crypto_provider(Arc::new(
                rustls::crypto::aws_lc_rs::default_provider(),
            ))
            .root_certs(RootCerts::Specific(Arc::new(roots)))
            .build();
        Ok(Client {
            agent_tls: tls,
            insecure_loopback,
        })
    }

    /// GETs `url` before `deadline`: the body (at most `MAX_BODY_BYTES`) and the response's
    /// `Cache-Control`. Anything but `200` (a redirect included) is an error.
    pub fn get(
        &self,
        url: &str,
        deadline: Instant,
    ) -> Result<(Vec<u8>, Option<String>), FetchError> {
        check_url(url, self.insecure_loopback)?;
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return fail("timed out (oidc.fetch_timeout)");
        }
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(left))
            .max_redirects(0)
            .http_status_as_error(false)
            .proxy(None)
            .user_agent("pg_oidc_authz")
            .tls_config(self.agent_tls.clone())
            .build()
            .into();
        // ureq resolves names on a thread of its own; with signals blocked here, that thread
        // (and any other the call starts) inherits the mask, so that the postmaster's SIGHUP
        // or SIGTERM is never handled off the main thread (pgrx aborts the process then).
        let _blocked = SignalsBlocked::new();
        let mut resp = agent
            .get(url)
            .header("Accept", "application/json")
            .call()
            .or_else(|e| fail(format!("GET {url}: {}", describe(&e))))?;
        let status = resp.status().as_u16();
        if status != 200 {
            let why = if (300..400).contains(&status) {
                " (redirects are not followed)"
            } else {
                ""
            };
            return fail(format!("GET {url}: HTTP {status}{why}"));
        }
        let cache_control = resp
            .headers()
            .get("cache-control")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let body = resp
            .body_mut()
            .with_config()
            .limit(MAX_BODY_BYTES as u64)
            .read_to_vec()
            .or_else(|e| match e {
                ureq::Error::BodyExceedsLimit(_) => fail(format!(
                    "GET {url}: the body is over {MAX_BODY_BYTES} bytes"
                )),
                e => fail(format!("GET {url}: {}", describe(&e))),
            })?;
        Ok((body, cache_control))
    }
}

/// Blocks every signal on this thread until dropped. Signals that arrive meanwhile stay
/// pending and are handled, on this thread, once the mask is restored: at most the fetch's
/// deadline (`oidc.fetch_timeout`) later.
struct SignalsBlocked {
    previous: libc::sigset_t,
}

impl SignalsBlocked {
    fn new() -> SignalsBlocked {
        // SAFETY: sigset_t is plain data; sigfillset and pthread_sigmask only write into the
        // sets passed and this thread's mask.
        unsafe {
            let mut all: libc::sigset_t = std::mem::zeroed();
            let mut previous: libc::sigset_t = std::mem::zeroed();
            libc::sigfillset(&mut all);
            libc::pthread_sigmask(libc::SIG_BLOCK, &all, &mut previous);
            SignalsBlocked { previous }
        }
    }
}

impl Drop for SignalsBlocked {
    fn drop(&mut self) {
        // SAFETY: restores the mask saved by `new` on the same thread.
        unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &self.previous, std::ptr::null_mut()) };
    }
}

fn describe(e: &ureq::Error) -> String {
    match e {
        ureq::Error::Timeout(_) => "timed out (oidc.fetch_timeout)".into(),
        other => other.to_string(),
    }
}
