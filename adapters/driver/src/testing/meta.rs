//! Member metadata: given at registration, changed by an update, read on
//! every node, filtered on, and seen by monitors with why members left.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{addr, check_delta_rules, config, drain, eventually, next_within, start};
use crate::{pick_by_key, Removal, Runtime};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Worker {
    zone: String,
    weight: u32,
}

fn worker(zone: &str, weight: u32) -> Worker {
    Worker {
        zone: zone.to_owned(),
        weight,
    }
}

pub async fn metadata_reaches_every_node_and_a_change_of_it_is_a_change_of_its_own<
    R: Runtime + Default,
>() {
    let a = start::<R>(config("a", &[])).await;
    let b = start::<R>(config("b", &[addr(&a)])).await;
    let wait = Duration::from_secs(5);
    let mut watch = b.monitor("workers").expect("a valid group");

    let (pa, pa2) = (a.open_port(), a.open_port());
    let reg = a
        .register_with_meta("workers", &pa, &worker("a", 3))
        .expect("a small value");
    let _plain = a.register("workers", &pa2).expect("a valid group");
    eventually::<R>("b lists both with a's metadata", wait, || {
        b.members_with_meta("workers")
            .is_some_and(|m| m.len() == 2 && m[0].meta_as::<Worker>().ok() == Some(worker("a", 3)))
    })
    .await;
    let listed = b.members_with_meta("workers").expect("two members");
    assert_eq!(listed[0].port, *pa.id());
    assert!(listed[1].meta.is_empty(), "a plain registration has none");
    let zone_a = b.members_where("workers", |m| {
        m.meta_as::<Worker>().is_ok_and(|w| w.zone == "a")
    });
    assert_eq!(zone_a, listed[..1]);
    assert_eq!(pick_by_key(&zone_a, b"any key"), Some(&listed[0]));

    let mut changes = vec![next_within::<R, _>(&mut watch, wait)
        .await
        .expect("a first change")];
    changes.extend(drain::<R, _>(&mut watch, Duration::from_millis(200)).await);

    // A change of metadata only: a change with `updated` alone.
    reg.update_meta(&worker("b", 5)).expect("a small value");
    let update = next_within::<R, _>(&mut watch, wait)
        .await
        .expect("the update is a change");
    assert!(
        update.added.is_empty() && update.removed.is_empty(),
        "{update:?}"
    );
    assert_eq!(update.updated, vec![pa.id().clone()]);
    assert_eq!(
        update.meta_as::<Worker>(pa.id()).and_then(Result::ok),
        Some(worker("b", 5))
    );
    changes.push(update);

    // Too large: refused, nothing changes.
    let big = vec![0u8; 2000];
    assert!(reg.update_meta_bytes(&big).is_err());
    assert!(a.register_with_meta_bytes("workers", &pa2, &big).is_err());

    // Why members leave: a port dropped, then a node lost.
    drop(pa2);
    let closed = next_within::<R, _>(&mut watch, wait)
        .await
        .expect("the dropped port is a change");
    assert_eq!(closed.reasons, vec![Removal::PortClosed], "{closed:?}");
    changes.push(closed);
    a.kill();
    let lost = next_within::<R, _>(&mut watch, wait)
        .await
        .expect("the lost node is a change");
    assert!(
        matches!(lost.reasons[..], [Removal::NodeLost(_)]),
        "{lost:?}"
    );
    changes.push(lost);
    assert!(check_delta_rules(&changes).is_empty());
    b.shutdown().await;
}
