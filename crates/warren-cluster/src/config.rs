//! A clustered node's identity and its seeds.
//!
//! Node ids are derived from node names, so every node computes the same id
//! for `n2` without asking it: the 64-bit FNV-1a hash of the name's bytes.
//! FNV-1a is fixed by its definition (no per-process seed, unlike std's
//! hasher), so ids are stable across restarts, builds and machines. Two
//! names hashing to the same id are refused at startup.

use std::collections::BTreeMap;

/// One seed node: `name@host:port`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seed {
    pub name: String,
    pub addr: String,
}

#[derive(Debug, Clone)]
pub struct ClusterConfig {
    /// This node's name (`n1`).
    pub node_name: String,
    /// The address other nodes reach this node's cluster port on
    /// (`127.0.0.1:25672`).
    pub advertise: String,
    /// The address the cluster listener binds.
    pub bind: String,
    /// The other nodes that form the cluster on first start.
    pub seeds: Vec<Seed>,
    /// Where the metadata group's log and snapshot live.
    pub data_dir: std::path::PathBuf,
    /// The shared secret every link proves (see [`crate::auth`]).
    pub cookie: crate::auth::Cookie,
    /// Inter-node TLS (`--cluster-tls`): the node's certificate both ways.
    pub tls: Option<std::sync::Arc<warren_tls::PeerTls>>,
}

/// FNV-1a, 64 bit.
pub fn node_id(name: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in name.as_bytes() {
        h ^= *b as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// Parse `n2@127.0.0.1:25673,n3@127.0.0.1:25674`.
pub fn parse_seeds(s: &str) -> Result<Vec<Seed>, String> {
    let mut out = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (name, addr) = part
            .split_once('@')
            .ok_or_else(|| format!("seed node '{part}' is not NAME@HOST:PORT"))?;
        if name.is_empty() || addr.rsplit_once(':').is_none() {
            return Err(format!("seed node '{part}' is not NAME@HOST:PORT"));
        }
        out.push(Seed {
            name: name.to_string(),
            addr: addr.to_string(),
        });
    }
    Ok(out)
}

impl ClusterConfig {
    /// Every known member, this node included: id → (name, address). Refuses
    /// duplicate names and id collisions.
    pub fn members(&self) -> Result<BTreeMap<u64, (String, String)>, String> {
        let mut m = BTreeMap::new();
        let me = std::iter::once(Seed {
            name: self.node_name.clone(),
            addr: self.advertise.clone(),
        });
        for s in me.chain(self.seeds.iter().cloned()) {
            let id = node_id(&s.name);
            if let Some((other, _)) = m.get(&id) {
                if *other == s.name {
                    continue;
                }
                return Err(format!("node names '{other}' and '{}' collide", s.name));
            }
            m.insert(id, (s.name, s.addr));
        }
        Ok(m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_stable_and_distinct() {
        assert_eq!(node_id("n1"), node_id("n1"));
        assert_ne!(node_id("n1"), node_id("n2"));
        // Fixed by the FNV-1a definition: a change here renumbers clusters.
        assert_eq!(node_id(""), 0xcbf2_9ce4_8422_2325);
    }

    #[test]
    fn seeds_parse() {
        let s = parse_seeds("n2@127.0.0.1:1, n3@h:2").unwrap();
        assert_eq!(s.len(), 2);
        assert_eq!(s[1].name, "n3");
        assert_eq!(s[1].addr, "h:2");
        assert!(parse_seeds("n2").is_err());
        assert!(parse_seeds("n2@host").is_err());
        assert!(parse_seeds("").unwrap().is_empty());
    }
}
