//! The path MTU sweep of `sizes:`: don't-fragment echoes of each listed payload size at
//! once, then rounds that probe sizes evenly spread between the largest size that passed
//! and the next one that did not, until the boundary is found to the byte or the check's
//! time runs out. A hop with a smaller MTU that also drops ICMP "fragmentation needed"
//! (an MTU black hole) shows as a size that never comes back.

use std::future::Future;
use std::net::IpAddr;
use std::time::Duration;

use tokio::time::Instant;

use super::socket::{Answer, EchoSocket};

/// Echoes sent per size: one lost echo does not make a size look too big.
const ECHOES_PER_SIZE: u16 = 2;
/// Rounds after the listed sizes: each narrows the gap ninefold, so four find a byte in
/// any gap up to a jumbo frame.
const REFINE_ROUNDS: usize = 4;
/// Sizes probed at once in a refining round.
const SIZES_PER_ROUND: u16 = 8;
/// The longest wait for one round's answers.
const MAX_ROUND_WAIT: Duration = Duration::from_secs(1);

/// Bytes of IP and ICMP header around an echo's payload: the path MTU is the payload
/// plus these.
pub(super) fn headers(ip: IpAddr) -> u16 {
    if ip.is_ipv4() { 20 + 8 } else { 40 + 8 }
}

/// The largest payload of don't-fragment echoes to `ip` that came back, or `None` when no
/// size did (or no sweep was asked for).
pub(super) async fn sweep(socket: &EchoSocket, ip: IpAddr, sizes: &[u16], deadline: Instant) -> Option<u16> {
    if sizes.is_empty() {
        return None;
    }
    let mut rounds_left = 1 + REFINE_ROUNDS;
    let probe = move |sizes: Vec<u16>| {
        let rounds = rounds_left.max(1);
        rounds_left = rounds_left.saturating_sub(1);
        let left = deadline.saturating_duration_since(Instant::now());
        let wait = (left / rounds as u32).min(MAX_ROUND_WAIT).saturating_sub(Duration::from_millis(20));
        async move {
            if wait < Duration::from_millis(10) {
                return None; // out of time: keep what is known
            }
            let runs =
                sizes.iter().map(|size| socket.ping(ip, ECHOES_PER_SIZE, Duration::from_millis(10), *size, wait));
            let answers = futures_util::future::join_all(runs).await;
            let passed = answers.iter().map(|a| a.iter().flatten().any(|x| matches!(x, Answer::Reply { .. })));
            Some(sizes.iter().copied().zip(passed).collect())
        }
    };
    search(sizes, probe).await
}

/// The search itself, over any prober: `probe` gets sizes and says which passed (`None`
/// when there is no time left for the round).
pub(super) async fn search<F, Fut>(sizes: &[u16], mut probe: F) -> Option<u16>
where
    F: FnMut(Vec<u16>) -> Fut,
    Fut: Future<Output = Option<Vec<(u16, bool)>>>,
{
    let first = probe(sizes.to_vec()).await?;
    let (mut low, mut high) = bounds(&first, None, None);
    for _ in 0..REFINE_ROUNDS {
        let (Some(lo), Some(hi)) = (low, high) else { break };
        if hi - lo <= 1 {
            break;
        }
        let gap = hi - lo;
        let steps = SIZES_PER_ROUND.min(gap - 1);
        let mut between: Vec<u16> =
            (1..=steps).map(|i| lo + (u32::from(gap) * u32::from(i) / u32::from(steps + 1)) as u16).collect();
        between.dedup();
        let Some(answers) = probe(between).await else { break };
        (low, high) = bounds(&answers, low, high);
    }
    low
}

/// The largest size that passed, and the smallest above it that failed, merged with what
/// earlier rounds found. A failed size below one that passed was a loss, not the MTU.
fn bounds(answers: &[(u16, bool)], low: Option<u16>, high: Option<u16>) -> (Option<u16>, Option<u16>) {
    let low = answers.iter().filter(|(_, ok)| *ok).map(|(s, _)| *s).chain(low).max();
    let failed_above = answers.iter().filter(|(s, ok)| !ok && Some(*s) > low).map(|(s, _)| *s);
    let high = failed_above.chain(high.filter(|h| Some(*h) > low)).min();
    (low, high)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A path that carries payloads up to `mtu_payload`, answering every round at once.
    async fn find(sizes: &[u16], mtu_payload: u16) -> (Option<u16>, usize) {
        let rounds = std::cell::Cell::new(0);
        let found = search(sizes, |s: Vec<u16>| {
            rounds.set(rounds.get() + 1);
            std::future::ready(Some(s.iter().map(|x| (*x, *x <= mtu_payload)).collect()))
        })
        .await;
        (found, rounds.get())
    }

    #[tokio::test]
    async fn finds_the_boundary_to_the_byte() {
        // name, sizes, largest payload the path carries, expected answer
        let cases: &[(&str, &[u16], u16, Option<u16>)] = &[
            ("black hole at 1400", &[64, 1200, 1472], 1372, Some(1372)),
            ("every listed size passes", &[64, 1200, 1472], 1472, Some(1472)),
            ("nothing passes", &[64, 1200], 40, None),
            ("only the smallest", &[64, 1472], 64, Some(64)),
            ("jumbo gap", &[64, 8972], 8000, Some(8000)),
            ("one size listed, it passes", &[1472], 1472, Some(1472)),
        ];
        for (name, sizes, carried, expected) in cases {
            let (found, rounds) = find(sizes, *carried).await;
            assert_eq!(found, *expected, "{name}");
            assert!(rounds <= 1 + REFINE_ROUNDS, "{name}: {rounds} rounds");
        }
    }

    #[tokio::test]
    async fn a_lost_small_echo_is_not_taken_for_the_mtu_and_no_time_keeps_what_is_known() {
        // 1200 lost by chance while 1400 passed: the answer is still found above 1400.
        let lossy = search(&[64, 1200, 1400, 1472], |s: Vec<u16>| {
            std::future::ready(Some(s.iter().map(|x| (*x, *x != 1200 && *x <= 1420)).collect()))
        })
        .await;
        assert_eq!(lossy, Some(1420));
        // Time runs out after the listed sizes: the largest listed size that passed.
        let calls = std::cell::Cell::new(0);
        let hurried = search(&[64, 1200, 1472], |s: Vec<u16>| {
            calls.set(calls.get() + 1);
            let answer = (calls.get() == 1).then(|| s.iter().map(|x| (*x, *x <= 1372)).collect());
            std::future::ready(answer)
        })
        .await;
        assert_eq!(hurried, Some(1200));
    }
}
