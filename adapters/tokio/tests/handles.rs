//! A tokio node's handles work from anywhere: any task, any thread, and
//! another executor, on the multi-thread and the current-thread runtime.

use std::net::SocketAddr;
use std::time::Duration;

use futures_lite::{future, StreamExt};
use groupmesh_tokio::{Node, NodeConfig, Tokio};
use tokio::runtime::{Builder, Runtime};

fn send_sync<T: Send + Sync>() {}

#[test]
fn a_node_and_its_handles_are_send_and_sync() {
    send_sync::<Node>();
    send_sync::<groupmesh_tokio::Port>();
    send_sync::<groupmesh_tokio::Monitor>();
    send_sync::<groupmesh_tokio::Events>();
    send_sync::<groupmesh_tokio::PortMonitor>();
}

fn config(name: &str, seeds: &[SocketAddr]) -> NodeConfig {
    let mut cfg = NodeConfig::new(name, b"groupmesh tokio handles");
    cfg.bind.push(SocketAddr::from(([127, 0, 0, 1], 0)));
    cfg.seeds = seeds.to_vec();
    cfg
}

/// Two nodes started and used from a plain thread with another executor
/// (`futures_lite::future::block_on`), running on `runtime` through its handle.
fn nodes_used_from_outside(runtime: &Runtime) {
    let rt = Tokio::new(runtime.handle().clone());
    let outside = std::thread::spawn(move || {
        future::block_on(async {
            let a = Node::start_on(rt.clone(), config("a", &[]))
                .await
                .expect("a starts");
            let seed = *a.local_addrs().first().expect("a listens");
            let b = Node::start_on(rt, config("b", &[seed]))
                .await
                .expect("b starts");
            let port = a.open_port();
            let _reg = a.register("g", &port).expect("a valid group");
            let mut watch = b.monitor("g").expect("a valid group");
            let change = future::or(async { watch.next().await }, async {
                sleep_on_a_thread(Duration::from_secs(5)).await;
                None
            })
            .await
            .expect("b sees a's port within 5 s");
            assert_eq!(change.members, vec![port.id().clone()]);
            a.shutdown().await;
            b.shutdown().await;
        });
    });
    outside.join().expect("the outside thread ends");
}

/// A sleep that needs no runtime: a thread, and a tokio oneshot (which works
/// under any executor).
async fn sleep_on_a_thread(d: Duration) {
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    std::thread::spawn(move || {
        std::thread::sleep(d);
        let _ = tx.send(());
    });
    let _ = rx.await;
}

#[test]
fn a_node_on_the_multi_thread_runtime_works_from_a_thread_outside_it() {
    let runtime = Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime builds");
    nodes_used_from_outside(&runtime);
}

#[test]
fn a_node_on_the_current_thread_runtime_works_from_a_thread_outside_it() {
    let runtime = Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime builds");
    // A current-thread runtime runs its tasks only while a thread drives it.
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    std::thread::scope(|s| {
        s.spawn(|| runtime.block_on(stopped));
        nodes_used_from_outside(&runtime);
        let _ = stop.send(());
    });
}
