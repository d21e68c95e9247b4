//! Application properties for tarsproperty (`PropertyF.reportPropMsg`), aggregated
//! across every process of the server in shared memory.
//!
//! A [`Property`] is a name and a list of [`Policy`]s, registered once (normally in the
//! master before forking, or in any process later); any process then calls
//! [`Property::report`], lock-free after its first report. Task worker 0 calls
//! [`PropTable::take_report`] every report interval.
//!
//! The values are formatted as TarsCpp's PropertyReport (servant/servant/PropertyReport.h
//! and servant/libservant/PropertyReport.cpp) formats them, policy names included:
//! `Sum` the integer sum; `Avg` the sum divided by the count as a double printed with six
//! decimals and trailing zeros (and a bare point) removed (`TC_Common::tostr<double>`),
//! `"0"` when nothing was reported; `Count` the number of reports; `Distr` the sorted,
//! de-duplicated bounds as `bound|count` joined by `,`, a value counted under the first
//! bound greater than it (`std::upper_bound`) and dropped when no bound is; `Max`/`Min`
//! the extremes. Two differences, both on purpose: TarsCpp's `Min` is the least
//! *non-zero* value and its `Max` reads `-9999999` or 0 when nothing was reported; here
//! `Min` is the true minimum (0 is a value) and, in a period with no report, `Max` and
//! `Min` are left out of the body rather than invented. Every registered property is
//! sent every period (as TarsCpp does), so a quiet period reads Sum 0 / Count 0.

use std::path::Path;
use std::sync::Arc;

use tarsfork_tars::framework::tars::{StatPropInfo, StatPropMsgBody, StatPropMsgHead};

use super::aggregate::{Capacity, Result, Shape, Store, StoreError, Taken};

/// How a property's reports are combined over a period.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Policy {
    /// the sum of the values
    Sum,
    /// their mean
    Avg,
    /// the largest
    Max,
    /// the smallest
    Min,
    /// how many there were
    Count,
    /// how many fell under each bound (see the module doc)
    Distr(Vec<i64>),
}

/// Most `Distr` policies one property may have.
pub const MAX_DISTR: usize = 4;
/// Most bounds one `Distr` policy may have.
pub const MAX_BOUNDS: usize = 64;

const SUM: usize = 0;
const COUNT: usize = 1;
const DISTR0: usize = 2;
const BLOB_VERSION: u8 = 1;
const NAME: &str = "prop";

impl Policy {
    fn tag(&self) -> u8 {
        match self {
            Policy::Sum => 0,
            Policy::Avg => 1,
            Policy::Max => 2,
            Policy::Min => 3,
            Policy::Count => 4,
            Policy::Distr(_) => 5,
        }
    }

    /// The policy's name on the wire.
    pub fn name(&self) -> &'static str {
        match self {
            Policy::Sum => "Sum",
            Policy::Avg => "Avg",
            Policy::Max => "Max",
            Policy::Min => "Min",
            Policy::Count => "Count",
            Policy::Distr(_) => "Distr",
        }
    }
}

/// The properties table: create it in the master before forking.
#[derive(Debug, Clone)]
pub struct PropTable {
    store: Arc<Store>,
}

impl PropTable {
    /// Creates the table files `prop.{keys,sums,ext}` in `dir` (created if missing).
    pub fn create(dir: &Path, capacity: Capacity) -> Result<PropTable> {
        let counters = DISTR0 + MAX_DISTR * (MAX_BOUNDS + 1);
        Ok(PropTable {
            store: Arc::new(Store::create(dir, NAME, capacity, counters)?),
        })
    }

    /// Creates the table files in the directory open as `dir_fd` (at `dir`), each made
    /// relative to the descriptor (`O_EXCL | O_NOFOLLOW`).
    pub fn create_at(
        dir_fd: std::os::fd::BorrowedFd<'_>,
        dir: &Path,
        capacity: Capacity,
    ) -> Result<PropTable> {
        let counters = DISTR0 + MAX_DISTR * (MAX_BOUNDS + 1);
        Ok(PropTable {
            store: Arc::new(Store::create_at(dir_fd, dir, NAME, capacity, counters)?),
        })
    }

    /// Opens the table of a running server by its directory, read-write.
    pub fn open(dir: &Path) -> Result<PropTable> {
        Ok(PropTable {
            store: Arc::new(Store::open(dir, NAME)?),
        })
    }

    /// Opens the table read-only for inspection ([`PropTable::peek`]).
    pub fn open_readonly(dir: &Path) -> Result<PropTable> {
        Ok(PropTable {
            store: Arc::new(Store::open_readonly(dir, NAME)?),
        })
    }

    /// Takes every registered property's values for the period and resets them;
    /// reports made meanwhile are kept for the next take. Each head is `template`
    /// (module name, ip, set, version as the caller fills them) with the property's name.
    pub fn take_report(
        &self,
        template: &StatPropMsgHead,
    ) -> Result<Vec<(StatPropMsgHead, StatPropMsgBody)>> {
        Ok(format_all(self.store.take(true)?.taken, template))
    }

    /// The values accumulated and not taken yet, without taking them.
    pub fn peek(
        &self,
        template: &StatPropMsgHead,
    ) -> Result<Vec<(StatPropMsgHead, StatPropMsgBody)>> {
        Ok(format_all(self.store.peek(true)?, template))
    }

    /// Removes the table files (only the creating process may).
    pub fn unlink(&self) -> Result<()> {
        self.store.unlink()
    }
}

/// A registered property; clone it freely, report from any process.
#[derive(Debug, Clone)]
pub struct Property {
    store: Arc<Store>,
    blob: Vec<u8>,
    shape: Shape,
    /// each Distr policy's first counter and its bounds (sorted, unique)
    distrs: Vec<(usize, Vec<i64>)>,
}

impl Property {
    /// Registers property `name` with `policies` (order kept in reports; a name may be
    /// registered again with the same policies, e.g. by another process).
    pub fn new(table: &PropTable, name: &str, policies: &[Policy]) -> Result<Property> {
        let invalid = |what: String| StoreError::Invalid { what };
        if name.is_empty() || policies.is_empty() {
            return Err(invalid(format!(
                "property {name:?} needs a name and a policy"
            )));
        }
        let mut policies = policies.to_vec();
        let mut distrs = Vec::new();
        let mut next = DISTR0;
        for p in &mut policies {
            if let Policy::Distr(bounds) = p {
                bounds.sort_unstable();
                bounds.dedup();
                if bounds.is_empty() || bounds.len() > MAX_BOUNDS || distrs.len() == MAX_DISTR {
                    return Err(invalid(format!(
                        "property {name:?}: at most {MAX_DISTR} Distr policies of 1..={MAX_BOUNDS} bounds"
                    )));
                }
                distrs.push((next, bounds.clone()));
                next += bounds.len() + 1;
            }
        }
        let shape = Shape {
            counters: next,
            extremes: policies
                .iter()
                .any(|p| matches!(p, Policy::Max | Policy::Min)),
        };
        let blob = encode(name, &policies)
            .ok_or_else(|| invalid(format!("property name of {} bytes is too long", name.len())))?;
        table.store.register(&blob, shape)?;
        Ok(Property {
            store: Arc::clone(&table.store),
            blob,
            shape,
            distrs,
        })
    }

    /// Reports one value. Lock-free after this process's first report.
    pub fn report(&self, value: i64) -> Result<()> {
        let mut adds = [(0usize, 0i64); 2 + MAX_DISTR];
        adds[0] = (SUM, value);
        adds[1] = (COUNT, 1);
        let mut n = 2;
        for (first, bounds) in &self.distrs {
            // Values at or above the last bound are counted in the overflow cell that
            // follows the bounds' cells (kept, not sent: TarsCpp drops them).
            let idx = bounds.partition_point(|&b| b <= value);
            adds[n] = (first + idx, 1);
            n += 1;
        }
        let value = self.shape.extremes.then_some(value);
        self.store.record(
            self.shape,
            |buf| buf.extend_from_slice(&self.blob),
            &adds[..n],
            value,
        )
    }
}

fn encode(name: &str, policies: &[Policy]) -> Option<Vec<u8>> {
    let mut out = vec![BLOB_VERSION];
    out.extend_from_slice(&u16::try_from(name.len()).ok()?.to_le_bytes());
    out.extend_from_slice(name.as_bytes());
    out.push(u8::try_from(policies.len()).ok()?);
    for p in policies {
        out.push(p.tag());
        if let Policy::Distr(bounds) = p {
            out.push(u8::try_from(bounds.len()).ok()?);
            for b in bounds {
                out.extend_from_slice(&b.to_le_bytes());
            }
        }
    }
    Some(out)
}

/// Rebuilds name and policies from a blob; None if it is not one.
fn decode(blob: &[u8]) -> Option<(String, Vec<Policy>)> {
    let (&version, rest) = blob.split_first()?;
    if version != BLOB_VERSION {
        return None;
    }
    let (len, rest) = rest.split_first_chunk::<2>()?;
    let len = usize::from(u16::from_le_bytes(*len));
    let name = String::from_utf8_lossy(rest.get(..len)?).into_owned();
    let mut rest = rest.get(len..)?;
    let (&count, r) = rest.split_first()?;
    rest = r;
    let mut policies = Vec::with_capacity(usize::from(count));
    for _ in 0..count {
        let (&tag, r) = rest.split_first()?;
        rest = r;
        policies.push(match tag {
            0 => Policy::Sum,
            1 => Policy::Avg,
            2 => Policy::Max,
            3 => Policy::Min,
            4 => Policy::Count,
            5 => {
                let (&n, r) = rest.split_first()?;
                rest = r;
                let mut bounds = Vec::with_capacity(usize::from(n));
                for _ in 0..n {
                    let (b, r) = rest.split_first_chunk::<8>()?;
                    rest = r;
                    bounds.push(i64::from_le_bytes(*b));
                }
                Policy::Distr(bounds)
            }
            _ => return None,
        });
    }
    rest.is_empty().then_some((name, policies))
}

/// `TC_Common::tostr<double>`: six decimals, then trailing zeros (and a bare point) cut.
fn format_double(v: f64) -> String {
    let mut s = format!("{v:.6}");
    if s.contains('.') {
        let trimmed = s.trim_end_matches('0').trim_end_matches('.').len();
        s.truncate(trimmed);
    }
    s
}

fn format_all(
    taken: Vec<Taken>,
    template: &StatPropMsgHead,
) -> Vec<(StatPropMsgHead, StatPropMsgBody)> {
    let mut out = Vec::with_capacity(taken.len());
    for t in taken {
        let Some((name, policies)) = decode(&t.blob) else {
            continue;
        };
        let c = |i: usize| t.counters.get(i).copied().unwrap_or(0);
        let (sum, count) = (c(SUM), c(COUNT));
        let mut next = DISTR0;
        let mut v_info = Vec::with_capacity(policies.len());
        for p in &policies {
            let value = match p {
                Policy::Sum => sum.to_string(),
                Policy::Count => count.to_string(),
                Policy::Avg if count == 0 => "0".to_owned(),
                Policy::Avg => format_double(sum as f64 / count as f64),
                Policy::Max => match t.extremes {
                    Some((_, max)) => max.to_string(),
                    None => continue,
                },
                Policy::Min => match t.extremes {
                    Some((min, _)) => min.to_string(),
                    None => continue,
                },
                Policy::Distr(bounds) => {
                    let first = next;
                    next += bounds.len() + 1;
                    bounds
                        .iter()
                        .enumerate()
                        .map(|(i, b)| format!("{b}|{}", c(first + i)))
                        .collect::<Vec<_>>()
                        .join(",")
                }
            };
            v_info.push(StatPropInfo {
                policy: p.name().to_owned(),
                value,
            });
        }
        let head = StatPropMsgHead {
            property_name: name,
            ..template.clone()
        };
        out.push((head, StatPropMsgBody { v_info }));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::aggregate::forktest;
    use super::*;
    use std::time::Duration;

    fn table(dir: &Path) -> PropTable {
        PropTable::create(
            dir,
            Capacity {
                keys: 16,
                processes: 8,
            },
        )
        .unwrap()
    }

    fn template() -> StatPropMsgHead {
        StatPropMsgHead {
            module_name: "TestApp.HelloServer".to_owned(),
            i_property_ver: 2,
            ..StatPropMsgHead::default()
        }
    }

    fn values(report: &[(StatPropMsgHead, StatPropMsgBody)], name: &str) -> Vec<(String, String)> {
        let (head, body) = report
            .iter()
            .find(|(h, _)| h.property_name == name)
            .unwrap_or_else(|| panic!("{name} not reported"));
        assert_eq!(head.module_name, "TestApp.HelloServer");
        body.v_info
            .iter()
            .map(|i| (i.policy.clone(), i.value.clone()))
            .collect()
    }

    fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
        v.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn policies_aggregate_across_processes() {
        let dir = tempfile::tempdir().unwrap();
        let t = table(dir.path());
        let all = [
            Policy::Sum,
            Policy::Avg,
            Policy::Max,
            Policy::Min,
            Policy::Count,
            Policy::Distr(vec![100, 10, 50, 10]),
        ];
        let p = Property::new(&t, "latency", &all).unwrap();
        let idle = Property::new(&t, "idle", &[Policy::Count, Policy::Max]).unwrap();
        // Child k reports k*1000 .. k*1000+999 step 7, plus child 0 reports -5 once.
        let kids = forktest::spawn(3, |k| {
            let again = Property::new(&t, "latency", &all).is_ok();
            again
                && (0..1000)
                    .step_by(7)
                    .all(|v| p.report(k as i64 * 40 + v % 120).is_ok())
                && (k != 0 || p.report(-5).is_ok())
        });
        assert!(forktest::wait_all(&kids, Duration::from_secs(60)));
        let mut all_values: Vec<i64> = (0..3)
            .flat_map(|k| (0..1000).step_by(7).map(move |v| k * 40 + v % 120))
            .collect();
        all_values.push(-5);
        let sum: i64 = all_values.iter().sum();
        let n = all_values.len() as i64;
        let under = |lo: i64, hi: i64| {
            all_values
                .iter()
                .filter(|&&v| v >= lo && v < hi)
                .count()
                .to_string()
        };
        let report = t.take_report(&template()).unwrap();
        assert_eq!(report.len(), 2);
        let want_avg = format_double(sum as f64 / n as f64);
        let distr = format!(
            "10|{},50|{},100|{}",
            under(i64::MIN, 10),
            under(10, 50),
            under(50, 100)
        );
        assert_eq!(
            values(&report, "latency"),
            pairs(&[
                ("Sum", &sum.to_string()),
                ("Avg", &want_avg),
                ("Max", &all_values.iter().max().unwrap().to_string()),
                ("Min", "-5"),
                ("Count", &n.to_string()),
                ("Distr", &distr),
            ])
        );
        // A quiet property is still sent, without invented extremes.
        assert_eq!(values(&report, "idle"), pairs(&[("Count", "0")]));
        idle.report(0).unwrap();
        let report = t.take_report(&template()).unwrap();
        assert_eq!(
            values(&report, "idle"),
            pairs(&[("Count", "1"), ("Max", "0")])
        );
        assert_eq!(
            values(&report, "latency"),
            pairs(&[
                ("Sum", "0"),
                ("Avg", "0"),
                ("Count", "0"),
                ("Distr", "10|0,50|0,100|0")
            ])
        );
    }

    #[test]
    fn reports_during_a_take_are_kept() {
        let dir = tempfile::tempdir().unwrap();
        let t = table(dir.path());
        let p = Property::new(&t, "reqs", &[Policy::Sum, Policy::Count, Policy::Min]).unwrap();
        const EACH: i64 = 20_000;
        let kids = forktest::spawn(2, |k| {
            (0..EACH).all(|i| p.report(i % 10 + k as i64).is_ok())
        });
        let (mut sum, mut count, mut min) = (0i64, 0i64, i64::MAX);
        let mut fold = |r: &[(StatPropMsgHead, StatPropMsgBody)]| {
            for (policy, value) in values(r, "reqs") {
                let v: i64 = value.parse().unwrap();
                match policy.as_str() {
                    "Sum" => sum += v,
                    "Count" => count += v,
                    "Min" => min = min.min(v),
                    other => panic!("unexpected policy {other}"),
                }
            }
        };
        let mut takes = 0;
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            fold(&t.take_report(&template()).unwrap());
            takes += 1;
            let mut status = 0;
            // SAFETY: polls our own children without blocking.
            let running = kids
                .iter()
                .filter(|&&pid| unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) } == 0)
                .count();
            if running == 0 || std::time::Instant::now() > deadline {
                break;
            }
            std::thread::sleep(Duration::from_micros(500));
        }
        forktest::wait_all(&kids, Duration::from_secs(10));
        fold(&t.take_report(&template()).unwrap());
        fold(&t.take_report(&template()).unwrap());
        let want_sum: i64 = (0..2)
            .map(|k| (0..EACH).map(|i| i % 10 + k).sum::<i64>())
            .sum();
        assert_eq!((sum, count, min), (want_sum, 2 * EACH, 0), "{takes} takes");
    }

    #[test]
    fn avg_is_formatted_as_tarscpp_does() {
        assert_eq!(format_double(2.5), "2.5");
        assert_eq!(format_double(3.0), "3");
        assert_eq!(format_double(10.0), "10");
        assert_eq!(format_double(1.0 / 3.0), "0.333333");
        assert_eq!(format_double(-0.5), "-0.5");
        assert_eq!(format_double(0.0), "0");
    }

    #[test]
    fn definitions_are_checked_and_blobs_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let t = table(dir.path());
        assert!(Property::new(&t, "", &[Policy::Sum]).is_err());
        assert!(Property::new(&t, "x", &[]).is_err());
        assert!(Property::new(&t, "x", &[Policy::Distr(vec![])]).is_err());
        assert!(Property::new(&t, "x", &[Policy::Distr((0..65).collect())]).is_err());
        let five = vec![Policy::Distr(vec![1]); MAX_DISTR + 1];
        assert!(Property::new(&t, "x", &five).is_err());
        let policies = [Policy::Distr(vec![3, 1, 2]), Policy::Avg];
        let blob = encode("n", &policies).unwrap();
        assert_eq!(decode(&blob), Some(("n".to_owned(), policies.to_vec())));
        for cut in 0..blob.len() {
            assert_eq!(decode(&blob[..cut]), None);
        }
        // Registered once with other policies: the same name with new policies is a
        // different property.
        let a = Property::new(&t, "dup", &[Policy::Sum]).unwrap();
        let b = Property::new(&t, "dup", &[Policy::Count]).unwrap();
        a.report(5).unwrap();
        b.report(5).unwrap();
        let r = t.take_report(&template()).unwrap();
        assert_eq!(
            r.iter().filter(|(h, _)| h.property_name == "dup").count(),
            2
        );
    }
}
