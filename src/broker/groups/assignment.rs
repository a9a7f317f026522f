//! How a group's partitions are divided among its members. Pure functions of (members with
//! their subscriptions, partitions per topic, previous assignment), so they are tested alone.
//!
//! - `Range`: per topic, consecutive partitions to members in member order (Kafka's range).
//! - `RoundRobin`: every subscribed partition dealt in turn over the members.
//! - `Sticky`: keeps every partition where it was when that is still balanced, and moves only
//!   the partitions that must move (from members over their fair share, from members that left),
//!   so a rebalance disturbs as few consumers as possible (Kafka's cooperative sticky goal).

use std::collections::{BTreeMap, BTreeSet};

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Strategy {
    Range,
    RoundRobin,
    Sticky,
}

impl Strategy {
    pub fn parse(name: &str) -> Option<Strategy> {
        match name {
            "range" => Some(Strategy::Range),
            "round-robin" | "roundrobin" => Some(Strategy::RoundRobin),
            "sticky" | "cooperative-sticky" => Some(Strategy::Sticky),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Strategy::Range => "range",
            Strategy::RoundRobin => "round-robin",
            Strategy::Sticky => "sticky",
        }
    }
}

pub type TopicPartition = (String, u32);

/// Member id -> the partitions it owns.
pub type Assignment = BTreeMap<String, Vec<TopicPartition>>;

/// Divides the partitions of the topics each member subscribes to (`members`: id -> topics)
/// among the members; `partitions` gives each topic's partition count (absent topics have none).
pub fn assign(
    strategy: Strategy,
    members: &BTreeMap<String, BTreeSet<String>>,
    partitions: &BTreeMap<String, u32>,
    previous: &Assignment,
) -> Assignment {
    let mut assignment: Assignment = members
        .keys()
        .map(|member| (member.clone(), Vec::new()))
        .collect();
    if members.is_empty() {
        return assignment;
    }
    let topics: BTreeSet<&String> = members.values().flatten().collect();
    match strategy {
        Strategy::Range => {
            for topic in topics {
                let subscribers: Vec<&String> = members
                    .iter()
                    .filter(|(_, t)| t.contains(topic))
                    .map(|(m, _)| m)
                    .collect();
                let count = partitions.get(topic).copied().unwrap_or(0) as usize;
                let (share, extra) = (count / subscribers.len(), count % subscribers.len());
                let mut next = 0;
                for (index, member) in subscribers.iter().enumerate() {
                    let take = share + usize::from(index < extra);
                    let owned = assignment
                        .get_mut(*member)
                        .expect("every member has an entry");
                    owned.extend(
                        (next..next + take).map(|partition| (topic.clone(), partition as u32)),
                    );
                    next += take;
                }
            }
        }
        Strategy::RoundRobin => {
            let mut turn = 0usize;
            let ids: Vec<&String> = members.keys().collect();
            for topic in topics {
                for partition in 0..partitions.get(topic).copied().unwrap_or(0) {
                    // The next member in turn that subscribes to this topic.
                    let member = (0..ids.len())
                        .map(|step| ids[(turn + step) % ids.len()])
                        .find(|m| members[*m].contains(topic))
                        .expect("a subscriber exists");
                    turn = ids.iter().position(|id| *id == member).expect("a member") + 1;
                    assignment
                        .get_mut(member)
                        .expect("every member has an entry")
                        .push((topic.clone(), partition));
                }
            }
        }
        Strategy::Sticky => sticky(members, partitions, previous, &mut assignment),
    }
    for owned in assignment.values_mut() {
        owned.sort();
    }
    assignment
}

fn sticky(
    members: &BTreeMap<String, BTreeSet<String>>,
    partitions: &BTreeMap<String, u32>,
    previous: &Assignment,
    assignment: &mut Assignment,
) {
    let all: BTreeSet<TopicPartition> = members
        .values()
        .flatten()
        .collect::<BTreeSet<_>>()
        .into_iter()
        .flat_map(|topic| {
            (0..partitions.get(topic).copied().unwrap_or(0)).map(move |p| (topic.clone(), p))
        })
        .collect();
    let fair_max = all.len().div_ceil(members.len());
    // Keep what each remaining member had, if it still subscribes and the partition exists,
    // up to the fair maximum.
    let mut placed = BTreeSet::new();
    for (member, owned) in previous {
        let Some(topics) = members.get(member) else {
            continue;
        };
        for partition in owned {
            let keep = all.contains(partition)
                && topics.contains(&partition.0)
                && !placed.contains(partition);
            let owner = assignment
                .get_mut(member)
                .expect("every member has an entry");
            if keep && owner.len() < fair_max {
                owner.push(partition.clone());
                placed.insert(partition.clone());
            }
        }
    }
    // Everything else goes to the least loaded subscriber; ties by member id, for determinism.
    for partition in all.iter().filter(|partition| !placed.contains(*partition)) {
        let member = members
            .iter()
            .filter(|(_, topics)| topics.contains(&partition.0))
            .map(|(member, _)| member)
            .min_by_key(|member| (assignment[*member].len(), (*member).clone()))
            .expect("a subscriber exists");
        assignment
            .get_mut(member)
            .expect("every member has an entry")
            .push(partition.clone());
    }
    // Where members' loads still differ by more than one (uneven subscriptions aside), move from
    // the most to the least loaded, one partition at a time.
    loop {
        let most = assignment
            .iter()
            .max_by_key(|(id, owned)| (owned.len(), std::cmp::Reverse((*id).clone())))
            .map(|(id, _)| id.clone());
        let least = assignment
            .iter()
            .min_by_key(|(id, owned)| (owned.len(), (*id).clone()))
            .map(|(id, _)| id.clone());
        let (Some(most), Some(least)) = (most, least) else {
            return;
        };
        if assignment[&most].len() <= assignment[&least].len() + 1 {
            return;
        }
        let movable = assignment[&most]
            .iter()
            .position(|(topic, _)| members[&least].contains(topic));
        let Some(index) = movable else { return };
        let partition = assignment.get_mut(&most).expect("exists").remove(index);
        assignment.get_mut(&least).expect("exists").push(partition);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn members(ids: &[&str], topics: &[&str]) -> BTreeMap<String, BTreeSet<String>> {
        ids.iter()
            .map(|id| {
                (
                    id.to_string(),
                    topics.iter().map(|t| t.to_string()).collect(),
                )
            })
            .collect()
    }

    fn counts(assignment: &Assignment) -> Vec<usize> {
        assignment.values().map(Vec::len).collect()
    }

    fn every_partition_once(assignment: &Assignment, total: usize) {
        let all: Vec<&TopicPartition> = assignment.values().flatten().collect();
        let unique: BTreeSet<&TopicPartition> = all.iter().copied().collect();
        assert_eq!((all.len(), unique.len()), (total, total), "{assignment:?}");
    }

    #[test]
    fn every_strategy_assigns_every_partition_once_and_balanced() {
        let partitions = BTreeMap::from([("a".to_string(), 16), ("b".to_string(), 3)]);
        for strategy in [Strategy::Range, Strategy::RoundRobin, Strategy::Sticky] {
            let assignment = assign(
                strategy,
                &members(&["m1", "m2", "m3", "m4"], &["a"]),
                &partitions,
                &Assignment::new(),
            );
            every_partition_once(&assignment, 16);
            assert_eq!(counts(&assignment), vec![4, 4, 4, 4], "{strategy:?}");
            let assignment = assign(
                strategy,
                &members(&["m1", "m2", "m3"], &["a", "b"]),
                &partitions,
                &Assignment::new(),
            );
            every_partition_once(&assignment, 19);
            let loads = counts(&assignment);
            assert!(
                loads.iter().max().unwrap() - loads.iter().min().unwrap()
                    <= if strategy == Strategy::Range { 2 } else { 1 },
                "{strategy:?} {loads:?}"
            );
        }
    }

    #[test]
    fn range_gives_consecutive_partitions() {
        let partitions = BTreeMap::from([("a".to_string(), 5)]);
        let assignment = assign(
            Strategy::Range,
            &members(&["m1", "m2"], &["a"]),
            &partitions,
            &Assignment::new(),
        );
        assert_eq!(
            assignment["m1"],
            vec![("a".into(), 0), ("a".into(), 1), ("a".into(), 2)]
        );
        assert_eq!(assignment["m2"], vec![("a".into(), 3), ("a".into(), 4)]);
    }

    #[test]
    fn sticky_moves_only_what_must_move() {
        let partitions = BTreeMap::from([("a".to_string(), 12)]);
        let three = assign(
            Strategy::Sticky,
            &members(&["m1", "m2", "m3"], &["a"]),
            &partitions,
            &Assignment::new(),
        );
        // A fourth member joins: exactly 3 partitions move, each to the newcomer.
        let four = assign(
            Strategy::Sticky,
            &members(&["m1", "m2", "m3", "m4"], &["a"]),
            &partitions,
            &three,
        );
        assert_eq!(counts(&four), vec![3, 3, 3, 3]);
        for member in ["m1", "m2", "m3"] {
            assert!(
                four[member].iter().all(|p| three[member].contains(p)),
                "{member} kept its own partitions only"
            );
        }
        // m2 leaves: only m2's partitions move.
        let without = assign(
            Strategy::Sticky,
            &members(&["m1", "m3", "m4"], &["a"]),
            &partitions,
            &four,
        );
        every_partition_once(&without, 12);
        for member in ["m1", "m3", "m4"] {
            assert!(
                four[member].iter().all(|p| without[member].contains(p)),
                "{member} lost nothing"
            );
        }
    }

    #[test]
    fn members_get_only_topics_they_subscribe_to() {
        let partitions = BTreeMap::from([("a".to_string(), 4), ("b".to_string(), 4)]);
        let mut subscriptions = members(&["m1"], &["a"]);
        subscriptions.extend(members(&["m2"], &["b"]));
        for strategy in [Strategy::Range, Strategy::RoundRobin, Strategy::Sticky] {
            let assignment = assign(strategy, &subscriptions, &partitions, &Assignment::new());
            assert!(
                assignment["m1"].iter().all(|(t, _)| t == "a") && assignment["m1"].len() == 4,
                "{strategy:?}"
            );
            assert!(
                assignment["m2"].iter().all(|(t, _)| t == "b") && assignment["m2"].len() == 4,
                "{strategy:?}"
            );
        }
    }
}
