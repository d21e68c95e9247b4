//! Which endpoint a call goes to: the orders the selection policies give, as pure
//! functions of the membership, so they can be checked without sockets.
//!
//! Facts taken from TarsCpp 3.0.22 (`EndpointManager`, `TC_ConsistentHashNew`), so a
//! TarsCpp client and a tarsfork client with the same key pick the same endpoint:
//!
//! - Endpoints are ordered by `"<type>:<host>:<port>"` compared as strings (type 1 =
//!   tcp), TarsCpp's `EndpointInfo::cmpDesc`.
//! - Hash: `key % n` over every endpoint the registry listed (active and inactive, so
//!   the choice does not move while one is briefly inactive); if that one is not
//!   active, `key % m` over the m active ones, dropping each one that cannot be used
//!   and hashing again over the rest. The key is used as a signed 64-bit number, as
//!   TarsCpp's `(int64_t)hashCode % size` with its fix-up of a negative remainder.
//! - Consistent hash: a ring of MD5 points. Each active endpoint contributes
//!   `max(1, w / 4)` virtual names `"<name>_<j>"` (w = its static weight in weighted
//!   mode, else 100), each name 4 points: the MD5 digest read as four little-endian
//!   32-bit numbers. A key's point is its low 32 bits; it goes to the first ring point
//!   above it, wrapping to the first point (TarsCpp reads past the end of its ring when
//!   the key equals the last point; here that wraps too). `<name>` is the host, as in
//!   TarsCpp; TarsCpp keeps only one endpoint per host on its ring, so where hosts
//!   repeat (several ports on one machine) tarsfork names those `host:port` instead.
//!   An endpoint that cannot be used is skipped for the next one clockwise, which is
//!   what TarsCpp's rebuilding of the ring without it gives.
//! - Weighted round robin (when every active endpoint has a static weight, TarsCpp's
//!   `weightType` 1): a smooth weighted sequence (each step, every endpoint's credit
//!   grows by its weight and the richest is chosen and pays the total), as TarsCpp's
//!   `dispatchEndpointCache` builds; an endpoint with weight 0 gets no calls.
//! - Round robin otherwise, over the active endpoints in order.

use super::md5;

/// How a call picks its endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Route {
    /// Round robin over the active endpoints (weighted when the registry gives
    /// weights to all of them).
    #[default]
    RoundRobin,
    /// The same key goes to the same endpoint while the membership is unchanged
    /// (TarsCpp's `tars_hash`).
    Hash(u64),
    /// The same key goes to the same endpoint, and removing one of N endpoints moves
    /// only about 1/N of the keys (TarsCpp's `tars_consistent_hash`).
    ConsistentHash(u64),
}

/// TarsCpp's `((int64_t)key % n)`, with a negative remainder taken modulo `n` again
/// as its unsigned fix-up does.
pub(crate) fn tars_mod(key: u64, n: usize) -> usize {
    if n == 0 {
        return 0;
    }
    let r = (key as i64) % (n as i64);
    if r >= 0 {
        r as usize
    } else {
        ((r as u64) % n as u64) as usize
    }
}

/// The hash order: indexes into `all` (every registered endpoint, in order), given
/// which are active. The first choice, then the fall-backs TarsCpp would take.
pub(crate) fn hash_order(key: u64, active_flags: &[bool]) -> Vec<usize> {
    let mut order = Vec::new();
    let first = tars_mod(key, active_flags.len());
    if active_flags.get(first) == Some(&true) {
        order.push(first);
    }
    let mut rest: Vec<usize> = (0..active_flags.len())
        .filter(|i| active_flags[*i])
        .collect();
    while !rest.is_empty() {
        let i = rest.remove(tars_mod(key, rest.len()));
        if !order.contains(&i) {
            order.push(i);
        }
    }
    order
}

/// A consistent-hash ring: sorted (point, member) pairs.
#[derive(Debug, Clone, Default)]
pub(crate) struct Ring {
    points: Vec<(u32, usize)>,
}

impl Ring {
    /// A ring over `members`: (member id, ring name, weight or 100).
    pub(crate) fn build<'a>(members: impl IntoIterator<Item = (usize, &'a str, u32)>) -> Ring {
        let mut points = Vec::new();
        for (id, name, weight) in members {
            if weight == 0 {
                continue;
            }
            let virtual_nodes = (weight / 4).max(1);
            for j in 0..virtual_nodes {
                let d = md5::digest(format!("{name}_{j}").as_bytes());
                for q in d.chunks_exact(4) {
                    points.push((u32::from_le_bytes([q[0], q[1], q[2], q[3]]), id));
                }
            }
        }
        points.sort_by_key(|p| p.0);
        Ring { points }
    }

    /// Members clockwise from `key`'s point, each once.
    pub(crate) fn order(&self, key: u64) -> Vec<usize> {
        let Some(first) = self.points.first() else {
            return Vec::new();
        };
        let h = key as u32;
        let start = if h <= first.0 {
            0
        } else {
            match self.points.partition_point(|p| p.0 <= h) {
                n if n == self.points.len() => 0,
                n => n,
            }
        };
        let mut order = Vec::new();
        let len = self.points.len();
        for k in 0..len {
            let member = self.points[(start + k) % len].1;
            if !order.contains(&member) {
                order.push(member);
            }
        }
        order
    }
}

/// The round-robin cycle over members with these weights: each member once when
/// `weights` is `None`, else a smooth weighted sequence (weights divided by their
/// greatest common divisor, so the cycle is as short as the ratios allow).
pub(crate) fn cycle(members: &[usize], weights: Option<&[u32]>) -> Vec<usize> {
    let Some(weights) = weights else {
        return members.to_vec();
    };
    let divisor = weights.iter().copied().filter(|w| *w > 0).fold(0, gcd);
    if divisor == 0 {
        return Vec::new();
    }
    let w: Vec<i64> = weights.iter().map(|x| i64::from(x / divisor)).collect();
    let total: i64 = w.iter().sum();
    let mut credit = vec![0i64; w.len()];
    let mut seq = Vec::with_capacity(usize::try_from(total).unwrap_or(0));
    for _ in 0..total {
        let mut best = 0;
        for i in 0..w.len() {
            credit[i] += w[i];
            if credit[i] > credit[best] {
                best = i;
            }
        }
        credit[best] -= total;
        seq.push(members[best]);
    }
    seq
}

fn gcd(a: u32, b: u32) -> u32 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tars_mod_matches_tarscpps_signed_arithmetic() {
        assert_eq!(tars_mod(7, 3), 1);
        // -1 as int64 % 3 = -1; as size_t that is 2^64 - 1, and (2^64 - 1) % 3 = 0.
        assert_eq!(tars_mod(u64::MAX, 3), 0);
        // -2 % 5 = -2 → (2^64 - 2) % 5 = 4.
        assert_eq!(tars_mod(u64::MAX - 1, 5), 4);
    }

    #[test]
    fn hash_falls_back_over_the_active_ones() {
        // 4 registered, #1 inactive; key 5: 5 % 4 = 1 is inactive → 5 % 3 over
        // [0, 2, 3] = 2 → member 3, then 5 % 2 over [0, 2] = 1 → 2, then 0.
        assert_eq!(hash_order(5, &[true, false, true, true]), vec![3, 2, 0]);
        assert_eq!(hash_order(4, &[true, false, true, true]), vec![0, 2, 3]);
    }

    #[test]
    fn smooth_weighted_cycle_spreads_by_weight() {
        let seq = cycle(&[10, 20, 30], Some(&[5, 1, 1]));
        assert_eq!(seq, vec![10, 10, 20, 10, 30, 10, 10]);
        assert!(cycle(&[1, 2], Some(&[0, 0])).is_empty());
        assert_eq!(cycle(&[1, 2], Some(&[100, 0])), vec![1]);
    }

    #[test]
    fn ring_has_four_points_per_virtual_name_and_wraps() {
        let ring = Ring::build([(0, "10.0.0.1", 100), (1, "10.0.0.2", 8)]);
        assert_eq!(ring.points.len(), 25 * 4 + 2 * 4);
        // First point of "10.0.0.1_0": md5 bytes read little-endian.
        let d = md5::digest(b"10.0.0.1_0");
        let p = u32::from_le_bytes([d[0], d[1], d[2], d[3]]);
        let at = ring.points.iter().position(|x| *x == (p, 0)).unwrap();
        let next = ring.points[(at + 1) % ring.points.len()].1;
        let order = ring.order(u64::from(p));
        assert_eq!(
            order[0], next,
            "a point equal to a ring point goes to the next one"
        );
        let last = ring.points.last().unwrap();
        assert_eq!(ring.order(u64::from(last.0))[0], ring.points[0].1);
        assert_eq!(ring.order(0)[0], ring.points[0].1);
        assert_eq!(ring.order(7).len(), 2);
    }
}
