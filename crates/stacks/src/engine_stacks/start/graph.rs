//! What a start computes from the containers' dependencies alone, without the engine: how long
//! a stop in flight can still take, and which dependency to leave out when the waiting
//! containers wait for each other.

use std::collections::HashSet;
use std::time::Duration;

use crate::engine::Inspected;
use crate::engine_stacks::listing::Prepared;
use crate::engine_stacks::progress::{Live, Phase};
use crate::engine_stacks::stop::Grace;
use crate::order::Condition;

/// What a container whose stop may be in flight gets beyond its grace, per link of the chain
/// of containers that stop before it: the engine kills it at the end of its grace, and its exit
/// is then a matter of moments.
const IN_FLIGHT_MARGIN: Duration = Duration::from_secs(5);

/// For each container, how long a stop of it that may be in flight can still take: its grace
/// plus a margin, after the longest such chain of the containers that stop before it (its
/// dependents). `None` where a grace on the way has no bound.
pub(super) fn in_flight_bounds(
    containers: &[Prepared],
    dependents: &[Vec<usize>],
    grace: impl Fn(&Inspected) -> Grace,
) -> Vec<Option<Duration>> {
    /// Computed, being computed (a cycle: counts for nothing), or not yet.
    #[derive(Clone, Copy)]
    enum Memo {
        Done(Option<Duration>),
        Visiting,
        Todo,
    }
    fn bound(
        i: usize,
        containers: &[Prepared],
        dependents: &[Vec<usize>],
        grace: &dyn Fn(&Inspected) -> Grace,
        memo: &mut [Memo],
    ) -> Option<Duration> {
        match memo[i] {
            Memo::Done(b) => return b,
            Memo::Visiting => return Some(Duration::ZERO),
            Memo::Todo => {}
        }
        memo[i] = Memo::Visiting;
        let mut before = Some(Duration::ZERO);
        for &d in &dependents[i] {
            before = match (before, bound(d, containers, dependents, grace, memo)) {
                (Some(a), Some(b)) => Some(a.max(b)),
                _ => None,
            };
        }
        let own = grace(&containers[i].container)
            .seconds()
            .map(|secs| Duration::from_secs(secs) + IN_FLIGHT_MARGIN);
        let b = before.zip(own).map(|(a, b)| a + b);
        memo[i] = Memo::Done(b);
        b
    }
    let mut memo = vec![Memo::Todo; containers.len()];
    (0..containers.len())
        .map(|i| bound(i, containers, dependents, &grace, &mut memo))
        .collect()
}

/// A dependency to leave out when the containers still waiting can never start: each of them
/// waits for another that waits, so there is a cycle (of links, namespaces or `depends_on`
/// labels, which compose refuses but hand-made containers may have). One edge of a cycle,
/// so that what only waits for a member of a cycle still waits for it; never a namespace
/// edge where the cycle has another (the engine cannot start a container before the one whose
/// namespace it joins). `None` while some container can start.
pub(super) fn stuck_in_a_cycle(
    live: &[Live],
    deps: &[Vec<(usize, Condition)>],
    namespaces: &[Option<usize>],
    ignored: &HashSet<(usize, usize)>,
) -> Option<(usize, usize)> {
    let waiting = |j: usize| live[j].phase == Phase::Waiting;
    // The edges that still hold a waiting container back: dependent → dependency.
    let edges = |i: usize| {
        deps[i]
            .iter()
            .map(|(j, _)| *j)
            .filter(move |j| waiting(*j) && !ignored.contains(&(i, *j)))
    };
    let blocked: Vec<usize> = (0..live.len()).filter(|&i| waiting(i)).collect();
    if blocked.is_empty() || !blocked.iter().all(|&i| edges(i).next().is_some()) {
        return None;
    }
    // Whether `to` is reached from `from` along the edges.
    let reaches = |from: usize, to: usize| {
        let mut seen = vec![false; live.len()];
        let mut stack = vec![from];
        while let Some(x) = stack.pop() {
            if x == to {
                return true;
            }
            if !std::mem::replace(&mut seen[x], true) {
                stack.extend(edges(x));
            }
        }
        false
    };
    let in_cycles: Vec<(usize, usize)> = blocked
        .iter()
        .flat_map(|&i| edges(i).map(move |j| (i, j)))
        .filter(|&(i, j)| reaches(j, i))
        .collect();
    in_cycles
        .iter()
        .find(|(i, j)| namespaces[*i] != Some(*j))
        .or(in_cycles.first())
        .copied()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::State;
    use crate::order::ServiceDeps;

    fn prepared(service: &str, stop_timeout: Option<i64>) -> Prepared {
        Prepared {
            container: Inspected {
                state: State::Running,
                stop_timeout,
                ..Inspected::sample(service)
            },
            deps: ServiceDeps::new(),
            health_before: None,
        }
    }

    fn grace(c: &Inspected) -> Grace {
        match c.stop_timeout {
            Some(s) if s < 0 => Grace::Forever,
            Some(s) => Grace::Own(s.unsigned_abs()),
            None => Grace::Ours(10),
        }
    }

    #[test]
    fn an_in_flight_stop_is_bounded_along_the_chain_that_stops_before() {
        // front → web → db (front stops first); side → db; cache alone, its grace unbounded.
        let containers = [
            prepared("db", Some(60)),
            prepared("web", Some(20)),
            prepared("front", None),
            prepared("side", Some(1)),
            prepared("cache", Some(-1)),
        ];
        let dependents = vec![vec![1, 3], vec![2], vec![], vec![], vec![]];
        let bounds = in_flight_bounds(&containers, &dependents, grace);
        let m = IN_FLIGHT_MARGIN;
        let s = Duration::from_secs;
        assert_eq!(bounds[2], Some(s(10) + m), "front: its own grace");
        assert_eq!(bounds[1], Some(s(10) + m + s(20) + m), "web: after front");
        assert_eq!(
            bounds[0],
            Some(s(10) + m + s(20) + m + s(60) + m),
            "db: after the longer of its chains"
        );
        assert_eq!(bounds[3], Some(s(1) + m));
        assert_eq!(bounds[4], None, "no bound of ours");
        // A chain through an unbounded grace is unbounded.
        let dependents = vec![vec![4], vec![], vec![], vec![], vec![]];
        assert_eq!(in_flight_bounds(&containers, &dependents, grace)[0], None);
        // A cycle does not recurse for ever.
        let dependents = vec![vec![1], vec![0], vec![], vec![], vec![]];
        let bounds = in_flight_bounds(&containers, &dependents, grace);
        assert!(bounds[0].is_some() && bounds[1].is_some(), "{bounds:?}");
    }

    #[test]
    fn a_cycle_among_the_waiting_is_broken_and_nothing_else() {
        let waiting = Live::default();
        let up = Live {
            phase: Phase::Up,
            running: true,
            ..Live::default()
        };
        let started = Condition::Started;
        // a ⇄ b, c waits for a: stuck; one edge of the cycle is left out, so c still waits
        // for a.
        let deps = vec![vec![(1, started)], vec![(0, started)], vec![(0, started)]];
        let live = [waiting.clone(), waiting.clone(), waiting.clone()];
        let none = [None, None, None];
        let edge = stuck_in_a_cycle(&live, &deps, &none, &HashSet::new()).expect("stuck");
        assert_eq!(edge, (0, 1));
        let ignored = HashSet::from([edge]);
        assert_eq!(stuck_in_a_cycle(&live, &deps, &none, &ignored), None);
        // a joins b's namespace: the edge left out is b's on a.
        let joins = [Some(1), None, None];
        let edge = stuck_in_a_cycle(&live, &deps, &joins, &HashSet::new()).expect("stuck");
        assert_eq!(edge, (1, 0));
        // A chain waiting for a container on its way is not a cycle.
        let deps = vec![vec![], vec![(0, started)], vec![(1, started)]];
        let live = [up, waiting.clone(), waiting];
        assert_eq!(stuck_in_a_cycle(&live, &deps, &none, &HashSet::new()), None);
    }
}
