//! The network-namespace lab itself, as a partition shows it: a follower cut off from the
//! other nodes falls behind while the majority writes on, and catches up once the link heals.

use std::collections::BTreeSet;

use crate::common::{wait_for, Cluster, WAIT};

#[test]
fn a_cut_off_follower_catches_up_after_the_partition_heals() {
    let c = Cluster::builder().in_lab().nodes(3).start();
    let leader = c.wait_leader(&[1, 2, 3]);
    let follower = (1..=3).find(|&k| k != leader).unwrap();
    let others: Vec<usize> = (1..=3).filter(|&k| k != follower).collect();

    c.isolate(follower);
    c.client(leader)
        .create_model_acked("written-while-cut-off", WAIT);
    // The test still reaches the cut-off node, whose copy lacks the write.
    let seen = c
        .client(follower)
        .model_ids(true)
        .expect("the cut-off node answers");
    assert!(
        !seen.contains("written-while-cut-off"),
        "a node cut off from every peer received a write: {seen:?}"
    );
    assert_eq!(
        c.wait_leader(&others),
        leader,
        "the leader lost its place while only a follower was cut off"
    );

    c.heal();
    let want = BTreeSet::from(["written-while-cut-off".to_string()]);
    wait_for(WAIT, "the healed follower has the write", || {
        let ids = c.client(follower).model_ids(true)?;
        if want.is_subset(&ids) {
            Ok(())
        } else {
            Err(format!("it lists {ids:?}"))
        }
    });
}
