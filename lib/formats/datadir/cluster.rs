//! The new cluster's membership, as etcd computes it on restore
//! (docs/ETCD-RESTORE.md §2.1-2.2): initial-cluster parsing and checks, member and
//! cluster IDs (SHA-1), and the member JSON stored in the db and the WAL.

use std::collections::BTreeMap;

use sha1::{Digest, Sha1};

use crate::base::error::{Error, Result};

/// One member of the restored cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// etcd's member ID.
    pub id: u64,
    /// Member name (the pod name in Kubernetes).
    pub name: String,
    /// Peer URLs, sorted by their text.
    pub peer_urls: Vec<String>,
}

/// The whole new cluster, members ordered by ID ascending (etcd's order for raft
/// entries, the vote and the voters).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cluster {
    /// Members by ID ascending.
    pub members: Vec<Member>,
    /// The cluster ID.
    pub cluster_id: u64,
    /// The member being restored.
    pub local: Member,
}

impl Cluster {
    /// Parses `initial_cluster` (`name=url,name=url,…`) and checks it the way
    /// `etcdutl snapshot restore` does: `name` present, no URL twice, and
    /// `advertised` (the member's `--initial-advertise-peer-urls`, comma-separated)
    /// equal to the URLs given for `name`. Strings are compared; no DNS is used.
    pub fn new(
        name: &str,
        initial_cluster: &str,
        advertised: &str,
        token: &str,
    ) -> Result<Cluster> {
        let mut by_name: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let mut seen = std::collections::HashSet::new();
        for item in initial_cluster
            .split(',')
            .map(str::trim)
            .filter(|i| !i.is_empty())
        {
            let (n, u) = item.split_once('=').ok_or_else(|| {
                Error::Usage(format!("--initial-cluster item {item:?} is not name=url"))
            })?;
            let url = parse_peer_url(u.trim(), "--initial-cluster")?;
            if !seen.insert(url.clone()) {
                return Err(Error::Usage(format!(
                    "--initial-cluster has {url} more than once"
                )));
            }
            by_name.entry(n.trim().to_string()).or_default().push(url);
        }
        if by_name.is_empty() {
            return Err(Error::Usage("--initial-cluster is empty".into()));
        }
        let mut members: Vec<Member> = by_name
            .into_iter()
            .map(|(name, mut peer_urls)| {
                peer_urls.sort();
                Member {
                    id: member_id(&peer_urls, token),
                    name,
                    peer_urls,
                }
            })
            .collect();
        members.sort_by_key(|m| m.id);
        let local = members
            .iter()
            .find(|m| m.name == name)
            .cloned()
            .ok_or_else(|| {
                Error::Usage(format!("member name {name:?} is not in --initial-cluster"))
            })?;
        let mut adv = advertised
            .split(',')
            .map(str::trim)
            .filter(|u| !u.is_empty())
            .map(|u| parse_peer_url(u, "--initial-advertise-peer-urls"))
            .collect::<Result<Vec<_>>>()?;
        adv.sort();
        if adv != local.peer_urls {
            return Err(Error::Usage(format!(
                "--initial-advertise-peer-urls {adv:?} differ from the --initial-cluster URLs of {name:?}: {:?}",
                local.peer_urls
            )));
        }
        let ids: Vec<u64> = members.iter().map(|m| m.id).collect();
        Ok(Cluster {
            cluster_id: cluster_id(&ids),
            members,
            local,
        })
    }
}

/// Checks a peer URL like etcd's `types.NewURLs`: scheme http, https, unix or
/// unixs; `host:port`; no path, query, fragment or user. Returns Go's text form
/// (scheme lower-cased, the rest as given).
pub fn parse_peer_url(raw: &str, flag: &str) -> Result<String> {
    let bad = |why: &str| Error::Usage(format!("{flag}: {raw:?} {why}"));
    let (scheme, rest) = raw.split_once("://").ok_or_else(|| bad("has no scheme"))?;
    let scheme = scheme.to_ascii_lowercase();
    if !matches!(scheme.as_str(), "http" | "https" | "unix" | "unixs") {
        return Err(bad("must use http, https, unix or unixs"));
    }
    if rest.contains(['/', '?', '#']) {
        return Err(bad("must not contain a path"));
    }
    if rest.contains('@') {
        return Err(bad("must not contain user information"));
    }
    let port = if let Some(v6) = rest.strip_prefix('[') {
        v6.split_once("]:").map(|(_, p)| p)
    } else {
        rest.rsplit_once(':')
            .filter(|(h, _)| !h.contains(':'))
            .map(|(_, p)| p)
    };
    match port {
        Some(p) if !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()) => {}
        _ => return Err(bad("does not have the form host:port")),
    }
    Ok(format!("{scheme}://{rest}"))
}

/// `BE_u64(SHA1(sorted peer URLs ‖ token)[0..8])`.
pub fn member_id(sorted_peer_urls: &[String], token: &str) -> u64 {
    let mut h = Sha1::new();
    for u in sorted_peer_urls {
        h.update(u.as_bytes());
    }
    h.update(token.as_bytes());
    first_u64(&h.finalize())
}

/// `BE_u64(SHA1(BE_u64(id) for ids ascending)[0..8])`.
pub fn cluster_id(ids: &[u64]) -> u64 {
    let mut sorted = ids.to_vec();
    sorted.sort_unstable();
    let mut h = Sha1::new();
    for id in sorted {
        h.update(id.to_be_bytes());
    }
    first_u64(&h.finalize())
}

fn first_u64(digest: &[u8]) -> u64 {
    u64::from_be_bytes(digest[..8].try_into().expect("SHA-1 has 20 bytes"))
}

/// `types.ID.String()`: lowercase hex without leading zeros.
pub fn id_hex(id: u64) -> String {
    format!("{id:x}")
}

/// The member as etcd's `encoding/json` writes it:
/// `{"id":…,"peerURLs":[…],"name":"…"}`.
pub fn member_json(m: &Member) -> String {
    let urls: Vec<String> = m.peer_urls.iter().map(|u| go_string(u)).collect();
    format!(
        "{{\"id\":{},\"peerURLs\":[{}],\"name\":{}}}",
        m.id,
        urls.join(","),
        go_string(&m.name)
    )
}

/// `{"peerURLs":[…]}`: the v2 store's raftAttributes value.
pub fn raft_attributes_json(m: &Member) -> String {
    let urls: Vec<String> = m.peer_urls.iter().map(|u| go_string(u)).collect();
    format!("{{\"peerURLs\":[{}]}}", urls.join(","))
}

/// A JSON string literal as Go's `encoding/json` (before Go 1.22) writes it:
/// HTML-safe (`<`, `>`, `&` escaped), `\n` `\r` `\t` short, other control
/// characters and U+2028/U+2029 as `\uXXXX`.
pub fn go_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => {
                out.push_str(&format!("\\u{:04x}", c as u32))
            }
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_match_the_spec_examples() {
        let urls = vec!["http://127.0.0.1:23793".to_string()];
        assert_eq!(member_id(&urls, "restore-token"), 0xd9f7776f2ba501d6);
        assert_eq!(id_hex(0x05e4933eeef1c09e), "5e4933eeef1c09e");
    }

    #[test]
    fn members_are_ordered_by_id_and_checked() {
        let ic = "m0=http://127.0.0.1:2380,m1=http://127.0.0.1:2381,m2=http://127.0.0.1:2382";
        let c = Cluster::new("m1", ic, "http://127.0.0.1:2381", "tok").unwrap();
        assert_eq!(c.members.len(), 3);
        assert!(c.members.windows(2).all(|w| w[0].id < w[1].id));
        assert_eq!(c.local.name, "m1");
        let ids: Vec<u64> = c.members.iter().map(|m| m.id).collect();
        assert_eq!(c.cluster_id, cluster_id(&ids));
    }

    #[test]
    fn several_urls_under_one_name_are_grouped_and_sorted() {
        let ic = "etcd-0=https://e0:2381,etcd-0=http://e0:2380,etcd-1=https://e1:2381";
        let c = Cluster::new("etcd-0", ic, "https://e0:2381,http://e0:2380", "t").unwrap();
        assert_eq!(c.local.peer_urls, ["http://e0:2380", "https://e0:2381"]);
    }

    #[test]
    fn refusals_name_the_problem() {
        let ic = "m0=http://127.0.0.1:2380";
        let cases = [
            (
                "mX",
                ic,
                "http://127.0.0.1:2380",
                "not in --initial-cluster",
            ),
            (
                "m0",
                "m0=http://a:1,m1=http://a:1",
                "http://a:1",
                "more than once",
            ),
            ("m0", ic, "http://127.0.0.1:9999", "differ"),
            ("m0", "m0=ftp://a:1", "ftp://a:1", "http, https"),
            ("m0", "m0=http://a:1/path", "http://a:1/path", "path"),
            ("m0", "m0=http://a", "http://a", "host:port"),
            ("m0", "m0", "http://a:1", "name=url"),
        ];
        for (name, ic, adv, want) in cases {
            let err = Cluster::new(name, ic, adv, "t").unwrap_err();
            assert_eq!(err.exit_code(), 64, "{ic}");
            assert!(err.to_string().contains(want), "{err} should say {want}");
        }
    }

    #[test]
    fn member_json_is_gos() {
        let m = Member {
            id: 424626163385745566,
            name: "m2".into(),
            peer_urls: vec!["http://127.0.0.1:23797".into()],
        };
        assert_eq!(
            member_json(&m),
            r#"{"id":424626163385745566,"peerURLs":["http://127.0.0.1:23797"],"name":"m2"}"#
        );
        assert_eq!(
            go_string("a<b>&\"\\\n\u{1}"),
            r#""a\u003cb\u003e\u0026\"\\\n\u0001""#
        );
    }

    #[test]
    fn ipv6_urls() {
        assert_eq!(
            parse_peer_url("http://[::1]:2380", "f").unwrap(),
            "http://[::1]:2380"
        );
        assert!(parse_peer_url("http://[::1]", "f").is_err());
        assert_eq!(
            parse_peer_url("HTTPS://Host:1", "f").unwrap(),
            "https://Host:1"
        );
    }
}
