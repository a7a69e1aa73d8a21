//! Which fetcher polls which host: rendezvous (highest-random-weight) hashing over the live
//! fetchers. Each fetcher computes the same answer from the same member list with no
//! coordinator, a joining fetcher takes about `1/n` of the hosts (all from the others, none
//! moved between them), and a leaving one's hosts spread over the rest. Whole hosts are
//! assigned, not single feeds, so a host's politeness limits (`poll.per_host`, `host_gap`) hold
//! across the cluster as they do in one process: one fetcher polls all of a host's feeds.

/// The weight of `member` for `host`; the member with the highest weight owns the host.
pub fn weight(host: &str, member: &str) -> u64 {
    let mut key = Vec::with_capacity(host.len() + member.len() + 1);
    key.extend_from_slice(host.as_bytes());
    key.push(0);
    key.extend_from_slice(member.as_bytes());
    xxhash_rust::xxh3::xxh3_64_with_seed(&key, 0x6173_7369_676e)
}

/// The member that owns `host` (ties, never expected with 64-bit weights, go to the smallest
/// id), or `None` when there is no member.
pub fn owner<'m>(host: &str, members: &'m [String]) -> Option<&'m str> {
    members
        .iter()
        .max_by(|a, b| weight(host, a).cmp(&weight(host, b)).then_with(|| b.cmp(a)))
        .map(String::as_str)
}

/// The key of a host's lease in the leases bucket: a hash, because bucket keys may not hold
/// the `:` of a port (and a collision only makes two hosts share one lease).
pub fn lease_key(host: &str) -> String {
    format!(
        "host.{:016x}",
        xxhash_rust::xxh3::xxh3_64_with_seed(host.as_bytes(), 0x006c_6561_7365)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn members(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("fetcher-{i}")).collect()
    }

    fn hosts() -> Vec<String> {
        (0..3000).map(|i| format!("news{i}.example:8080")).collect()
    }

    #[test]
    fn every_host_has_one_owner_and_shares_are_even() {
        let m = members(4);
        let mut counts = [0usize; 4];
        for h in hosts() {
            let o = owner(&h, &m).unwrap();
            counts[m.iter().position(|x| x == o).unwrap()] += 1;
        }
        // 750 each on average; a fair split stays well within 15%.
        for c in counts {
            assert!((640..=860).contains(&c), "{counts:?}");
        }
        assert_eq!(owner("a", &[]), None);
    }

    #[test]
    fn a_joining_member_only_takes_hosts_and_a_leaving_one_only_gives_its_own() {
        let before = members(3);
        let after = members(4);
        let mut moved = 0;
        for h in hosts() {
            let (a, b) = (owner(&h, &before).unwrap(), owner(&h, &after).unwrap());
            if a != b {
                assert_eq!(b, "fetcher-3", "{h} moved between old members");
                moved += 1;
            }
            // The reverse: fetcher-3 leaves, and only its hosts move.
            if b != "fetcher-3" {
                assert_eq!(a, b);
            }
        }
        // About a quarter of the hosts go to the new member.
        assert!((600..=900).contains(&moved), "{moved}");
    }

    #[test]
    fn the_answer_does_not_depend_on_the_order_of_the_members() {
        let mut m = members(5);
        let first: Vec<String> = hosts()
            .iter()
            .map(|h| owner(h, &m).unwrap().to_string())
            .collect();
        m.reverse();
        let again: Vec<String> = hosts()
            .iter()
            .map(|h| owner(h, &m).unwrap().to_string())
            .collect();
        assert_eq!(first, again);
    }

    #[test]
    fn lease_keys_are_valid_bucket_keys() {
        let k = lease_key("127.0.0.2:8080");
        assert!(
            k.chars().all(|c| c.is_ascii_alphanumeric() || c == '.'),
            "{k}"
        );
        assert_ne!(k, lease_key("127.0.0.1:8080"));
    }
}
