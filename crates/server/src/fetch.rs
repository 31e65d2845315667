//! Input images by URL, fetched so that a client cannot use the server to reach what it could
//! not reach itself (SSRF): http(s) only, no proxy from the environment, a byte limit and a time
//! limit, and every address the client connects to — the first host's and each redirect's —
//! checked by the resolver itself ([`GuardedResolver`]), so a redirect or a DNS answer cannot
//! lead to loopback, private, link-local (cloud metadata included) or otherwise special
//! addresses unless `--allow-private-urls`. Fetched bytes go to a small bounded cache.

use std::collections::VecDeque;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ureq::config::Config;
use ureq::http::Uri;
use ureq::unversioned::resolver::{DefaultResolver, ResolvedSocketAddrs, Resolver};
use ureq::unversioned::transport::{DefaultConnector, NextTimeout};

/// Redirects followed (each one's address checked again).
const MAX_REDIRECTS: u32 = 5;
/// Time for one whole fetch.
const FETCH_TIMEOUT: Duration = Duration::from_secs(30);
/// Cached URLs (at most so many, of at most so many bytes in all), and how long one stays.
const CACHE_ENTRIES: usize = 32;
const CACHE_BYTES: usize = 128 << 20;
const CACHE_TTL: Duration = Duration::from_secs(600);

/// Whether a client may make the server connect to `ip`: not loopback, private (RFC 1918, ULA),
/// link-local (169.254/16: cloud metadata; fe80::/10), shared (100.64/10), unspecified,
/// broadcast, multicast, documentation, benchmarking or reserved; IPv4 inside IPv6 (mapped,
/// NAT64, 6to4) is judged as the IPv4 address.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => is_public_v6(v6),
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let o = ip.octets();
    !(ip.is_private()
        || ip.is_loopback()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || o[0] == 0
        || (o[0] == 100 && (o[1] & 0xc0) == 64)
        || (o[0] == 192 && o[1] == 0 && o[2] == 0)
        || (o[0] == 198 && (o[1] & 0xfe) == 18)
        || o[0] >= 240)
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return is_public_v4(v4);
    }
    let s = ip.segments();
    let embedded_v4 =
        |hi: u16, lo: u16| Ipv4Addr::new((hi >> 8) as u8, hi as u8, (lo >> 8) as u8, lo as u8);
    if s[0] == 0x64 && s[1] == 0xff9b {
        return is_public_v4(embedded_v4(s[6], s[7]));
    }
    if s[0] == 0x2002 {
        return is_public_v4(embedded_v4(s[1], s[2]));
    }
    !(ip.is_loopback()
        || ip.is_unspecified()
        || ip.is_multicast()
        || (s[0] & 0xfe00) == 0xfc00
        || (s[0] & 0xffc0) == 0xfe80
        || (s[0] & 0xffc0) == 0xfec0
        || (s[0] == 0x2001 && s[1] == 0x0db8)
        || s[0] == 0)
}

/// The system resolver, keeping only the addresses a client may reach ([`is_public`]).
#[derive(Debug, Default)]
pub struct GuardedResolver {
    inner: DefaultResolver,
    allow_private: bool,
}

impl Resolver for GuardedResolver {
    fn resolve(
        &self,
        uri: &Uri,
        config: &Config,
        timeout: NextTimeout,
    ) -> Result<ResolvedSocketAddrs, ureq::Error> {
        let all = self.inner.resolve(uri, config, timeout)?;
        if self.allow_private {
            return Ok(all);
        }
        let mut kept = self.empty();
        for a in all.iter().filter(|a| is_public(a.ip())) {
            kept.push(*a);
        }
        if kept.is_empty() {
            let host = uri.host().unwrap_or("?");
            return Err(ureq::Error::Io(std::io::Error::new(
                std::io::ErrorKind::PermissionDenied,
                format!(
                    "{host} is a loopback, private, link-local or reserved address, which the \
                     server does not fetch (start it with --allow-private-urls to allow it)"
                ),
            )));
        }
        Ok(kept)
    }
}

/// A fetched URL: the URL, when, the bytes.
type Cached = (String, Instant, Arc<Vec<u8>>);

/// Fetches input URLs under the rules above, through a bounded cache.
pub struct Fetcher {
    agent: ureq::Agent,
    max_bytes: u64,
    cache: Mutex<VecDeque<Cached>>,
}

impl Fetcher {
    /// `max_bytes`: the largest body accepted.
    pub fn new(allow_private: bool, max_bytes: u64) -> Self {
        let config = ureq::Agent::config_builder()
            .timeout_global(Some(FETCH_TIMEOUT))
            .max_redirects(MAX_REDIRECTS)
            .proxy(None)
            .https_only(false)
            .user_agent("qwen-image-rs server")
            .build();
        let resolver = GuardedResolver {
            inner: DefaultResolver::default(),
            allow_private,
        };
        Self {
            agent: ureq::Agent::with_parts(config, DefaultConnector::default(), resolver),
            max_bytes,
            cache: Mutex::new(VecDeque::new()),
        }
    }

    /// The bytes at `url` (blocking). Errors say why, for the client.
    pub fn fetch(&self, url: &str) -> Result<Arc<Vec<u8>>, String> {
        let lower = url.trim_start().to_ascii_lowercase();
        if !(lower.starts_with("http://") || lower.starts_with("https://")) {
            return Err("only http(s) URLs are fetched".into());
        }
        if let Some(hit) = self.cached(url) {
            return Ok(hit);
        }
        let mut resp = self.agent.get(url).call().map_err(|e| match e {
            ureq::Error::StatusCode(s) => format!("the server answered HTTP {s}"),
            ureq::Error::TooManyRedirects => format!("more than {MAX_REDIRECTS} redirects"),
            e => e.to_string(),
        })?;
        let bytes = resp
            .body_mut()
            .with_config()
            .limit(self.max_bytes)
            .read_to_vec()
            .map_err(|e| match e {
                ureq::Error::BodyExceedsLimit(_) => {
                    format!(
                        "the image is larger than the limit of {} bytes",
                        self.max_bytes
                    )
                }
                e => e.to_string(),
            })?;
        let bytes = Arc::new(bytes);
        self.remember(url, bytes.clone());
        Ok(bytes)
    }

    fn cached(&self, url: &str) -> Option<Arc<Vec<u8>>> {
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        cache.retain(|(_, at, _)| at.elapsed() < CACHE_TTL);
        cache
            .iter()
            .find(|(u, ..)| u == url)
            .map(|(.., b)| b.clone())
    }

    fn remember(&self, url: &str, bytes: Arc<Vec<u8>>) {
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        cache.retain(|(u, ..)| u != url);
        cache.push_back((url.to_string(), Instant::now(), bytes));
        let total = |c: &VecDeque<Cached>| -> usize { c.iter().map(|(.., b)| b.len()).sum() };
        while cache.len() > CACHE_ENTRIES || (cache.len() > 1 && total(&cache) > CACHE_BYTES) {
            cache.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn special_addresses_are_refused() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.100.100.200",
            "0.0.0.0",
            "255.255.255.255",
            "224.0.0.1",
            "::1",
            "::",
            "fd00:ec2::254",
            "fe80::1",
            "::ffff:127.0.0.1",
            "64:ff9b::a9fe:a9fe",
            "2002:c0a8:0101::1",
        ] {
            assert!(!is_public(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["93.184.215.14", "8.8.8.8", "2606:4700::1111"] {
            assert!(is_public(ip.parse().unwrap()), "{ip}");
        }
    }

    #[test]
    fn only_http_urls_and_no_private_hosts() {
        let f = Fetcher::new(false, 1 << 20);
        assert!(
            f.fetch("file:///etc/passwd")
                .unwrap_err()
                .contains("http(s)")
        );
        assert!(
            f.fetch("ftp://example.com/x.png")
                .unwrap_err()
                .contains("http(s)")
        );
        let e = f.fetch("http://127.0.0.1:9/x.png").unwrap_err();
        assert!(e.contains("--allow-private-urls"), "{e}");
        let e = f.fetch("http://[::1]:9/x.png").unwrap_err();
        assert!(e.contains("--allow-private-urls"), "{e}");
    }
}
